"""The plugin manager: loads the ``jupyter_llm`` entry points and resolves model ids."""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import RegistryError
from .models import Backend, EmbeddingModel, Model
from .registry import ModelSpec, Registry

__all__ = ["pm", "Plugins", "plugins", "get_model", "get_embedding_model", "reset"]

log = logging.getLogger(__name__)

pm = pluggy.PluginManager("jupyter_llm")
pm.add_hookspecs(hookspecs)
_loaded = False


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in importlib.metadata.entry_points(group="jupyter_llm"):
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as e:  # a broken plugin must not break the others
            log.warning("Could not load jupyter_llm plugin %r: %s", ep.name, e)
    for name in ("llama_cpp", "openai"):  # built-ins, also when not installed as a dist
        if not pm.has_plugin(name):
            pm.register(importlib.import_module(f"jupyter_llm.backends.{name}"), name=name)


@dataclass
class Plugins:
    """What the plugins registered: backends by name, ready models, embedding models."""

    backends: dict[str, Backend] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    specs: dict[str, ModelSpec] = field(default_factory=dict)
    embedding_models: dict[str, Model | EmbeddingModel] = field(default_factory=dict)

    def _register_model(self, obj: Any, spec: ModelSpec | None = None,
                        aliases: list[str] | tuple[str, ...] = ()) -> None:
        if isinstance(obj, Backend):
            self.backends[obj.name] = obj
            return
        if not isinstance(obj, Model):
            raise TypeError(f"register_models expects a Backend or a Model, not {obj!r}")
        self.models[obj.model_id] = obj
        for alias in aliases:
            self.models[alias] = obj
        if spec is not None:
            obj.spec = obj.spec or spec
            self.specs[spec.id] = spec

    def _register_embedding(self, obj: Any, aliases: list[str] | tuple[str, ...] = ()) -> None:
        if not isinstance(obj, (Model, EmbeddingModel)):
            raise TypeError(f"register_embedding_models expects an EmbeddingModel, not {obj!r}")
        for name in (obj.model_id, *aliases):
            self.embedding_models[name] = obj


_plugins: Plugins | None = None


def plugins() -> Plugins:
    """Run the hooks once and return what they registered."""
    global _plugins
    if _plugins is None:
        _load_entry_points()
        found = Plugins()
        pm.hook.register_models(register=found._register_model)
        pm.hook.register_embedding_models(register=found._register_embedding)
        _plugins = found
    return _plugins


def reset(rescan_entry_points: bool = False) -> None:
    """Forget what the hooks registered, so newly registered plugins are seen."""
    global _plugins, _loaded
    _plugins = None
    if rescan_entry_points:
        _loaded = False


def registry_with_plugins(registry: Registry | None = None) -> Registry:
    """The registry plus the specs that plugins registered."""
    registry = registry or Registry.load()
    for spec in plugins().specs.values():
        if spec.id not in registry.models:
            registry.add(spec)
    return registry


def create_model(spec: ModelSpec) -> Model:
    """Create an (unloaded) model object for a registry entry through its backend."""
    found = plugins()
    if spec.id in found.models:
        return found.models[spec.id]
    backend = found.backends.get(spec.backend)
    if backend is None:
        raise _unknown_backend(spec, found)
    return backend.create(spec)


def _unknown_backend(spec: ModelSpec, found: Plugins) -> RegistryError:
    return RegistryError(
        f"Model {spec.id!r} uses backend {spec.backend!r}, which no installed plugin provides "
        f"(known: {', '.join(sorted(found.backends))}). Install the plugin or fix the entry in "
        f"{spec.source or 'its registry'}.", details={"model": spec.id, "backend": spec.backend})


def get_model(model_id: str, registry: Registry | None = None) -> Model:
    """Return an in-process model for a registry id or alias, or a plugin-registered model."""
    found = plugins()
    if model_id in found.models:
        return found.models[model_id]
    registry = registry_with_plugins(registry)
    return create_model(registry.get(model_id))


def get_embedding_model(model_id: str, registry: Registry | None = None) -> Model | EmbeddingModel:
    """Return an in-process embedding model by id: a plugin's, or a registry entry's."""
    found = plugins()
    if model_id in found.embedding_models:
        return found.embedding_models[model_id]
    return get_model(model_id, registry)
