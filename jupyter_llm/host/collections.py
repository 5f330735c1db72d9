"""``HostCollections``: the one collections service, next to a ``ModelHost``.

Every face reaches collections through it: the server's handlers (names only, ingest paths
confined to the Jupyter ``root_dir``, sources shown relative to it) and ``LocalClient`` (names
or ``.sqlite`` paths, paths relative to the working directory). It owns the naming rule, the
collections folder, the open files (one ``Collection`` per file, thread-safe), embedder
resolution (registry GGUF embedders run in the host's workers), the checks of search
parameters and the not-found error. ``retrieval/`` stays a plain library below it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import paths as _paths
from ..errors import (
    Conflict,
    Forbidden,
    InvalidOptions,
    InvalidRequest,
    JupyterLLMError,
    NotFound,
    UnknownModel,
    hint,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..retrieval.collection import Collection
    from ..retrieval.evaluate import EvalItem
    from ..retrieval.questions import Question
    from ..retrieval.search import SearchResults
    from .grounded import AskRun

__all__ = ["HostCollections", "check_search_params", "MODES", "VECTOR_BACKENDS", "MAX_K",
           "SUFFIX"]

MODES = ("dense", "lexical", "hybrid")
VECTOR_BACKENDS = ("vec", "vss")
MAX_K = 1000
SUFFIX = ".sqlite"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PATH_SUFFIXES = (SUFFIX, ".db", ".sqlite3")

ProgressCallback = Callable[[dict[str, Any]], None]


def check_search_params(k: Any, mode: Any, threshold: Any = None) -> None:
    """Raise ``InvalidOptions`` (422) naming ``k``, ``mode`` and/or ``threshold`` when invalid."""
    fields = []
    if mode not in MODES:
        fields.append({"field": "mode", "message": f"must be one of {', '.join(MODES)}, "
                                                    f"not {mode!r}"})
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        fields.append({"field": "k", "message": f"must be an integer from 1 to {MAX_K}, "
                                                 f"not {k!r}"})
    if threshold is not None and (isinstance(threshold, bool)
                                  or not isinstance(threshold, int | float)
                                  or not -1.0 <= threshold <= 1.0):
        fields.append({"field": "threshold",
                       "message": f"must be a number from -1 to 1, not {threshold!r}"})
    if fields:
        summary = "; ".join(f"{f['field']} {f['message']}" for f in fields)
        raise InvalidOptions(f"Invalid search parameters — {summary}.", details={"fields": fields})


class _HostEmbedding:
    """``embed(texts)`` through the host: GGUF embedding models run in the host's workers."""

    def __init__(self, host: Any, model_id: str) -> None:
        self.host = host
        self.model_id = model_id

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text from the host's embedding model."""
        return self.host.embed(list(texts), self.model_id)


class HostCollections:
    """Collections next to a host: create, list, delete, ingest, search and ask."""

    def __init__(self, host: Callable[[], Any], *,
                 collections_dir: str | os.PathLike[str] | None = None,
                 root_dir: str | os.PathLike[str] | None = None,
                 names_only: bool = False) -> None:
        self._get_host = host
        self._dir = Path(collections_dir).expanduser() if collections_dir is not None else None
        self.root = Path(root_dir).expanduser().resolve() if root_dir is not None else None
        self.names_only = names_only
        self._open: dict[Path, Collection] = {}
        self._attached: set[int] = set()
        self._lock = threading.RLock()

    # -- names and paths ---------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """The folder of named collections (``paths.collections_dir()`` unless given)."""
        return self._dir or _paths.collections_dir()

    def path(self, name: str | os.PathLike[str]) -> Path:
        """The collection file of a name; unless ``names_only``, a ``.sqlite`` path as is."""
        text = os.fspath(name)
        if not self.names_only:
            p = Path(text).expanduser()
            if text.endswith(_PATH_SUFFIXES) or "/" in text or os.sep in text or p.is_file():
                return p.resolve()
        if not _NAME.match(text):
            also = "" if self.names_only else f", or a path ending in {SUFFIX}"
            raise InvalidRequest(
                f"{text!r} is not a valid collection name: use 1–100 letters, digits, '.', '_' "
                f"or '-', starting with a letter or digit{also}.",
                details={"field": "name", "fields": [{"field": "name",
                                                       "message": "is not a valid name"}]})
        return (self.folder / f"{text}{SUFFIX}").resolve()

    def names(self) -> list[str]:
        """The names of the collections in the collections folder."""
        folder = self.folder
        return sorted(p.stem for p in folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []

    def display(self, coll: Collection, key: str) -> str:
        """A recorded source key as shown to users: relative to ``root`` when inside it."""
        if self.root is None:
            return key
        path = coll.resolve_source(key)
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return key

    def resolve_paths(self, paths: Sequence[str] | str) -> list[Path]:
        """Files and folders to ingest: relative to ``root`` (and inside it), or the cwd."""
        if isinstance(paths, str | os.PathLike):
            paths = [os.fspath(paths)]
        if not paths:
            raise InvalidRequest("No paths to ingest: give files or folders in `paths`.",
                                 details={"fields": [{"field": "paths", "message": "is empty"}]})
        out = []
        for p in paths:
            if self.root is None:
                target = Path(p).expanduser().resolve()
            else:
                target = (self.root / p).resolve()
                if not target.is_relative_to(self.root):
                    raise Forbidden(
                        f"{p!r} is outside the folder this Jupyter server serves ({self.root}); "
                        "ingest only files and folders under it (paths are relative to it).",
                        details={"path": p, "root_dir": str(self.root)})
            if not target.exists():
                raise NotFound(f"{p!r} does not exist ({target}); give an existing file or "
                               "folder to ingest.", details={"path": p})
            out.append(target)
        return out

    def _not_found(self, name: str | os.PathLike[str]) -> NotFound:
        known = self.names()
        listed = ", ".join(known) if known else "none yet"
        text = os.fspath(name)
        return NotFound(f"No collection {text!r}. Known collections: {listed}. "
                        "Build it by ingesting files or folders into it.",
                        details={"collection": text, "known": known,
                                 **hint("ingest", collection=text)})

    # -- embedders -----------------------------------------------------------------------------
    def _host(self) -> Any:
        return self._get_host()

    def embedder(self, model: str | None) -> Any:
        """The embedder for ``embedding_model``: a host (GGUF) model by registry id, else an id
        for the retrieval layer (``all-MiniLM-L6-v2``, ``openai:…``, a folder); None: default."""
        if model is None or model.startswith(("openai:", "st:")) or "/" in model or \
                Path(model).expanduser().is_dir():
            return model
        host = self._host()
        try:
            spec = host.registry.get(model)
        except UnknownModel:
            return model  # a sentence-transformers name such as all-MiniLM-L6-v2
        from ..retrieval.embedders import HostEmbedder

        return HostEmbedder(_HostEmbedding(host, spec.id), spec.id)

    def attach(self, coll: Collection) -> Collection:
        """Give a collection built with a host model its embedder (once per open file)."""
        eid = coll.meta.embedder_id
        with self._lock:
            if id(coll) in self._attached or eid.startswith("openai:") or "/" in eid:
                return coll
        emb = self.embedder(eid)
        if not isinstance(emb, str):
            coll.use_embedder(emb)
        with self._lock:
            self._attached.add(id(coll))
        return coll

    # -- collections ---------------------------------------------------------------------------
    def open(self, name: str | os.PathLike[str]) -> Collection:
        """Open a collection (cached; 404 naming the known ones when it does not exist)."""
        from ..retrieval.collection import Collection

        path = self.path(name)
        with self._lock:
            coll = self._open.get(path)
            if coll is None:
                if not path.is_file():
                    raise self._not_found(name)
                coll = self._open[path] = Collection.open(path)
        return self.attach(coll)

    def info(self, coll: Collection) -> dict[str, Any]:
        """The collection's summary, with ``embedding_model``."""
        info = coll.info()
        info["embedding_model"] = info.get("embedder_id")
        return info

    def configure(self, name: str | os.PathLike[str], *, tutoring_guard: bool | None = None,
                  user: Any = None) -> dict[str, Any]:
        """Change a collection's settings (only an instructor or admin may set the tutoring
        guard: a student cannot turn it off); returns the new summary."""
        coll = self.open(name)
        if tutoring_guard is not None:
            if not isinstance(tutoring_guard, bool):
                raise InvalidOptions("tutoring_guard must be true or false.", details={
                    "fields": [{"field": "tutoring_guard", "message": "not a boolean"}]})
            classroom = self._host().classroom
            identity = classroom.identify(user)
            if not classroom.policy.policy.roles[identity.role].sees_guarded:
                raise Forbidden(
                    f"The {identity.role} role cannot change the tutoring guard of a "
                    "collection; ask an instructor.", details={"role": identity.role})
            coll.set_tutoring_guard(tutoring_guard)
        return self.info(coll)

    def list(self) -> list[dict[str, Any]]:
        """Every collection in the collections folder (broken files listed with ``error``)."""
        out = []
        for name in self.names():
            try:
                out.append(self.info(self.open(name)))
            except Exception as e:  # a broken file is listed, not fatal
                out.append({"name": name, "path": str(self.path(name)),
                            "error": getattr(e, "message", str(e))})
        return out

    def create(self, name: str | os.PathLike[str], *, vector_backend: str | None = None,
               embedding_model: str | None = None, chunk_size: int | None = None,
               chunk_overlap: int | None = None) -> tuple[dict[str, Any], bool]:
        """Create a collection; an existing one is returned if it matches. Returns (info, created)."""
        from ..retrieval.collection import Collection

        if vector_backend is not None and vector_backend not in VECTOR_BACKENDS:
            raise InvalidOptions(
                f"vector_backend must be one of {', '.join(VECTOR_BACKENDS)}, not "
                f"{vector_backend!r}.", details={"fields": [
                    {"field": "vector_backend", "message": f"not one of {VECTOR_BACKENDS}"}]})
        chunking = _chunking(chunk_size, chunk_overlap)
        path = self.path(name)
        with self._lock:
            if path.is_file():
                coll = self.open(name)
                _check_same(coll, "vector_backend", vector_backend, coll.meta.vector_backend)
                if chunking is not None:
                    _check_same(coll, "chunk_size", chunk_size, coll.meta.chunk_size)
                    _check_same(coll, "chunk_overlap", chunk_overlap, coll.meta.chunk_overlap)
                if embedding_model is not None:
                    coll.use_embedder(self.embedder(embedding_model))  # EmbedderMismatch (409)
                return self.info(coll), False
            coll = Collection.create(path, embedder=self.embedder(embedding_model),
                                     vector_backend=vector_backend or "vec", chunking=chunking,
                                     exist_ok=True)
            self._open[path] = coll
        return self.info(self.attach(coll)), True

    def documents(self, name: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """The documents of a collection: ``source`` (as users see it, relative to ``root``),
        ``path`` (on this machine), title, kind, size, chunks, when ingested."""
        coll = self.open(name)
        return [{**doc, "source": self.display(coll, doc["path"]),
                 "path": str(coll.resolve_source(doc["path"]))} for doc in coll.documents()]

    def delete(self, name: str | os.PathLike[str]) -> bool:
        """Delete a collection file and its WAL files (404 when it does not exist)."""
        path = self.path(name)
        if not path.is_file():
            raise self._not_found(name)
        with self._lock:
            coll = self._open.pop(path, None)
            if coll is not None:
                self._attached.discard(id(coll))
                coll.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return True

    def close(self) -> None:
        """Close every open collection file."""
        with self._lock:
            colls, self._open = list(self._open.values()), {}
            self._attached.clear()
        for c in colls:
            c.close()

    # -- ingest, search, ask -----------------------------------------------------------------
    def progress_dict(self, coll: Collection, event: Any) -> dict[str, Any]:
        """One progress dict (an NDJSON line over HTTP) for an ``IngestProgress``."""
        return {"done": event.done, "total": event.total, "path": self.display(coll, event.path),
                "status": event.status, "chunks": event.chunks, "error": event.error}

    def ingest(self, name: str | os.PathLike[str], paths: Sequence[str] | str, *,
               include: Iterable[str] = (), exclude: Iterable[str] = (),
               progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Ingest files and folders; ``progress`` gets one dict per file. Returns the summary."""
        coll = self.open(name)
        files = self.resolve_paths(paths)
        callback = None if progress is None else (
            lambda event: progress(self.progress_dict(coll, event)))
        report = coll.ingest(files, include=list(include), exclude=list(exclude),
                             progress=callback)
        shown = {key: [self.display(coll, p) for p in getattr(report, key)]
                 for key in ("added", "updated", "unchanged", "removed")}
        failed = [{"path": self.display(coll, s["path"]), "error": s["error"]}
                  for s in report.skipped]
        summary = (f"{len(shown['added'])} added, {len(shown['updated'])} updated, "
                   f"{len(shown['unchanged'])} unchanged, {len(shown['removed'])} removed, "
                   f"{len(failed)} failed ({report.chunks} chunks embedded)")
        info = self.info(coll)
        return {"done": True, "status": "done", "collection": coll.name,
                "path": str(coll.path), "summary": summary, **shown, "failed": failed,
                "chunks": report.chunks, "documents": info["documents"],
                "total_chunks": info["chunks"]}

    def source_filter(self, coll: Collection, source: str | None) -> str | None:
        """A ``source`` filter as recorded: a file or folder (relative to ``root`` on a server,
        else to the working directory) becomes its key relative to the collection's base; a
        glob under ``root`` likewise; anything else is matched against the keys as given."""
        if not source:
            return source
        anchor = self.root if self.root is not None else Path.cwd()
        if any(ch in source for ch in "*?["):
            full = (anchor / source).as_posix()
            base = coll.base.as_posix().rstrip("/") + "/"
            return full[len(base):] if full.startswith(base) else source
        target = (anchor / Path(source).expanduser()).resolve()
        outside = self.root is not None and not target.is_relative_to(self.root)
        if outside or not target.exists():
            return source
        key = coll.source_key(target)
        return None if key == "." else key

    def search(self, name: str | os.PathLike[str], query: str, *, k: int = 5,
               mode: str = "hybrid", source: str | None = None,
               threshold: float | None = None) -> SearchResults:
        """The ``k`` best chunks with citations and a ``supported`` verdict (``threshold``:
        the best similarity that counts as covered; None: the collection's own)."""
        return self.search_many(name, [query], k=k, mode=mode, source=source,
                                threshold=threshold)[0]

    def search_many(self, name: str | os.PathLike[str], queries: Sequence[str], *, k: int = 5,
                    mode: str = "hybrid", source: str | None = None,
                    threshold: float | None = None) -> list[SearchResults]:
        """Search several queries in one call (the collection is opened once)."""
        check_search_params(k, mode, threshold)
        if isinstance(queries, str) or not all(isinstance(q, str) for q in queries):
            raise InvalidRequest("queries must be a list of strings.",
                                 details={"fields": [{"field": "queries",
                                                      "message": "is not a list of strings"}]})
        coll = self.open(name)
        where = self.source_filter(coll, source)
        out = []
        for query in queries:
            results = coll.search(query, k=k, mode=mode, source=where, threshold=threshold)
            for r in results.results:
                r.source = self.display(coll, r.source)
                if self.root is not None:  # a server shows no absolute paths of its own
                    r.path = r.source
            out.append(results)
        return out

    def prepare_ask(self, name: str | os.PathLike[str], question: str, *,
                    model: str | None = None, k: int = 5, mode: str = "hybrid",
                    source: str | None = None, threshold: float | None = None,
                    retrieval_only: bool = False, options: dict[str, Any] | None = None,
                    **chat_kwargs: Any) -> AskRun:
        """Check everything that can fail before an answer streams: the collection, the
        parameters, the question and the chat model (an unknown named model is 404; no
        default chat model, or ``retrieval_only``, means a retrieval-only answer)."""
        from .grounded import AskRun, HostChat

        check_search_params(k, mode, threshold)
        if not isinstance(question, str) or not question.strip():
            raise InvalidRequest("The question is empty; ask something.",
                                 details={"fields": [{"field": "question",
                                                      "message": "is empty"}]})
        coll = self.open(name)
        chat, note = None, None
        if not retrieval_only:
            host = self._host()
            try:
                spec = host.resolve(model)
            except JupyterLLMError as e:
                if model is not None:
                    raise
                note = f"No chat model is available ({e.message})"
            else:
                if coll.meta.tutoring_guard:  # the instructor asked for it on this material
                    chat_kwargs["tutoring"] = True
                chat = HostChat(host, spec.id, **chat_kwargs)
        return AskRun(self.display, coll, question, chat, note, k, mode,
                      self.source_filter(coll, source), dict(options or {}), threshold)

    def evaluate_items(self, name: str | os.PathLike[str], questions: Sequence[Question],
                       models: Sequence[str | None] = (), *, k: int = 5, mode: str = "hybrid",
                       threshold: float | None = None, options: dict[str, Any] | None = None,
                       **chat_kwargs: Any) -> Iterator[EvalItem]:
        """Measure every question with every model (None or ``retrieval-only``: search only),
        model by model, yielding each :class:`EvalItem` (sources shown as in ``search``).

        Everything that can fail before the first question (the collection, the parameters,
        each named model) fails here, before any item is yielded.
        """
        from ..retrieval.evaluate import RETRIEVAL_ONLY_NAME, measure_items
        from .grounded import HostChat

        check_search_params(k, mode, threshold)
        if not questions:
            raise InvalidRequest("There are no questions to evaluate.",
                                 details={"fields": [{"field": "questions",
                                                      "message": "is empty"}]})
        coll = self.open(name)
        named: list[tuple[str, Any]] = []
        for model in models or [None]:
            if model is None or model == RETRIEVAL_ONLY_NAME:
                named.append((RETRIEVAL_ONLY_NAME, None))
            else:
                spec = self._host().resolve(model)
                named.append((model, HostChat(self._host(), spec.id, **chat_kwargs)))
        items = measure_items(coll, list(questions), named, k=k, mode=mode,
                              threshold=threshold, **dict(options or {}))
        return self._displayed(coll, items)

    def _displayed(self, coll: Collection, items: Iterator[EvalItem]) -> Iterator[EvalItem]:
        try:
            for item in items:
                for r in item.retrieved:
                    r["source"] = self.display(coll, r["source"])
                yield item
        finally:
            items.close()  # type: ignore[attr-defined]


def _chunking(chunk_size: int | None, chunk_overlap: int | None) -> Any:
    """``ChunkerSettings`` when either is given (defaults for the other), else None."""
    if chunk_size is None and chunk_overlap is None:
        return None
    from pydantic import ValidationError

    from ..errors import options_error_from_pydantic
    from ..retrieval.chunking import ChunkerSettings

    given = {key: value for key, value in (("chunk_size", chunk_size),
                                           ("chunk_overlap", chunk_overlap)) if value is not None}
    try:
        return ChunkerSettings(**given)
    except ValidationError as e:
        raise options_error_from_pydantic(e, what="chunking setting") from None


def _check_same(coll: Collection, field: str, given: Any, recorded: Any) -> None:
    """409 when an existing collection was built with another setting than ``given``."""
    if given is not None and given != recorded:
        raise Conflict(
            f"The collection {coll.name!r} exists with {field} {recorded!r}, not {given!r}; "
            "delete it first or use a new name.",
            details={"collection": coll.name, field: recorded})
