"""What the host tells about a model beyond its registry entry: whether it can answer
(``usable``, with the hint that fixes it), the warning of its chat template, the trained
context length of its file, and embeddings with their token count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import JupyterLLMError, ModelLoadError
from ..gguf_meta import read_gguf_metadata, trained_context_length
from ..plugins import get_backend, model_file

if TYPE_CHECKING:
    from ..models import Model
    from ..registry import ModelSpec
    from .memory import Resident

__all__ = ["usability", "template_warnings", "trained_length", "embed_counted",
           "chat_template_of", "model_entry"]


def trained_length(entry: Resident) -> int | None:
    """The trained context length of a loaded local model's file (header only)."""
    path = getattr(entry.model, "path", None)
    try:
        return trained_context_length(read_gguf_metadata(path)) if path else None
    except (ModelLoadError, OSError):
        return None


def template_warnings(model: Model, spec: ModelSpec) -> list[dict[str, Any]]:
    """The chat-template warning of a local model (no template of its own), for every face."""
    info = getattr(model, "chat_template_info", None) if not spec.is_embedding else None
    if not info or not info.get("warning"):
        return []
    return [{"type": "chat_template", "message": info["warning"],
             "details": {"action": "completion", "model": spec.id, "source": info.get("source"),
                         "template": info.get("name")}}]


def embed_counted(model: Any, texts: list[str]) -> tuple[list[list[float]], int | None]:
    """Embed with a model; the token count when it can tell (``embed_with_usage``), else None."""
    counted = getattr(model, "embed_with_usage", None)
    if callable(counted):
        return counted(texts)
    return model.embed(texts), None


def usability(spec: ModelSpec) -> dict[str, Any]:
    """``usable``, and for a model that cannot answer yet (a remote model without its API key)
    the structured ``hint`` that fixes it, as its backend tells."""
    try:
        hint = get_backend(spec.backend, spec).setup_hint(spec)
    except JupyterLLMError:  # a backend no plugin registers: using it says so
        return {"usable": True}
    return {"usable": True} if hint is None else {"usable": False, "hint": hint}


def chat_template_of(host: Any, spec: ModelSpec) -> dict[str, Any] | None:
    """The chat format of a model for ``models/{id}``: what the loaded model uses, else what its
    file's header says (``loaded: false``: the vocabulary is checked when it loads); None for
    remote and embedding models."""
    from ..backends.chat_format import choose_template, says_chat_tuned

    if spec.is_embedding or spec.is_remote:
        return None
    for row in host.ps():
        if row["id"] == spec.id:
            return {**row["chat_template"], "loaded": True} if row.get("chat_template") else None
    try:
        if not get_backend(spec.backend, spec).in_worker:
            return None
        path = model_file(spec, host.store)
        meta = read_gguf_metadata(path)
    except (JupyterLLMError, OSError):
        return None  # not installed (or not a GGUF): nothing to tell yet
    template = choose_template(
        spec.id, gguf_template=meta.get("tokenizer.chat_template"),
        registry_template=spec.chat_template, architecture=meta.get("general.architecture"),
        chat_tuned=says_chat_tuned(meta.get("general.finetune"), meta.get("general.name"),
                                   path.name), is_single_token=None)
    return {**template.to_dict(), "loaded": False}


def model_entry(host: Any, model_id: str, user: Any = None) -> dict[str, Any]:
    """One model as ``host.models(user=user)`` lists it (``allowed`` for that user), found by
    id or alias, with its ``chat_template``; ``UnknownModel`` for an unknown id."""
    spec = host.registry.get(model_id)
    found = next(m for m in host.models(user=user) if m["id"] == spec.id)
    return {**found, "chat_template": chat_template_of(host, spec)}
