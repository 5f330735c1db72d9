"""The history seam: one call per finished request, never breaking the request itself."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models import Request
    from .streams import HostStream

__all__ = ["record_history"]

log = logging.getLogger(__name__)


def record_history(host: Any, model_id: str, request: Request, stream: HostStream, *,
                   face: str, user: str | None, guard: Any = None,
                   request_id: str | None = None) -> None:
    """Log a finished (or failed, or cancelled) request to ``host.history`` when there is one;
    where the tutoring guard acted, the full answer is logged with the guard's note."""
    try:
        history = host.history
        if history is None:
            return
        finish = stream.finish
        usage = finish.usage if finish else None
        if stream.error is not None:
            error: str | None = getattr(stream.error, "message", None) or str(stream.error)
        elif stream.cancelled:
            error = "cancelled"
        else:
            error = None
        acted = guard is not None and guard.acted
        fields: dict[str, Any] = {
            "model": model_id, "face": face, "user": user,
            "response": guard.full_text if acted else stream.text,
            "guard": guard.note() if acted else None, "request_id": request_id,
            "options": request.options.set_options(),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else len(stream.pieces),
            "cached_tokens": usage.cached_tokens if usage else None,
            "ttft_s": stream.ttft_s, "duration_s": stream.duration_s, "error": error,
        }
        if request.is_chat:
            fields["messages"] = request.messages
        else:
            fields["prompt"] = request.prompt
        history.record(**fields)
    except Exception as e:  # noqa: BLE001 - a history failure must never break a request
        log.warning("Could not record the request in the history log: %s", e)
