"""One generation as the handlers see it: start it on the host (with the history fields),
stream its chunks until done or cancelled, and summarise it (usage, timings, finish)."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidRequest
from ..models import Response

__all__ = ["Generation", "start_generation"]

_HISTORY_KWARGS = ("log", "face", "user")


def _host_logs(host: Any) -> bool:
    """True when the host's ``chat`` takes ``log``/``face``/``user`` and logs by itself."""
    cached = getattr(host, "_jupyter_llm_server_logs", None)
    if cached is None:
        params = inspect.signature(host.chat).parameters
        cached = all(name in params for name in _HISTORY_KWARGS)
        try:
            host._jupyter_llm_server_logs = cached
        except AttributeError:  # pragma: no cover - slotted host
            pass
    return bool(cached)


class Generation:
    """A started ``Response`` plus what the history log needs when the host does not log."""

    def __init__(self, response: Response, *, record: dict[str, Any] | None = None,
                 history: Any = None) -> None:
        self.response = response
        self._record = record
        self._history = history
        self._logged = False

    @property
    def model_id(self) -> str:
        """The id of the model that answers."""
        return self.response.model_id

    def cancel(self) -> None:
        """Stop the generation (safe from any thread; errors of a finished stream ignored)."""
        try:
            self.response.cancel()
        except (ValueError, RuntimeError):  # a generator running in another thread
            pass

    def chunks(self, cancel: threading.Event | None = None) -> Iterator[str]:
        """The text pieces; stops (and cancels the response) once ``cancel`` is set."""
        try:
            for chunk in self.response:
                if cancel is not None and cancel.is_set():
                    self.cancel()
                    break
                yield chunk
        except BaseException as e:
            self._log(error=f"{type(e).__name__}: {e}")
            raise
        self._log()

    def text(self) -> str:
        """Run to the end and return the whole text."""
        return "".join(self.chunks())

    def summary(self) -> dict[str, Any]:
        """``model``, ``finish_reason``, ``usage`` and ``timings`` after the stream ended."""
        r = self.response
        return {"model": r.model_id, "finish_reason": r.finish_reason or "stop",
                "usage": r.usage.to_dict() if r.usage else None, "timings": r.timings}

    def _log(self, error: str | None = None) -> None:
        if self._record is None or self._history is None or self._logged:
            return
        self._logged = True
        r = self.response
        timings = r.timings
        self._history.record(
            **self._record, model=r.model_id, response="".join(r._chunks), error=error,
            prompt_tokens=r.usage.prompt_tokens if r.usage else None,
            completion_tokens=r.usage.completion_tokens if r.usage else None,
            ttft_s=timings["time_to_first_token_s"], duration_s=timings["duration_s"])


def start_generation(host: Any, *, messages: list[dict[str, Any]] | None = None,
                     prompt: str | None = None, model: str | None = None,
                     options: dict[str, Any] | None = None, log: bool = True,
                     face: str = "api", user: str | None = None,
                     history: Any = None) -> Generation:
    """Start a chat (``messages``) or completion (``prompt``) on the host (blocking: it may
    load the model) and return the ``Generation``. Errors before the first token raise here."""
    options = dict(options or {})
    clash = sorted(set(options) & set(_HISTORY_KWARGS))
    if clash:
        raise InvalidRequest(f"{', '.join(clash)} is not a model option; send it at the top "
                             "level of the request.", details={"fields": clash})
    logs_itself = _host_logs(host)
    kwargs = dict(options, log=log, face=face, user=user) if logs_itself else options
    if messages is not None:
        response = host.chat(messages, model, **kwargs)
    else:
        response = host.generate(prompt, model, **kwargs)
    record = None
    if not logs_itself and log and getattr(host.settings, "history", True):
        record = {"face": face, "user": user, "messages": messages, "prompt": prompt,
                  "options": options or None}
    return Generation(response, record=record, history=history)
