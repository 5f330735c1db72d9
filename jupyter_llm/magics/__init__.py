"""IPython magics: ``%load_ext jupyter_llm``, then ``%llm help`` and ``%%llm``.

Importing this package is cheap; IPython and the client load when the extension does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_registered: dict[int, Any] = {}


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
