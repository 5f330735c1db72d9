"""Clients of the model host: ``connect()`` picks a remote server or an in-process host."""

from __future__ import annotations

from .base import Client
from .local import LocalClient

__all__ = ["Client", "LocalClient", "connect"]

_default: Client | None = None


def connect(*, fresh: bool = False) -> Client:
    """Return the shared client: remote when ``JUPYTER_LLM_URL`` is set, else in-process."""
    global _default
    if _default is None or fresh:
        _default = LocalClient()
    return _default
