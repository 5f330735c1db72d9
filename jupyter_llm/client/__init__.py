"""Clients of the model host: ``connect()`` picks a remote server or an in-process host."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import Client

if TYPE_CHECKING:
    from .local import LocalClient
    from .remote import RemoteClient

__all__ = ["Client", "LocalClient", "RemoteClient", "connect", "disconnect"]

_default: Client | None = None


def connect(*, fresh: bool = False) -> Client:
    """Return the shared client: remote when ``JUPYTER_LLM_URL`` is set, else in-process."""
    global _default
    url = os.environ.get("JUPYTER_LLM_URL", "").strip()
    stale = _default is not None and (
        (url and getattr(_default, "url", None) != url.rstrip("/") + "/")
        or (not url and getattr(_default, "url", None) is not None))
    if _default is None or fresh or stale:
        if url:
            from .remote import RemoteClient

            _default = RemoteClient(url)
        else:
            from .local import LocalClient

            _default = LocalClient()
    return _default


def disconnect() -> None:
    """Close the shared client, if one was made (an in-process host stops its workers)."""
    global _default
    client, _default = _default, None
    if client is not None:
        client.close()


def __getattr__(name: str) -> Any:
    """Import the client classes lazily (``LocalClient`` pulls in the host)."""
    if name == "LocalClient":
        from .local import LocalClient

        return LocalClient
    if name == "RemoteClient":
        from .remote import RemoteClient

        return RemoteClient
    raise AttributeError(f"module 'jupyter_llm.client' has no attribute {name!r}")
