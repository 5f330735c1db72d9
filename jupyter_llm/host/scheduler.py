"""``ModelQueue``: one model's bounded line of requests, served ``concurrency`` at a time.

A request takes a ``Ticket`` when it arrives (``enter``; ``Busy`` when the line is full,
``RateLimited`` when its user already has ``per_user`` requests waiting), waits for its turn
when it starts to stream (``Ticket.wait``) and gives the slot back when it ends or is
cancelled (``Ticket.release``, idempotent, safe from any thread).

Who goes next (``scheduling``):

- ``"fair"`` (the default): the waiting user with the fewest requests running goes first,
  ties to the user served least recently (round-robin), each user's own requests in the
  order they came. One student who fires ten requests delays the others' first answers by
  at most the one request already running.
- ``"fifo"``: first come, first served.

With ``readers`` set (a batching local model: a budget of prompt tokens), a request granted
a slot counts as reading its prompt (its ``weight``, an estimate of the prompt's tokens) until
its first output (``Ticket.first_output``), and a request is granted only while the prompts
being read, its own included, fit in ``readers`` (or none is being read). On a CPU, reading a
grounded prompt costs far more than generating an answer and batched sequences read their
prompts a chunk at a time anyway, so this keeps the order of reading long prompts, which
decides everyone's first token, in the queue's hands (a student's ten requests cannot take
every slot ahead of the class), while short chat prompts still start together.

``Ticket.place()`` tells a waiting request its place in line (1 = next) and the expected
wait; ``Ticket.wait_change`` blocks until either changes (the "queued" event).
"""

from __future__ import annotations

import itertools
import math
import threading
import time

from ..errors import Busy, RateLimited

__all__ = ["ModelQueue", "Ticket", "SCHEDULING"]

SCHEDULING = ("fair", "fifo")
"""The scheduling policies a ``ModelQueue`` knows."""


class Ticket:
    """One request's place in a ``ModelQueue``: waiting, active or done."""

    def __init__(self, queue: ModelQueue, user: str, seq: int, weight: int = 1) -> None:
        self._queue = queue
        self.user = user
        self.seq = seq
        self.weight = weight  # what its prompt counts against the queue's ``readers``
        self.state = "waiting"
        self.arrived = time.monotonic()
        self.started: float | None = None
        self.reading = False  # granted and not yet produced anything

    def wait(self, timeout: float | None = None) -> bool:
        """Block until this request may run; False if it was withdrawn (or timed out)."""
        with self._queue._cond:
            self._queue._cond.wait_for(lambda: self.state != "waiting", timeout)
            return self.state == "active"

    def place(self) -> tuple[int, float] | None:
        """While waiting: ``(position, expected_wait_s)``, position 1 being next; else None."""
        with self._queue._cond:
            return self._queue._place(self)

    def wait_change(self, last: tuple[int, float] | None,
                    timeout: float) -> tuple[int, float] | None:
        """Block until this request leaves the line or its ``place()`` differs from ``last``
        (the wait by a second or more), at most ``timeout`` seconds; return ``place()``."""
        def changed() -> bool:
            now = self._queue._place(self)
            return (now is None or last is None or now[0] != last[0]
                    or abs(now[1] - last[1]) >= 1.0)

        with self._queue._cond:
            self._queue._cond.wait_for(changed, timeout)
            return self._queue._place(self)

    def release(self) -> None:
        """Leave the queue or free the slot, so the next request runs."""
        self._queue._release(self)

    def first_output(self) -> None:
        """The request produced its first output: it no longer reads its prompt."""
        self._queue._read(self)

    @property
    def active(self) -> bool:
        """True while this request holds a slot."""
        return self.state == "active"


class ModelQueue:
    """At most ``size`` waiting requests (``per_user`` each when set), ``concurrency``
    running at once, granted in ``scheduling`` order (``"fair"`` or ``"fifo"``)."""

    def __init__(self, name: str, *, size: int, concurrency: int = 1, scheduling: str = "fair",
                 per_user: int | None = None, readers: int | None = None) -> None:
        if scheduling not in SCHEDULING:
            raise ValueError(f"scheduling must be one of {SCHEDULING}, not {scheduling!r}")
        self.name = name
        self.size = size
        self.concurrency = concurrency
        self.scheduling = scheduling
        self.per_user = per_user
        self.readers = readers
        self._reading = 0  # the weight of granted requests that have produced nothing yet
        self._cond = threading.Condition()
        self._waiting: dict[str, list[Ticket]] = {}  # per user, in arrival order
        self._running: dict[str, int] = {}  # per user
        self._served: dict[str, int] = {}  # per user: the grant counter when last served
        self._seq = itertools.count()
        self._grants = itertools.count(1)
        self._active = 0
        self._depth = 0
        self._order: dict[Ticket, int] | None = None  # cached positions, reset on change
        self._mean_s = 1.0  # moving average of how long a request holds a slot
        self.idle_since = time.time()

    def enter(self, user: str | None = None, weight: int = 1) -> Ticket:
        """Take a place in line for ``user`` (a prompt of ``weight`` against ``readers``);
        raise ``Busy`` when ``size`` requests already wait, ``RateLimited`` when ``user``
        already has ``per_user`` waiting."""
        user = user or ""
        with self._cond:
            full = self._active >= self.concurrency
            if full and self._depth >= self.size:
                retry = self._retry_after(self._depth + 1)
                raise Busy(
                    f"Model {self.name!r} is busy: {self._active} request(s) running and "
                    f"{self._depth} waiting (queue_size={self.size}). Retry in about "
                    f"{retry} s, or raise queue_size (JUPYTER_LLM_QUEUE_SIZE).", retry_after=retry,
                    details={"model": self.name, "queue_depth": self._depth,
                             "retry_after": retry})
            mine = len(self._waiting.get(user, ()))
            if full and self.per_user and mine >= self.per_user:
                retry = self._retry_after(1)
                raise RateLimited(
                    f"You already have {mine} request(s) waiting for model {self.name!r} "
                    f"(queue_per_user={self.per_user}). Wait for an answer, then ask again "
                    f"(in about {retry} s).", retry_after=retry,
                    details={"model": self.name, "waiting": mine, "retry_after": retry})
            ticket = Ticket(self, user, next(self._seq), max(1, weight))
            self._waiting.setdefault(user, []).append(ticket)
            self._depth += 1
            self._grant()
            return ticket

    def _retry_after(self, position: int) -> int:
        return max(1, math.ceil(self._mean_s * position / self.concurrency))

    def _key(self, user: str, running: dict[str, int], served: dict[str, int],
             heads: dict[str, Ticket]) -> tuple[int, ...]:
        """Sort key of ``user``'s next request: lower goes first."""
        if self.scheduling == "fifo":
            return (heads[user].seq,)
        return (running.get(user, 0), served.get(user, 0), heads[user].seq)

    def _next_user(self, running: dict[str, int], served: dict[str, int],
                   heads: dict[str, Ticket]) -> str:
        return min(heads, key=lambda u: self._key(u, running, served, heads))

    def _grant(self) -> None:
        while self._active < self.concurrency and self._depth:
            heads = {u: line[0] for u, line in self._waiting.items()}
            user = self._next_user(self._running, self._served, heads)
            if self.readers is not None and self._reading and \
                    self._reading + heads[user].weight > self.readers:
                break  # its prompt is read after those being read now
            ticket = self._waiting[user].pop(0)
            if not self._waiting[user]:
                del self._waiting[user]
            self._depth -= 1
            ticket.state = "active"
            ticket.started = time.monotonic()
            ticket.reading = True
            self._reading += ticket.weight
            self._active += 1
            self._running[user] = self._running.get(user, 0) + 1
            self._served[user] = next(self._grants)
        self._order = None
        self._cond.notify_all()

    def _positions(self) -> dict[Ticket, int]:
        """Every waiting ticket's place in line, simulating the grants to come (as if no
        running request ended first; ``_grant`` decides for real)."""
        if self._order is None:
            lines = {u: list(line) for u, line in self._waiting.items()}
            running, served = dict(self._running), dict(self._served)
            order: dict[Ticket, int] = {}
            stamp = max(served.values(), default=0)
            while lines:
                heads = {u: line[0] for u, line in lines.items()}
                user = self._next_user(running, served, heads)
                order[lines[user].pop(0)] = len(order) + 1
                if not lines[user]:
                    del lines[user]
                running[user] = running.get(user, 0) + 1
                stamp += 1
                served[user] = stamp
            self._order = order
        return self._order

    def _place(self, ticket: Ticket) -> tuple[int, float] | None:
        if ticket.state != "waiting":
            return None
        position = self._positions()[ticket]
        # requests ahead finish at the model's pace: `concurrency` every `_mean_s` seconds
        return position, round(self._mean_s * math.ceil(position / self.concurrency), 1)

    def _read(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.reading:
                ticket.reading = False
                self._reading -= ticket.weight
                self._grant()

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            user = ticket.user
            if ticket.state == "active":
                if ticket.reading:
                    ticket.reading = False
                    self._reading -= ticket.weight
                self._active -= 1
                self._running[user] -= 1
                if not self._running[user]:
                    del self._running[user]
                held = time.monotonic() - (ticket.started or ticket.arrived)
                self._mean_s = 0.8 * self._mean_s + 0.2 * held
            elif ticket.state == "waiting":
                self._waiting[user].remove(ticket)
                if not self._waiting[user]:
                    del self._waiting[user]
                self._depth -= 1
            else:
                return
            ticket.state = "done"
            self._grant()
            if self.idle:
                self.idle_since = time.time()
                self._served.clear()  # nobody waits: the next round starts even

    @property
    def depth(self) -> int:
        """Requests waiting for a slot."""
        return self._depth

    @property
    def active(self) -> int:
        """Requests running now."""
        return self._active

    @property
    def waiting_users(self) -> int:
        """Users with at least one request waiting."""
        return len(self._waiting)

    @property
    def idle(self) -> bool:
        """True when nothing runs or waits."""
        return not self._depth and self._active == 0
