"""``LocalClient``: the ``Client`` interface over a ``ModelHost`` in this process."""

from __future__ import annotations

from typing import Any

from ..host import ModelHost
from ..models import Message, Response
from .base import Client, ProgressCallback

__all__ = ["LocalClient"]


class LocalClient(Client):
    """Runs models in this process's own host (plain IPython, scripts, the CLI)."""

    def __init__(self, host: ModelHost | None = None) -> None:
        self.host = host or ModelHost()

    def __repr__(self) -> str:
        return "<LocalClient (in-process host)>"

    def models(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Every registry model with its state."""
        return self.host.models(tag)

    def pull(self, model_id: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Download a model, calling ``progress`` with progress dicts."""
        callback = None if progress is None else (lambda p: progress(p.to_dict()))
        return self.host.pull(model_id, progress=callback)

    def cancel_pull(self, model_id: str) -> bool:
        """Cancel a running download."""
        return self.host.cancel_pull(model_id)

    def remove(self, model_id: str) -> bool:
        """Delete an installed model."""
        return self.host.remove(model_id)

    def load(self, model_id: str, **options: Any) -> dict[str, Any]:
        """Load a model now."""
        return self.host.load(model_id, **options)

    def unload(self, model_id: str) -> bool:
        """Unload a model."""
        return self.host.unload(model_id)

    def ps(self) -> list[dict[str, Any]]:
        """The loaded models."""
        return self.host.ps()

    def chat(self, messages: list[Message], model: str | None = None, *, stream: bool = True,
             log: bool = True, **options: Any) -> Response:
        """Run a chat in this process."""
        return self.host.chat(messages, model, log=log, face="python", **options)

    def generate(self, prompt: str, model: str | None = None, *, stream: bool = True,
                 log: bool = True, **options: Any) -> Response:
        """Run a raw completion in this process."""
        return self.host.generate(prompt, model, log=log, face="python", **options)

    def embed(self, texts: list[str], model: str | None = None) -> list[list[float]]:
        """Embed texts in this process."""
        return self.host.embed(texts, model)

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent requests, newest first (empty when history is off)."""
        log = self.host.history
        return [] if log is None else log.entries(limit)
