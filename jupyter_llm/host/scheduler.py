"""``ModelQueue``: one model's bounded FIFO of requests, served ``concurrency`` at a time.

A request takes a ``Ticket`` when it arrives (``enter``; ``Busy`` when the queue is full),
waits for its turn when it starts to stream (``Ticket.wait``) and gives the slot back when
it ends or is cancelled (``Ticket.release``, idempotent, safe from any thread).
"""

from __future__ import annotations

import collections
import math
import threading
import time

from ..errors import Busy

__all__ = ["ModelQueue", "Ticket"]


class Ticket:
    """One request's place in a ``ModelQueue``: waiting, active or done."""

    def __init__(self, queue: ModelQueue) -> None:
        self._queue = queue
        self.state = "waiting"
        self.arrived = time.monotonic()
        self.started: float | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until this request may run; False if it was withdrawn (or timed out)."""
        with self._queue._cond:
            self._queue._cond.wait_for(lambda: self.state != "waiting", timeout)
            return self.state == "active"

    def release(self) -> None:
        """Leave the queue or free the slot, so the next request runs."""
        self._queue._release(self)

    @property
    def active(self) -> bool:
        """True while this request holds a slot."""
        return self.state == "active"


class ModelQueue:
    """A FIFO of at most ``size`` waiting requests, ``concurrency`` running at once."""

    def __init__(self, name: str, *, size: int, concurrency: int = 1) -> None:
        self.name = name
        self.size = size
        self.concurrency = concurrency
        self._cond = threading.Condition()
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._active = 0
        self._mean_s = 1.0  # moving average of how long a request holds a slot
        self.idle_since = time.time()

    def enter(self) -> Ticket:
        """Take a place in line; raise ``Busy`` when ``size`` requests already wait."""
        with self._cond:
            if len(self._waiting) >= self.size and self._active >= self.concurrency:
                wait = self._mean_s * (len(self._waiting) + 1) / self.concurrency
                retry = max(1, math.ceil(wait))
                raise Busy(
                    f"Model {self.name!r} is busy: {self._active} request(s) running and "
                    f"{len(self._waiting)} waiting (queue_size={self.size}). Retry in about "
                    f"{retry} s, or raise queue_size (JUPYTER_LLM_QUEUE_SIZE).", retry_after=retry,
                    details={"model": self.name, "queue_depth": len(self._waiting),
                             "retry_after": retry})
            ticket = Ticket(self)
            self._waiting.append(ticket)
            self._grant()
            return ticket

    def _grant(self) -> None:
        while self._active < self.concurrency and self._waiting:
            ticket = self._waiting.popleft()
            ticket.state = "active"
            ticket.started = time.monotonic()
            self._active += 1
        self._cond.notify_all()

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.state == "active":
                self._active -= 1
                held = time.monotonic() - (ticket.started or ticket.arrived)
                self._mean_s = 0.8 * self._mean_s + 0.2 * held
            elif ticket.state == "waiting":
                self._waiting.remove(ticket)
            else:
                return
            ticket.state = "done"
            self._grant()
            if self.idle:
                self.idle_since = time.time()

    @property
    def depth(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiting)

    @property
    def active(self) -> int:
        """Requests running now."""
        return self._active

    @property
    def idle(self) -> bool:
        """True when nothing runs or waits."""
        return not self._waiting and self._active == 0
