"""``ModelHost`` owns everything about models being available, installed and loaded.

Every face (server handlers, ``LocalClient``, the CLI) calls these methods; none of them
repeats this logic.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import Forbidden, InvalidRequest, ModelNotReady
from ..models import Message, Model, Request, Response, check_messages
from ..plugins import create_model, plugins, registry_with_plugins
from ..registry import ModelSpec, Registry, parse_model_query
from ..store import Store

__all__ = ["ModelHost"]

log = logging.getLogger(__name__)


class ModelHost:
    """Loads models once and shares them with every caller in this process."""

    def __init__(self, settings: Settings | None = None, *, registry: Registry | None = None,
                 store: Store | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.registry = registry_with_plugins(registry or Registry.load())
        self.store = store or Store()
        self._downloads: Any = None
        self._loaded: dict[str, Model] = {}
        self._last_used: dict[str, float] = {}
        self._lock = threading.RLock()

    # -- registry and state ----------------------------------------------------------------
    def reload_registry(self) -> None:
        """Re-read every registry file (after a user edits one)."""
        self.registry = registry_with_plugins(Registry.load())

    @property
    def downloads(self) -> Any:
        """The download manager (created on first use)."""
        if self._downloads is None:
            from ..downloads import DownloadManager

            self._downloads = DownloadManager(self.store)
        return self._downloads

    def loaded_ids(self) -> set[str]:
        """Ids of the models loaded now (remote models are never 'loaded')."""
        with self._lock:
            return set(self._loaded)

    def state(self, spec: ModelSpec) -> str:
        """available, downloading, installed or loaded."""
        if spec.id in self._loaded:
            return "loaded"
        if spec.id in plugins().models:
            return "installed"
        return self.store.state(spec)

    def models(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Every registry model as a dict with its ``state``, optionally filtered by tag."""
        specs = self.registry.with_tags([tag]) if tag else list(self.registry)
        return [{**spec.summary(), "state": self.state(spec)} for spec in specs]

    def resolve(self, query: str | None = None, *, embedding: bool = False) -> ModelSpec:
        """Turn an id, alias, ``tags:A,B`` query, GGUF path or None (the default) into a spec."""
        if query is None:
            query = (self.settings.default_embedding_model if embedding
                     else self.settings.default_model)
        if query is None:
            query = "tags:EMBEDDING" if embedding else "tags:CONVERSATIONAL"
        if query.endswith(".gguf") and Path(query).expanduser().is_file():
            return self._spec_for_path(Path(query).expanduser(), embedding)
        model_id, tags = parse_model_query(query)
        if model_id is not None:
            return self.registry.get(model_id)
        installed = self.store.installed_ids() | set(plugins().models)
        return self.registry.select(tags=tags, fallback_mode="requirements_load",
                                    installed=installed, loaded=self.loaded_ids())

    def _spec_for_path(self, path: Path, embedding: bool) -> ModelSpec:
        spec = ModelSpec(id=path.stem, name=path.name, backend="llama_cpp",
                         tags=["EMBEDDING"] if embedding else ["CONVERSATIONAL"],
                         filename=path.name, source=str(path))
        spec.__pydantic_extra__["path"] = str(path)
        self.registry.add(spec)
        return spec

    # -- downloads -------------------------------------------------------------------------
    def pull(self, model_id: str, progress: Any = None) -> dict[str, Any]:
        """Download a registry model (shared with concurrent pulls) and return its manifest."""
        if not self.settings.allow_downloads:
            raise Forbidden("Downloads are disabled on this server (allow_downloads is off).")
        spec = self.registry.get(model_id)
        if spec.is_remote:
            return {"id": spec.id, "remote": True}
        self.downloads.download(spec, progress=progress)
        return self.store.manifest(spec) or {"id": spec.id}

    def cancel_pull(self, model_id: str) -> bool:
        """Cancel a running download of this model; the partial file is kept."""
        return bool(self.downloads.cancel(self.registry.get(model_id).id))

    def remove(self, model_id: str) -> bool:
        """Unload and delete an installed model."""
        spec = self.registry.get(model_id)
        self.unload(spec.id)
        return self.store.remove(spec)

    # -- loading -------------------------------------------------------------------------
    def _model_for(self, spec: ModelSpec) -> Model:
        path = (spec.model_extra or {}).get("path")
        if path:
            from ..backends.llama_cpp import LlamaCppModel

            return LlamaCppModel(spec.id, spec, path=path, embedding=spec.is_embedding)
        return create_model(spec)

    def get(self, spec: ModelSpec, *, auto_load: bool | None = None) -> Model:
        """The loaded model for ``spec``, loading it when allowed."""
        with self._lock:
            model = self._loaded.get(spec.id)
            if model is None:
                if not (self.settings.auto_load if auto_load is None else auto_load):
                    raise ModelNotReady(
                        f"Model {spec.id!r} is not loaded; load it first "
                        f"(`jupyter llm load {spec.id}`).", details={"model": spec.id})
                model = self._load(spec)
            self._last_used[spec.id] = time.time()
            return model

    def _load(self, spec: ModelSpec, **options: Any) -> Model:
        if spec.backend == "llama_cpp" and not spec.model_extra.get("path") \
                and not self.store.is_installed(spec):
            raise ModelNotReady(f"Model {spec.id!r} is not installed. Run `jupyter llm pull "
                                f"{spec.id}` (or `%llm pull {spec.id}`).",
                                details={"model": spec.id})
        model = self._model_for(spec)
        loader = getattr(model, "load", None)
        if loader is not None:
            loader(**{k: v for k, v in options.items() if k in ("n_ctx", "n_threads")})
        self._loaded[spec.id] = model
        return model

    def load(self, model_id: str, **options: Any) -> dict[str, Any]:
        """Load a model now and return its ``ps`` entry."""
        spec = self.resolve(model_id)
        with self._lock:
            if spec.id not in self._loaded:
                self._load(spec, **options)
            self._last_used[spec.id] = time.time()
        return next(p for p in self.ps() if p["id"] == spec.id)

    def unload(self, model_id: str) -> bool:
        """Unload a model and free its memory; False when it was not loaded."""
        spec = self.resolve(model_id)
        with self._lock:
            model = self._loaded.pop(spec.id, None)
            self._last_used.pop(spec.id, None)
        if model is None:
            return False
        model.close()
        return True

    def ps(self) -> list[dict[str, Any]]:
        """The loaded models with backend and last use."""
        with self._lock:
            return [{"id": mid, "backend": model.backend, "last_used": self._last_used.get(mid)}
                    for mid, model in self._loaded.items()]

    # -- running -------------------------------------------------------------------------
    def chat(self, messages: list[Message], model: str | None = None, **options: Any) -> Response:
        """Run a chat on the named (or default) model and return a streaming Response."""
        spec = self.resolve(model)
        instance = self.get(spec)
        request = Request(messages=check_messages(messages), options=instance.options(options))
        return instance.run(request)

    def generate(self, prompt: str, model: str | None = None, **options: Any) -> Response:
        """Run a raw completion on the named (or default) model."""
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt must be a string.")
        spec = self.resolve(model)
        instance = self.get(spec)
        return instance.run(Request(prompt=prompt, options=instance.options(options)))

    def embed(self, texts: list[str], model: str | None = None) -> list[list[float]]:
        """Embed texts with the named (or default) embedding model."""
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("input must be a string or a list of strings.")
        spec = self.resolve(model, embedding=True)
        return self.get(spec).embed(texts)

    def close(self) -> None:
        """Unload every model."""
        for model_id in list(self.loaded_ids()):
            self.unload(model_id)
