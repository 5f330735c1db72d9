"""ipywidgets faces: ``ModelPanel`` (models, downloads, loads and a chat box over a ``Client``).

    from jupyter_llm.widgets import ModelPanel
    ModelPanel()          # or `%llm panel`
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelPanel"]


def __getattr__(name: str) -> Any:
    """Import ipywidgets only when the panel is used."""
    if name == "ModelPanel":
        from .panel import ModelPanel

        return ModelPanel
    raise AttributeError(f"module 'jupyter_llm.widgets' has no attribute {name!r}")
