"""The model host: loaded models, their workers and scheduling.

``ModelHost`` is imported lazily, so a worker process (``python -m
jupyter_llm.host.worker``) does not import the host's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .host import ModelHost

__all__ = ["ModelHost"]


def __getattr__(name: str) -> Any:
    """Import ``ModelHost`` on first use."""
    if name == "ModelHost":
        from .host import ModelHost

        return ModelHost
    raise AttributeError(f"module 'jupyter_llm.host' has no attribute {name!r}")
