"""Streams of the host: ``HostStream`` and ``CallbackStream``.

``HostStream`` is one request's way through the host, as the iterator a ``Response`` wraps.
It waits for the request's turn in the model's queue when first read (yielding a ``Queued``
event with its place in line, again whenever that changes, and ``Queued(0, 0)`` when its
turn comes), starts the model's execution, passes the pieces on, and when the execution ends (finished, failed or
cancelled) frees the slot and reports to the host once (last use, history).

``CallbackStream`` is the one bridge from work that reports through a callback (download
progress, ingest progress, a grounded answer's text) to a stream: iterated by a reader,
or handed item by item to a ``deliver`` function (the server's event loop).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ..errors import Cancelled
from ..models import Finish, Queued
from .scheduler import Ticket

__all__ = ["HostStream", "CallbackStream", "END"]

T = TypeVar("T")
END = object()
"""The last item a ``CallbackStream`` delivers."""
QUEUED_CHECK_S = 5.0
"""How often a waiting stream looks again at its place in line without being woken."""

log = logging.getLogger(__name__)


class HostStream:
    """Iterator of ``Queued`` events while waiting, then text pieces and a ``Finish``;
    ``cancel()`` is safe from any thread."""

    def __init__(self, ticket: Ticket, start: Callable[[], Iterator[str | Finish]],
                 on_end: Callable[[HostStream], None]) -> None:
        self._ticket = ticket
        self._start = start
        self._on_end = on_end
        self._inner: Iterator[str | Finish] | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._reading = False
        self._ended = False
        self.pieces: list[str] = []
        self.finish: Finish | None = None
        self.error: BaseException | None = None
        self.created = time.perf_counter()
        self.first_piece: float | None = None
        self.ended_at: float | None = None
        self._place: tuple[int, float] | None = None  # the last place in line sent

    def __iter__(self) -> Iterator[str | Finish]:
        return self

    def __next__(self) -> str | Finish | Queued:
        if self._ended:
            raise StopIteration
        if self._inner is None:
            queued = self._next_place()
            if queued is not None:
                return queued
            self._begin()
        inner = self._inner
        if inner is None or self._ended:
            raise StopIteration
        if self._cancelled and not callable(getattr(inner, "cancel", None)):
            _close(inner)  # an in-process generator stops here, in its own thread
            self._end()
            return Finish("cancelled")
        try:
            event = next(inner)
        except StopIteration:
            self._end()
            raise
        except BaseException as e:
            self._end(e)
            raise
        if isinstance(event, Finish):
            self.finish = event
        elif event:
            if self.first_piece is None:
                self.first_piece = time.perf_counter()
                self._ticket.first_output()  # its prompt is read: the next may start reading
            self.pieces.append(event)
        return event

    def _next_place(self) -> Queued | None:
        """While waiting in line: the next change of this request's place; None once its
        turn came (after one ``Queued(0, 0)`` if it had to wait) or it left the line."""
        with self._lock:
            self._reading = True
        while not self._cancelled:
            last = self._place
            place = self._ticket.place() if last is None else \
                self._ticket.wait_change(last, QUEUED_CHECK_S)
            if place is None:
                if last is not None and last[0] and self._ticket.active:
                    self._place = (0, 0.0)
                    return Queued(0, 0.0)
                return None
            if place != last:
                self._place = place
                return Queued(*place)
        return None

    def _begin(self) -> None:
        with self._lock:
            self._reading = True
        granted = self._ticket.wait()
        with self._lock:
            stop = self._cancelled or not granted
        if stop:
            self._end()
            return
        try:
            inner = iter(self._start())
        except BaseException as e:
            self._end(e)
            raise
        add_done = getattr(inner, "add_done_callback", None)
        if callable(add_done):
            add_done(self._ticket.release)  # free the slot as soon as the worker is done
        with self._lock:
            self._inner = inner
            cancelled = self._cancelled
        if cancelled:
            _cancel(inner)

    def cancel(self) -> None:
        """Stop: leave the queue if still waiting, else stop the execution within a token."""
        with self._lock:
            self._cancelled = True
            inner, reading = self._inner, self._reading
        if inner is not None:
            _cancel(inner)
        elif reading:
            self._ticket.release()  # wakes the waiting reader, which then ends the stream
        else:
            self._end()  # nobody started reading: leave the queue and report it now

    def close(self) -> None:
        """The reader abandoned the stream: stop it."""
        self.abandon()

    def abandon(self) -> None:
        """No one will read on: stop the execution, then drain it in the background so the
        slot is freed and the end reported (history) as soon as the worker stops."""
        self.cancel()
        with self._lock:
            running = self._inner is not None and not self._ended
        if running:
            threading.Thread(target=self._drain, daemon=True,
                             name="jupyter-llm-drain").start()

    def _drain(self) -> None:
        try:
            for _ in self:
                pass
        except BaseException:  # noqa: BLE001 - already reported by _end
            pass

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called."""
        return self._cancelled

    @property
    def text(self) -> str:
        """The text produced so far."""
        return "".join(self.pieces)

    @property
    def ttft_s(self) -> float | None:
        """Seconds from the request to its first piece (queue wait and load included)."""
        return None if self.first_piece is None else self.first_piece - self.created

    @property
    def duration_s(self) -> float | None:
        """Seconds from the request to its end."""
        return None if self.ended_at is None else self.ended_at - self.created

    def _end(self, error: BaseException | None = None) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self.ended_at = time.perf_counter()
        self.error = error
        self._ticket.release()
        try:
            self._on_end(self)
        except Exception:  # noqa: BLE001 - bookkeeping must never break a request
            log.exception("ending a request failed")

    def __del__(self) -> None:
        if not self._ended:
            try:
                if self._inner is not None:
                    _cancel(self._inner)
                self._ticket.release()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass


def _cancel(inner: Any) -> None:
    stop = getattr(inner, "cancel", None)
    if callable(stop):
        stop()


def _close(inner: Any) -> None:
    close = getattr(inner, "close", None)
    if callable(close):
        close()


class CallbackStream(Generic[T]):
    """Runs ``work(emit)`` in a thread of its own and streams what it passes to ``emit``.

    ``start(deliver)`` hands every item straight from the working thread to ``deliver``
    (one hand-over per item), then the work's exception if it failed, then ``END``.
    Iterating does the same through a queue and raises the exception in the reader.
    ``cancel()`` ends the stream at once and calls ``on_cancel``; ``emit`` then raises
    ``Cancelled`` so the work stops at its next step, or, with ``detach=True`` (work that
    others share, such as a download), drops the items and lets the work finish.
    """

    def __init__(self, work: Callable[[Callable[[T], None]], Any], *,
                 on_cancel: Callable[[], None] | None = None, detach: bool = False,
                 name: str = "jupyter-llm-stream") -> None:
        self._work = work
        self._on_cancel = on_cancel
        self._detach = detach
        self._name = name
        self._deliver: Callable[[Any], None] | None = None
        self._lock = threading.Lock()
        self._ended = False
        self._cancelled = threading.Event()
        self.result: Any = None

    def emit(self, item: T) -> None:
        """Pass one item on (the callback the work gets)."""
        if self._cancelled.is_set():
            if self._detach:
                return
            raise Cancelled("The stream was cancelled.")
        self._send(item)

    def start(self, deliver: Callable[[Any], None]) -> None:
        """Run the work in its own thread, handing each item (then an exception, then
        ``END``) to ``deliver``, which must be thread-safe and quick."""
        self._deliver = deliver
        threading.Thread(target=self._run, name=self._name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = self._work(self.emit)
        except BaseException as e:  # noqa: BLE001 - the reader gets it as the last item
            self._send(e)
        finally:
            self._end()

    def _send(self, item: Any) -> None:
        with self._lock:
            if self._ended:
                return
            deliver = self._deliver
        assert deliver is not None
        deliver(item)

    def _end(self) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            deliver = self._deliver
        if deliver is not None:
            deliver(END)

    def cancel(self) -> None:
        """End the stream now and stop (or detach) the work; safe from any thread."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        self._end()
        if self._on_cancel is not None:
            self._on_cancel()

    def __iter__(self) -> Iterator[T]:
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.start(items.put)
        finished = False
        try:
            while (item := items.get()) is not END:
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
            finished = True
        finally:
            if not finished:  # the reader stopped early: stop the work too
                self.cancel()
