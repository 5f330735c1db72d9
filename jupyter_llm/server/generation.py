"""One generation as the handlers see it: start it on the host (which logs it to the history),
stream its chunks (and ``Queued`` events while it waits for its model) until done or
cancelled, and summarise it (usage, timings, finish)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidRequest
from ..models import Queued, Response

__all__ = ["Generation", "start_generation"]

_TOP_LEVEL = ("log", "face", "user", "keep_alive", "tutoring")


class Generation:
    """A started ``Response`` with thread-safe cancellation and a JSON summary."""

    def __init__(self, response: Response) -> None:
        self.response = response
        self._pieces: Iterator[str | Queued] | None = None
        self._first: list[str | Queued] = []

    @property
    def model_id(self) -> str:
        """The id of the model that answers."""
        return self.response.model_id

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Warnings for the user so far (all of them once the stream ended)."""
        return self.response.warnings

    def cancel(self) -> None:
        """Stop the generation (safe from any thread; a finished stream is left alone)."""
        try:
            self.response.cancel()
        except (ValueError, RuntimeError):  # a plain generator running in another thread
            pass

    def prime(self) -> None:
        """Wait for the first piece, the first ``Queued`` event (the request waits in line) or
        the end: an error before any text (the input does not fit, a bad option) raises here,
        while the handler can still answer a status code."""
        self._pieces = self.response.events()
        for piece in self._pieces:
            self._first.append(piece)
            break

    def chunks(self, cancel: threading.Event | None = None) -> Iterator[str | Queued]:
        """The text pieces and ``Queued`` events; once ``cancel`` is set, cancels the response and drains it (a
        worker's stream ends within about a token), so the model is freed and the request
        logged now rather than whenever the abandoned stream is garbage-collected."""
        iterator = self._pieces if self._pieces is not None else self.response.events()
        first, self._first = self._first, []
        for chunk in itertools.chain(first, iterator):
            if cancel is not None and cancel.is_set():
                self.cancel()
                for _ in iterator:
                    pass
                return
            yield chunk

    def text(self) -> str:
        """Run to the end and return the whole text."""
        return "".join(c for c in self.chunks() if isinstance(c, str))

    def summary(self) -> dict[str, Any]:
        """The response's ``summary()`` (model, finish reason, usage, timings, warnings)."""
        return self.response.summary()


def start_generation(host: Any, *, messages: list[dict[str, Any]] | None = None,
                     prompt: str | None = None, model: str | None = None,
                     options: dict[str, Any] | None = None, log: bool = True,
                     face: str = "api", user: str | None = None,
                     keep_alive: float | None = None, tutoring: bool = False) -> Generation:
    """Start a chat (``messages``) or completion (``prompt``) on the host (blocking: it may
    load the model or answer Busy) and return the ``Generation`` (``tutoring``: the chat's
    material asks for the tutoring guard)."""
    options = dict(options or {})
    clash = sorted(set(options) & set(_TOP_LEVEL))
    if clash:
        raise InvalidRequest(f"{', '.join(clash)} is not a model option; send it at the top "
                             "level of the request.", details={"fields": clash})
    kwargs = dict(options, log=log, face=face, user=user, keep_alive=keep_alive)
    if messages is not None:
        return Generation(host.chat(messages, model, tutoring=tutoring, **kwargs))
    return Generation(host.generate(prompt, model, **kwargs))
