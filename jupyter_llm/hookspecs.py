"""Plugin hooks. Third parties implement them in a module named by an entry point in the
``jupyter_llm`` group; the built-in backends are default plugins registered the same way."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("jupyter_llm")
hookimpl = pluggy.HookimplMarker("jupyter_llm")

__all__ = ["hookspec", "hookimpl", "register_models", "register_embedding_models"]


@hookspec
def register_models(register):  # type: ignore[no-untyped-def]
    """Call ``register(obj)`` with a ``Backend`` (for registry entries of its backend; one
    with ``in_worker = True`` gets a worker process per model) or a ready ``Model``
    (optionally ``register(model, spec=ModelSpec(...), aliases=[...])``)."""


@hookspec
def register_embedding_models(register):  # type: ignore[no-untyped-def]
    """Call ``register(model)`` with an ``EmbeddingModel`` (or an embedding-capable ``Model``)."""
