"""jupyter-llm: a Jupyter workbench for large language models, local or remote."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "connect", "get_model", "Model", "Response", "Options", "ModelSpec",
           "Registry", "errors"]

_LAZY = {
    "connect": ("jupyter_llm.client", "connect"),
    "get_model": ("jupyter_llm.plugins", "get_model"),
    "Model": ("jupyter_llm.models", "Model"),
    "Response": ("jupyter_llm.models", "Response"),
    "Options": ("jupyter_llm.options", "Options"),
    "ModelSpec": ("jupyter_llm.registry", "ModelSpec"),
    "Registry": ("jupyter_llm.registry", "Registry"),
    "errors": ("jupyter_llm.errors", None),
}


def __getattr__(name: str) -> Any:
    """Import public names lazily, so ``import jupyter_llm`` stays fast."""
    if name not in _LAZY:
        raise AttributeError(f"module 'jupyter_llm' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The Jupyter server extension (``JupyterLLM``), imported only when a server loads it."""
    from .server.app import JupyterLLM

    return [{"module": "jupyter_llm.server.app", "app": JupyterLLM}]


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext jupyter_llm``: register ``%llm`` and ``%%llm`` (imported only now), with the
    model panel widget for ``%llm panel`` (faces never import each other; this wires them)."""
    from .magics import load_ipython_extension as load
    from .magics import provide

    provide("panel", _model_panel)
    load(shell)


def _model_panel(*args: Any, **kwargs: Any) -> Any:
    """A ``jupyter_llm.widgets.ModelPanel`` (ipywidgets is imported only now)."""
    from .widgets import ModelPanel

    return ModelPanel(*args, **kwargs)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext jupyter_llm``: remove the magics."""
    from .magics import unload_ipython_extension as unload

    unload(shell)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension lives (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "jupyter-llm"}]
