"""The plugin manager: loads the ``jupyter_llm`` entry points and resolves model ids."""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import RegistryError
from .models import Backend, EmbeddingModel, Model
from .registry import ModelSpec, Registry
from .store import Store

__all__ = ["pm", "Plugins", "plugins", "get_backend", "create_model", "model_file", "get_model",
           "get_embedding_model", "registry_with_plugins", "reset"]

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


def get_backend(name: str, spec: ModelSpec | None = None) -> Backend:
    """The backend a plugin registered under ``name`` (``spec``: the entry that names it)."""
    found = plugins()
    backend = found.backends.get(name)
    if backend is None:
        raise _unknown_backend(name, spec, found)
    return backend


def model_file(spec: ModelSpec, store: Store) -> Path:
    """The file of a local model: the path its entry names, else its file in ``store``."""
    path = (spec.model_extra or {}).get("path")
    if path:
        return Path(path)
    return store.installed_path(spec) or store.path_for(spec)


def create_model(spec: ModelSpec, *, store: Store | None = None, **load: Any) -> Model:
    """Create an (unloaded) model object for a registry entry through its backend.

    A plugin's ready model is returned as is. An ``in_worker`` backend gets the model file
    (``path``, else the one in ``store``, by default the data directory's) and ``load``
    (``n_ctx``, ``n_threads``); any other backend gets only the entry.
    """
    found = plugins()
    if spec.id in found.models:
        return found.models[spec.id]
    backend = get_backend(spec.backend, spec)
    if not backend.in_worker:
        return backend.create(spec)
    if load.get("path") is None:
        load["path"] = model_file(spec, store or Store())
    return backend.create(spec, **load)


def _unknown_backend(name: str, spec: ModelSpec | None, found: Plugins) -> RegistryError:
    known = ", ".join(sorted(found.backends))
    if spec is None:
        return RegistryError(f"No installed plugin provides the backend {name!r} (known: {known}).",
                             details={"backend": name})
    return RegistryError(
        f"Model {spec.id!r} uses backend {name!r}, which no installed plugin provides "
        f"(known: {known}). Install the plugin or fix the entry in "
        f"{spec.source or 'its registry'}.", details={"model": spec.id, "backend": name})


def get_model(model_id: str, registry: Registry | None = None, *,
              store: Store | None = None) -> Model:
    """Return an in-process model for a registry id or alias, or a plugin-registered model
    (``jupyter_llm.get_model``)."""
    found = plugins()
    if model_id in found.models:
        return found.models[model_id]
    registry = registry_with_plugins(registry)
    return create_model(registry.get(model_id), store=store)


def get_embedding_model(model_id: str, registry: Registry | None = None, *,
                        store: Store | None = None) -> Model | EmbeddingModel:
    """Return an in-process embedding model by id: a plugin's, or a registry entry's."""
    found = plugins()
    if model_id in found.embedding_models:
        return found.embedding_models[model_id]
    return get_model(model_id, registry, store=store)
