"""IPython magics: ``%load_ext jupyter_llm``, then ``%llm help`` and ``%%llm``.

Importing this package is cheap; IPython and the client load when the extension does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension", "provide", "provided"]

_registered: dict[int, Any] = {}
_views: dict[str, Callable[..., Any]] = {}


def provide(name: str, factory: Callable[..., Any]) -> None:
    """Register a view another package makes (``panel``: the model panel widget); the magics
    never import another face, ``jupyter_llm.load_ipython_extension`` wires them."""
    _views[name] = factory


def provided(name: str) -> Callable[..., Any]:
    """The factory registered for ``name`` (``InvalidRequest`` when none is)."""
    factory = _views.get(name)
    if factory is None:
        from ..errors import InvalidRequest

        raise InvalidRequest(f"No {name} is available here: load the extension with "
                             "`%load_ext jupyter_llm` (it needs ipywidgets).")
    return factory


def load_ipython_extension(shell: Any) -> None:
    """Register ``%llm``/``%%llm`` and the hook that remembers the last error."""
    from .core import LLMMagics

    if id(shell) in _registered:
        return
    magics = LLMMagics(shell)
    shell.register_magics(magics)
    shell.events.register("post_run_cell", magics.record_error)
    _registered[id(shell)] = magics


def unload_ipython_extension(shell: Any) -> None:
    """Remove the magics and the hook (models stay loaded in the host)."""
    magics = _registered.pop(id(shell), None)
    if magics is None:
        return
    try:
        shell.events.unregister("post_run_cell", magics.record_error)
    except ValueError:
        pass
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("llm", None)
    shell.magics_manager.registry.pop("LLMMagics", None)


def magics_of(shell: Any) -> Any:
    """The registered ``LLMMagics`` of ``shell`` (None before ``%load_ext jupyter_llm``)."""
    return _registered.get(id(shell))
