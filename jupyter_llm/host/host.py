"""``ModelHost`` owns everything about models being available, installed and loaded.

Every face (server handlers, ``LocalClient``, the CLI) calls these methods; none of them
repeats this logic. All public methods are thread-safe.

- Every model is created through the plugins. A model of an ``in_worker`` backend (local
  GGUF files with ``llama_cpp``, or a plugin's) runs in its own worker process
  (``WorkerModel``); remote models (the ``openai`` backend) and plugins' ready models run
  in this process.
- Loads are shared: concurrent first requests for a model wait for one load.
- Each model has a bounded queue (``ModelQueue``), fair across users by default
  (``scheduling``); a worker runs ``parallel`` requests at once (its batch slots; 1 for
  models that do not batch), and a full queue answers ``Busy``.
  A waiting request's stream tells its place in line (``Queued`` events).
- Local models share a memory budget; idle ones are unloaded least-recently-used first
  to make room, and after ``keep_alive`` idle seconds (the ``Reaper``).
- A worker that dies fails its in-flight request with ``WorkerCrashed``; the model is
  forgotten and the next request loads it again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..config import Settings
from ..confine import check_path_text, confine, safe_file_name
from ..errors import (
    Busy,
    Forbidden,
    InvalidRequest,
    JupyterLLMError,
    ModelLoadError,
    ModelNotReady,
    hint,
)
from ..limits import check_texts
from ..models import Message, Model, Request, Response, check_messages
from ..options import validate_options
from ..plugins import create_model, get_backend, model_file, plugins, registry_with_plugins
from ..redact import install_log_redaction
from ..registry import ModelSpec, Registry, parse_model_query
from ..store import Store
from .classroom import Classroom
from .limits import Admission
from .memory import (
    MB,
    Candidate,
    Reaper,
    Resident,
    choose_victims,
    default_budget_bytes,
    default_parallel,
    estimate_model_bytes,
    kv_cache_bytes,
)
from .model_facts import embed_counted, template_warnings, trained_length, usability
from .policy import Identity
from .records import record_history
from .scheduler import ModelQueue
from .streams import HostStream
from .tutoring import CodeGuard, GuardedExecution
from .worker_model import WorkerModel

__all__ = ["ModelHost"]

log = logging.getLogger(__name__)

REMOTE_CONCURRENCY = 4
"""Requests a remote (or plugin) model runs at once; local workers run ``parallel``."""
PROMPT_READ_TOKENS = 512
"""Prompt tokens (estimated) that requests of a batching local model granted a slot may still
be reading (``ModelQueue.readers``): its sequences read prompts a chunk at a time anyway, so
the fair queue, not arrival at the worker, decides whose long prompt is read next, while short
prompts that fit together in one chunk start together."""

_LOAD_OPTIONS = ("n_ctx", "n_threads")


class _LoadOptions(BaseModel):
    """The options that (re)load a local model, validated before anything uses them."""

    n_ctx: int | None = Field(None, ge=16, le=1 << 20)
    n_threads: int | None = Field(None, ge=1, le=1024)
    parallel: int | None = Field(None, ge=1, le=64)


class ModelHost:
    """Loads models once and shares them with every caller in this process."""

    def __init__(self, settings: Settings | None = None, *, registry: Registry | None = None,
                 store: Store | None = None, history: Any = None,
                 use_workers: bool = True, trust_paths: bool = True) -> None:
        install_log_redaction()
        self.settings = settings or Settings.from_env()
        self.trust_paths = trust_paths  # False on servers: paths only in allow_model_paths
        self.store = store or Store()
        self.registry = self._with_url_models(registry_with_plugins(registry or Registry.load()))
        self.use_workers = use_workers
        self.memory_budget_bytes = default_budget_bytes(self.settings.memory_budget_mb)
        self._downloads: Any = None
        self._history = history
        self._lock = threading.RLock()
        self._loaded: dict[str, Resident] = {}
        self._loading: dict[str, Future[Resident]] = {}
        self._reserved: dict[str, int] = {}
        self._queues: dict[str, ModelQueue] = {}
        self._in_process: dict[str, Model] = {}
        self._reaper: Reaper | None = None
        self.classroom = Classroom(self.settings, lambda: self.history)

    # -- registry and state ----------------------------------------------------------------
    def _with_url_models(self, registry: Registry) -> Registry:
        """Add entries for models once downloaded from a URL (``url:*``), from their manifests."""
        from ..downloads import spec_from_url

        for manifest in self.store.installed():
            model_id, url = manifest.get("id", ""), manifest.get("source_url")
            if model_id.startswith("url:") and url and model_id not in registry.models:
                try:
                    registry.add(spec_from_url(url, model_id=model_id, sha256=manifest.get("sha256")))
                except Exception as e:  # a bad manifest must not stop the host
                    log.warning("Skipping URL-installed model %s: %s", model_id, e)
        return registry

    @property
    def downloads(self) -> Any:
        """The download manager (created on first use)."""
        if self._downloads is None:
            from ..downloads import DownloadManager

            self._downloads = DownloadManager(self.store)
        return self._downloads

    @property
    def history(self) -> Any:
        """The history log (``jupyter_llm.history.History``), or None when unavailable."""
        if self._history is None:
            try:
                from ..history import History
            except ImportError:
                return None
            self._history = History()
        return self._history

    def loaded_ids(self) -> set[str]:
        """Ids of the local models loaded now (remote models are never 'loaded')."""
        with self._lock:
            return set(self._loaded)

    def state(self, spec: ModelSpec) -> str:
        """available, downloading, installed or loaded."""
        if spec.id in self._loaded:
            return "loaded"
        if spec.id in plugins().models:
            return "installed"
        return self.store.state(spec)

    def models(self, tag: str | None = None, *,
               user: str | Identity | None = None) -> list[dict[str, Any]]:
        """Every registry model as a dict with its ``state``, whether ``user`` may use it
        (``allowed``) and whether it can answer (``usable``: False, with a ``hint``, for a
        remote model whose API key variable is unset), optionally filtered by tag."""
        specs = self.registry.with_tags([tag]) if tag else list(self.registry)
        identity = self.classroom.identify(user)
        return [{**spec.summary(), "state": self.state(spec),
                 "allowed": self.classroom.allowed(identity, spec.id), **usability(spec),
                 **spec.origin()}
                for spec in specs]

    def resolve(self, query: str | None = None, *, embedding: bool = False) -> ModelSpec:
        """Turn an id, alias, ``tags:A,B`` query, GGUF path or None (the default) into a spec."""
        if query is None:
            query = (self.settings.default_embedding_model if embedding
                     else self.settings.default_model)
        if query is None:
            query = "tags:EMBEDDING" if embedding else "tags:CONVERSATIONAL"
        if query.endswith(".gguf") and query not in self.registry:
            path = self._allowed_path(query)
            if path.is_file():
                return self._spec_for_path(path, embedding)
        model_id, tags = parse_model_query(query)
        if model_id is not None:
            return self.registry.get(model_id)
        installed = self.store.installed_ids() | set(plugins().models)
        return self.registry.select(tags=tags, fallback_mode="requirements_load",
                                    installed=installed, loaded=self.loaded_ids())

    def _allowed_path(self, query: str) -> Path:
        """A model file named by path: any file in-process; on a server only inside the
        ``allow_model_paths`` folders (the same 403 whether or not the file exists)."""
        if self.trust_paths:
            return Path(check_path_text(query, field="model")).expanduser()
        for folder in self.settings.allow_model_paths:
            try:
                return confine(query, folder, what="model")
            except Forbidden:
                continue
        raise Forbidden(
            "This server does not load model files by path; name a model from "
            "`GET llm/api/models` (an id, an alias or tags:...). The operator can allow "
            "folders with allow_model_paths (JUPYTER_LLM_ALLOW_MODEL_PATHS).",
            details={"field": "model"})

    def _spec_for_path(self, path: Path, embedding: bool) -> ModelSpec:
        """A registry entry for a GGUF file; it never takes over another model's id."""
        path = path.resolve()
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).lstrip("._-") or "model"
        with self._lock:
            for model_id in (stem, f"{stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"):
                existing = self.registry.models.get(model_id)
                if existing is not None and (existing.model_extra or {}).get("path") == str(path):
                    return existing
                if existing is None and model_id not in self.registry.aliases:
                    break
            spec = ModelSpec(id=model_id, name=path.name, backend="llama_cpp",
                             tags=["EMBEDDING"] if embedding else ["CONVERSATIONAL"],
                             filename=path.name if safe_file_name(path.name) else None,
                             source=str(path))
            spec.__pydantic_extra__["path"] = str(path)
            self.registry.add(spec)
            return spec

    # -- downloads -------------------------------------------------------------------------
    def pull(self, model_id: str, progress: Any = None, *, sha256: str | None = None) -> dict[str, Any]:
        """Download a registry model or allowed URL (shared by concurrent pulls); its manifest.

        ``sha256`` is checked for URL downloads (registry models carry their own)."""
        if not self.settings.allow_downloads:
            raise Forbidden("Downloads are disabled on this server (allow_downloads is off).")
        if "://" in model_id and model_id not in self.registry:  # a URL that no registry lists
            from ..downloads import spec_from_url

            self.downloads.download_url(model_id, progress=progress, sha256=sha256,
                                        allow_url_downloads=self.settings.allow_url_downloads)
            self.registry.add(spec := spec_from_url(model_id, sha256=sha256))
            return self._installed(spec)
        if model_id.endswith(".gguf") and model_id not in self.registry:
            self._allowed_path(model_id)  # a path: the same 403 as loading it, on a server
        spec = self.registry.get(model_id)
        if spec.is_remote:
            return {"id": spec.id, "remote": True}
        self.downloads.download(spec, progress=progress)
        return self._installed(spec)

    def _installed(self, spec: Any) -> dict[str, Any]:
        """The manifest of an installed model with ``path``, the full path of its file."""
        manifest = self.store.manifest(spec)
        if manifest is None:
            return {"id": spec.id}
        return {**manifest, "path": str(self.store.dir_for(spec) / manifest["file"])}

    def cancel_pull(self, model_id: str) -> bool:
        """Cancel a running download of this model; the partial file is kept."""
        return bool(self.downloads.cancel(self.registry.get(model_id).id))

    def remove(self, model_id: str) -> bool:
        """Unload and delete an installed model."""
        spec = self.registry.get(model_id)
        self.unload(spec.id)
        return self.downloads.remove(spec)  # cancels a running download first

    # -- loading ---------------------------------------------------------------------------
    def _is_local(self, spec: ModelSpec) -> bool:
        """True for models of an ``in_worker`` backend: loaded, budgeted, kept alive here."""
        found = plugins()
        backend = found.backends.get(spec.backend)
        return backend is not None and backend.in_worker and spec.id not in found.models

    def _path_of(self, spec: ModelSpec) -> Path:
        if not (spec.model_extra or {}).get("path") and not self.store.is_installed(spec):
            raise ModelNotReady(f"Model {spec.id!r} is not installed; download it first.",
                                details=hint("pull", model=spec.id))
        return model_file(spec, self.store)

    def _in_process_model(self, spec: ModelSpec, *, embedding: bool = False) -> Model:
        with self._lock:
            model = self._in_process.get(spec.id)
            if model is None:
                found = plugins()
                if embedding and spec.id in found.embedding_models:
                    model = found.embedding_models[spec.id]  # type: ignore[assignment]
                else:
                    model = create_model(spec, store=self.store)
                self._in_process[spec.id] = model
            return model

    def _keep_alive(self, value: float | None) -> float | None:
        """Seconds to stay loaded when idle; None for ever. A request's 0 means at once."""
        if value is None:
            return self.settings.keep_alive_s or None
        return None if value < 0 else float(value)

    def _acquire(self, spec: ModelSpec, *, auto_load: bool | None = None,
                 load_options: dict[str, Any] | None = None) -> Resident:
        """The loaded entry of a local model, loading it once for all concurrent callers."""
        while True:
            with self._lock:
                entry = self._loaded.get(spec.id)
                if entry is not None:
                    if getattr(entry.model, "alive", True):
                        entry.last_used = time.time()
                        return entry
                    del self._loaded[spec.id]  # its worker died; load it again
                future = self._loading.get(spec.id)
                owner = future is None
                if owner:
                    if not (self.settings.auto_load if auto_load is None else auto_load):
                        raise ModelNotReady(
                            f"Model {spec.id!r} is not loaded; load it first.",
                            details=hint("load", model=spec.id))
                    future = Future()
                    self._loading[spec.id] = future
            assert future is not None
            if owner:
                self._load_into(spec, future, load_options or {})
            entry = future.result()
            if getattr(entry.model, "alive", True):
                return entry

    def _load_into(self, spec: ModelSpec, future: Future[Resident], options: dict[str, Any]) -> None:
        try:
            path = self._path_of(spec)
            n_ctx = options.get("n_ctx") or self.settings.n_ctx
            parallel = self._parallel(spec, path, n_ctx, options)
            need = estimate_model_bytes(path, ram_bytes=spec.ram_bytes, n_ctx=n_ctx,
                                        parallel=parallel)
            victims = self._make_room(spec, need)
            for victim in victims:
                log.info("Unloading %s to make room for %s", victim.spec.id, spec.id)
                victim.model.close()
            model = self._new_local_model(spec, path, n_ctx, {**options, "parallel": parallel})
            model.load(n_ctx=n_ctx, n_threads=options.get("n_threads"))
            loaded_parallel = getattr(model, "parallel", 1)
            if loaded_parallel != parallel:  # the model does not batch: one context
                need = estimate_model_bytes(path, ram_bytes=spec.ram_bytes, n_ctx=n_ctx)
            entry = Resident(spec=spec, model=model, bytes=need,
                            n_ctx=model.context_size or n_ctx,
                            keep_alive=self._keep_alive(options.get("keep_alive")),
                            kv_bytes=loaded_parallel * kv_cache_bytes(
                                path, n_ctx=model.context_size or n_ctx))
            with self._lock:
                self._loaded[spec.id] = entry
            future.set_result(entry)
        except BaseException as e:
            future.set_exception(e)
        finally:
            with self._lock:
                self._loading.pop(spec.id, None)
                self._reserved.pop(spec.id, None)
        self._poke_reaper()

    def _parallel(self, spec: ModelSpec, path: Path, n_ctx: int | None,
                  options: dict[str, Any]) -> int:
        """Batch slots for a load: the load option, else the setting, else what the memory
        budget allows for this context size (1 for embedding models)."""
        if spec.is_embedding:
            return 1
        return options.get("parallel") or self.settings.parallel or default_parallel(
            path, n_ctx=n_ctx, budget=self.memory_budget_bytes, ram_bytes=spec.ram_bytes)

    def _make_room(self, spec: ModelSpec, need: int) -> list[Resident]:
        """Reserve ``need`` bytes for a load; take the LRU idle models that must go."""
        budget = self.memory_budget_bytes
        if need > budget:
            raise ModelLoadError(
                f"Model {spec.id!r} needs about {need // MB} MB, more than the whole memory "
                f"budget of {budget // MB} MB. Raise memory_budget_mb (JUPYTER_LLM_MEMORY_BUDGET_MB)"
                ", lower n_ctx, or choose a smaller model or quantization.",
                details={"model": spec.id, "need_mb": need // MB, "budget_mb": budget // MB})
        with self._lock:
            candidates = [Candidate(mid, e.bytes, e.last_used, self._queue_idle(mid))
                          for mid, e in self._loaded.items()]
            chosen = choose_victims(candidates, need=need, budget=budget,
                                    max_models=self.settings.max_loaded_models,
                                    reserved=sum(self._reserved.values()),
                                    reserved_count=len(self._reserved))
            if chosen is None:
                busy = sorted(c.model_id for c in candidates if not c.idle)
                raise Busy(
                    f"No room to load {spec.id!r}: the loaded models {', '.join(busy) or '(loading)'}"
                    f" are busy and the limits are {self.settings.max_loaded_models} models and "
                    f"{budget // MB} MB. Retry shortly, or raise max_loaded_models / "
                    "memory_budget_mb.", retry_after=5,
                    details={"model": spec.id, "busy": busy})
            self._reserved[spec.id] = need
            return [self._loaded.pop(mid) for mid in chosen]

    def _queue_idle(self, model_id: str) -> bool:
        queue = self._queues.get(model_id)
        return queue is None or queue.idle

    def _new_local_model(self, spec: ModelSpec, path: Path, n_ctx: int | None,
                         options: dict[str, Any]) -> Model:
        """A model of an ``in_worker`` backend: in a worker process, or here when
        ``use_workers`` is off (tests, debugging)."""
        n_threads = options.get("n_threads") or self.settings.n_threads
        backend = get_backend(spec.backend, spec)
        if self.use_workers:  # in this process a model runs one request at a time
            return WorkerModel(backend, spec, path=path, n_ctx=n_ctx, n_threads=n_threads,
                               parallel=options.get("parallel"), on_exit=self._worker_exited)
        return create_model(spec, path=path, n_ctx=n_ctx, n_threads=n_threads)

    def _worker_exited(self, worker: WorkerModel, error: JupyterLLMError | None) -> None:
        with self._lock:
            entry = self._loaded.get(worker.model_id)
            if entry is not None and entry.model is worker:
                del self._loaded[worker.model_id]

    def get(self, spec: ModelSpec, *, auto_load: bool | None = None) -> Model:
        """The model object for ``spec`` (loading a local one when allowed)."""
        if not self._is_local(spec):
            return self._in_process_model(spec)
        return self._acquire(spec, auto_load=auto_load).model

    def load(self, model_id: str, **options: Any) -> dict[str, Any]:
        """Load a model now (options: n_ctx, n_threads, keep_alive) and return its ``ps`` entry."""
        unknown = set(options) - {*_LOAD_OPTIONS, "parallel", "keep_alive"}
        if unknown:
            raise InvalidRequest(f"Unknown load option(s) {', '.join(sorted(unknown))}; known: "
                                 "n_ctx, n_threads, parallel, keep_alive.",
                                 details={"fields": sorted(unknown)})
        keep = {"keep_alive": options["keep_alive"]} if "keep_alive" in options else {}
        if keep and not isinstance(keep["keep_alive"], (int, float)) \
                or isinstance(keep.get("keep_alive"), bool):
            raise InvalidRequest("keep_alive must be a number of seconds.",
                                 details={"fields": ["keep_alive"]})
        options = {**validate_options(  # type: ignore[arg-type]
            _LoadOptions, {k: options[k] for k in (*_LOAD_OPTIONS, "parallel") if k in options}
        ).model_dump(exclude_none=True), **keep}
        spec = self.resolve(model_id)
        if not self._is_local(spec):
            self._in_process_model(spec)
            return {"id": spec.id, "backend": spec.backend, "remote": True}
        with self._lock:
            entry = self._loaded.get(spec.id)
        if entry is not None and (
                options.get("n_ctx") and entry.n_ctx != options["n_ctx"] or options.get(
                    "parallel") and getattr(entry.model, "parallel", 1) != options["parallel"]):
            self.unload(spec.id)  # reload with the new context size or slots
        entry = self._acquire(spec, auto_load=True, load_options=options)
        if "keep_alive" in options:
            entry.keep_alive = self._keep_alive(options["keep_alive"])
            self._poke_reaper()
        return next((p for p in self.ps() if p["id"] == spec.id), {"id": spec.id})

    def unload(self, model_id: str) -> bool:
        """Unload a model and free its memory; False when it was not loaded."""
        spec = self.resolve(model_id)
        with self._lock:
            future = self._loading.get(spec.id)
        if future is not None:
            try:
                future.result()
            except Exception:  # noqa: BLE001 - a failed load leaves nothing to unload
                return False
        with self._lock:
            entry = self._loaded.pop(spec.id, None)
        if entry is None:
            return False
        entry.model.close()
        return True

    def ps(self) -> list[dict[str, Any]]:
        """The loaded local models: pid, memory, queue, last use, expiry, the context size
        they run with and their chat template's source."""
        with self._lock:
            entries = list(self._loaded.values())
        rows = []
        for e in entries:
            template = getattr(e.model, "chat_template_info", None)
            rows.append({**e.ps_entry(self._queues.get(e.spec.id)),
                         "chat_template": None if e.spec.is_embedding else template})
        return rows

    # -- keep-alive --------------------------------------------------------------------------
    def _poke_reaper(self) -> None:
        with self._lock:
            if self._reaper is None:
                if not self._loaded:
                    return
                self._reaper = Reaper(self._reap)
                self._reaper.start()
            self._reaper.poke()

    def _reap(self, now: float) -> float | None:
        """Unload the idle models whose keep-alive ran out; return the next expiry."""
        expired: list[Resident] = []
        next_at: float | None = None
        with self._lock:
            for mid, e in list(self._loaded.items()):
                expires = e.expires_at(self._queues.get(mid))
                if expires is None:
                    continue
                if expires <= now:
                    expired.append(self._loaded.pop(mid))
                else:
                    next_at = expires if next_at is None else min(next_at, expires)
        for e in expired:
            log.info("Unloading %s after %.0f idle seconds (keep_alive)", e.spec.id, e.keep_alive)
            e.model.close()
        return next_at

    # -- running ---------------------------------------------------------------------------
    def _queue(self, spec: ModelSpec) -> ModelQueue:
        with self._lock:
            queue = self._queues.get(spec.id)
            entry = self._loaded.get(spec.id)
            concurrency = getattr(entry.model, "parallel", 1) if entry is not None else \
                1 if self._is_local(spec) else REMOTE_CONCURRENCY
            if queue is None:
                queue = ModelQueue(spec.id, size=self.settings.queue_size,
                                   concurrency=concurrency,
                                   scheduling=self.settings.scheduling,
                                   per_user=self.settings.queue_per_user)
                self._queues[spec.id] = queue
            queue.concurrency = concurrency  # the model's batch slots (a reload may change them)
            # batched local sequences read prompts a chunk at a time: the queue picks whose
            # long prompt is read next (PROMPT_READ_TOKENS)
            queue.readers = PROMPT_READ_TOKENS if concurrency > 1 and self._is_local(spec) else None
            return queue

    def _run(self, spec: ModelSpec, options: dict[str, Any], keep_alive: float | None,
             make: Any, log_fields: dict[str, Any] | None, *, admission: Admission | None = None,
             guard: CodeGuard | None = None, user: str | None = None) -> Response:
        try:
            return self._start_run(spec, options, keep_alive, make, log_fields, admission, guard,
                                   user)
        except BaseException:
            if admission is not None:
                admission.finish()
            raise

    def _start_run(self, spec: ModelSpec, options: dict[str, Any], keep_alive: float | None,
                   make: Any, log_fields: dict[str, Any] | None, admission: Admission | None,
                   guard: CodeGuard | None, user: str | None) -> Response:
        local = self._is_local(spec)
        load_options = {k: v for k, v in validate_options(  # type: ignore[arg-type]
            _LoadOptions, {k: options[k] for k in _LOAD_OPTIONS if k in options}
        ).model_dump(exclude_none=True).items() if v}
        options = {**options, **load_options}
        if local:
            entry = self._acquire(spec, load_options=load_options)
            model = entry.model
            if keep_alive is not None:
                entry.keep_alive = self._keep_alive(keep_alive)
        else:
            model = self._in_process_model(spec)
        request = make(model.options(options))
        if local and request.options.n_ctx:  # the worker reloads its context at this size
            trained = trained_length(entry)
            entry.n_ctx = min(request.options.n_ctx, trained or request.options.n_ctx)
        warnings = template_warnings(model, spec) if request.is_chat else []
        ticket = self._queue(spec).enter(user, request.prompt_tokens_estimate())

        def start() -> Any:
            current = self._acquire(spec, auto_load=True, load_options=load_options).model \
                if local else model
            execution = current.execute(request)
            return GuardedExecution(guard, execution) if guard is not None else execution

        def on_end(stream: HostStream) -> None:
            self._touch(spec.id)
            if admission is not None:
                usage = stream.finish.usage if stream.finish else None
                admission.finish((usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
                                 if usage else len(stream.pieces))
            if log_fields is not None:
                record_history(self, spec.id, request, stream, **log_fields,
                               guard=guard)

        stream = HostStream(ticket, start, on_end)
        response = Response(stream, model_id=spec.id, request=request,
                            request_id=log_fields.get("request_id") if log_fields else None)
        response.warnings.extend(warnings)
        return response

    def _touch(self, model_id: str) -> None:
        with self._lock:
            entry = self._loaded.get(model_id)
            if entry is not None:
                entry.last_used = time.time()
        self._poke_reaper()

    def chat(self, messages: list[Message], model: str | None = None, *, log: bool = True,
             face: str = "python", user: str | None = None, keep_alive: float | None = None,
             tutoring: bool = False, **options: Any) -> Response:
        """Run a chat on the named (or default) model and return a streaming Response
        (``tutoring``: the material asks for the tutoring guard, on top of the policy)."""
        messages = check_messages(messages)
        check_texts((str(m.get("content") or "") for m in messages), self.settings)
        spec = self.resolve(model)
        identity = self.classroom.identify(user)
        messages, guard = self.classroom.guard(identity, messages, requested=tutoring)
        admission = self.classroom.admit(identity, spec.id, face)
        fields = self.classroom.log_fields(log, face, identity)
        return self._run(spec, options, keep_alive,
                         lambda opts: Request(messages=messages, options=opts), fields,
                         admission=admission, guard=guard, user=identity.name)

    def generate(self, prompt: str, model: str | None = None, *, log: bool = True,
                 face: str = "python", user: str | None = None, keep_alive: float | None = None,
                 **options: Any) -> Response:
        """Run a raw completion on the named (or default) model."""
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt must be a string.")
        check_texts([prompt], self.settings)
        spec = self.resolve(model)
        identity = self.classroom.identify(user)
        admission = self.classroom.admit(identity, spec.id, face)
        fields = self.classroom.log_fields(log, face, identity)
        return self._run(spec, options, keep_alive,
                         lambda opts: Request(prompt=prompt, options=opts), fields,
                         admission=admission, user=identity.name)

    def embed(self, texts: list[str], model: str | None = None, *,
              keep_alive: float | None = None, user: str | Identity | None = None,
              cancel: threading.Event | None = None) -> list[list[float]]:
        """Embed texts with the named (or default) embedding model."""
        return self.embed_with_usage(texts, model, keep_alive=keep_alive, user=user,
                                     cancel=cancel)[0]

    def embed_with_usage(self, texts: list[str], model: str | None = None, *,
                         keep_alive: float | None = None, user: str | Identity | None = None,
                         cancel: threading.Event | None = None,
                         ) -> tuple[list[list[float]], int | None]:
        """Embed texts; also the tokens they took (None when the model cannot tell).
        Setting ``cancel`` (the client left) stops a local model's work (``Cancelled``)."""
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("input must be a string or a list of strings.")
        check_texts(texts, self.settings, what="input", embedding=True)
        spec = self.resolve(model, embedding=True)
        identity = self.classroom.identify(user)
        if user is not None:  # a request from outside (the API): the policy applies
            self.classroom.admit(identity, spec.id, "api").finish()
        if not self._is_local(spec):
            return embed_counted(self._in_process_model(spec, embedding=True), texts)
        entry = self._acquire(spec)
        if keep_alive is not None:
            entry.keep_alive = self._keep_alive(keep_alive)
        ticket = self._queue(spec).enter(identity.name)
        try:
            ticket.wait()
            running = self._acquire(spec, auto_load=True).model
            if cancel is not None and isinstance(running, WorkerModel):
                return running.embed_with_usage(texts, cancel=cancel)
            return embed_counted(running, texts)
        finally:
            ticket.release()
            self._touch(spec.id)

    def close(self) -> None:
        """Unload every model and stop the reaper."""
        with self._lock:
            reaper, self._reaper = self._reaper, None
            entries = list(self._loaded.values())
            self._loaded.clear()
        if reaper is not None:
            reaper.stop()
        for entry in entries:
            entry.model.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

