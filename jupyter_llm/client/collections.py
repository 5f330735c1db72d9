"""``HostCollections``: retrieval collections served next to a ``ModelHost``.

The one place both faces share: the server's collections handlers (names only, ingest
paths confined to the Jupyter ``root_dir``, sources reported relative to it) and
``LocalClient`` (names or ``.sqlite`` paths, paths relative to the working directory).
It resolves names to files, runs GGUF embedding models through the host, answers with the
host's chat model, and validates search parameters the same way for both.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    Conflict,
    Forbidden,
    InvalidOptions,
    InvalidRequest,
    JupyterLLMError,
    NotFound,
    UnknownModel,
)

if TYPE_CHECKING:
    from ..retrieval.answer import Answer
    from ..retrieval.collection import Collection
    from ..retrieval.manager import CollectionManager
    from ..retrieval.search import SearchResults

__all__ = ["HostCollections", "AskRun", "check_search_params", "search_dict", "answer_dict",
           "stream_answer", "MODES", "VECTOR_BACKENDS", "MAX_K"]

MODES = ("dense", "lexical", "hybrid")
VECTOR_BACKENDS = ("vec", "vss")
MAX_K = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

ProgressCallback = Callable[[dict[str, Any]], None]


def check_search_params(k: Any, mode: Any) -> None:
    """Raise ``InvalidOptions`` (422) naming ``k`` and/or ``mode`` when out of range."""
    fields = []
    if mode not in MODES:
        fields.append({"field": "mode", "message": f"must be one of {', '.join(MODES)}, "
                                                    f"not {mode!r}"})
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        fields.append({"field": "k", "message": f"must be an integer from 1 to {MAX_K}, "
                                                 f"not {k!r}"})
    if fields:
        summary = "; ".join(f"{f['field']} {f['message']}" for f in fields)
        raise InvalidOptions(f"Invalid search parameters — {summary}.", details={"fields": fields})


def search_dict(results: SearchResults) -> dict[str, Any]:
    """JSON-ready search results, each with its file ``path`` as well as its ``source``."""
    out = results.to_dict()
    for row, r in zip(out["results"], results.results, strict=True):
        row["path"] = r.path
    return out


def answer_dict(answer: Answer, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready answer fields shared by the streamed final line and the one-shot answer."""
    return {"model": answer.model, **(summary or {}), "supported": answer.supported,
            "retrieval_only": answer.retrieval_only, "note": answer.note, "cited": answer.cited,
            "citations": [c.to_dict() for c in answer.citations]}


class _HostEmbedding:
    """``embed(texts)`` through the host: GGUF embedding models run in the host's workers."""

    def __init__(self, host: Any, model_id: str) -> None:
        self.host = host
        self.model_id = model_id

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text from the host's embedding model."""
        return self.host.embed(list(texts), self.model_id)


class _HostChat:
    """The chat model ``retrieval.answer.ask`` expects: ``prompt(messages=, stream=)`` on the host."""

    def __init__(self, host: Any, model_id: str, **chat_kwargs: Any) -> None:
        self.host = host
        self.model_id = model_id
        self.chat_kwargs = chat_kwargs
        self.response: Any = None
        self._cancelled = threading.Event()

    def prompt(self, *, messages: list[dict[str, Any]], stream: bool = True,
               **options: Any) -> Any:
        """Start the chat on the host and return its streaming ``Response``."""
        if self._cancelled.is_set():
            return iter(())
        self.response = self.host.chat(messages, self.model_id, **self.chat_kwargs, **options)
        if self._cancelled.is_set():
            self.response.cancel()
        return self.response

    def cancel(self) -> None:
        """Stop the generation (thread-safe)."""
        self._cancelled.set()
        if self.response is not None:
            self.response.cancel()

    def summary(self) -> dict[str, Any]:
        """``finish_reason``, ``usage`` and ``timings`` of the chat, once it ended."""
        r = self.response
        if r is None:
            return {"finish_reason": None, "usage": None, "timings": None}
        return {"finish_reason": r.finish_reason or "stop",
                "usage": r.usage.to_dict() if r.usage else None, "timings": r.timings}


class AskRun:
    """One prepared grounded answer: the collection is open and the chat model resolved."""

    def __init__(self, owner: HostCollections, coll: Collection, question: str,
                 chat: _HostChat | None, note: str | None, k: int, mode: str,
                 source: str | None, options: dict[str, Any]) -> None:
        self.owner, self.coll, self.question = owner, coll, question
        self.chat, self.note = chat, note
        self.k, self.mode, self.source, self.options = k, mode, source, options
        self.answer: Answer | None = None

    def run(self, on_text: Callable[[str], None] | None = None) -> Answer:
        """Search, then answer with the chat model (or retrieval only); blocking."""
        answer = self.coll.ask(self.question, model=self.chat, k=self.k, mode=self.mode,
                               source=self.source, on_text=on_text, **self.options)
        if self.note and not answer.note:
            answer.note = self.note
        for c in answer.citations:
            c.source = self.owner.display(self.coll, c.source)
        if answer.results is not None:
            for r in answer.results.results:
                r.source = self.owner.display(self.coll, r.source)
        self.answer = answer
        return answer

    def cancel(self) -> None:
        """Stop the chat model's generation, if one runs."""
        if self.chat is not None:
            self.chat.cancel()

    def summary(self) -> dict[str, Any]:
        """``finish_reason``, ``usage``, ``timings`` (chat fields) of the finished answer."""
        answer = self.answer
        if answer is not None and not answer.supported:
            return {"finish_reason": "not_covered", "usage": None, "timings": None}
        if answer is None or answer.retrieval_only or self.chat is None:
            return {"finish_reason": "retrieval_only", "usage": None, "timings": None}
        return self.chat.summary()


class HostCollections:
    """Collections next to a host: create, list, delete, ingest, search and ask."""

    def __init__(self, host: Callable[[], Any], manager: CollectionManager | None = None, *,
                 root: str | os.PathLike[str] | None = None, names_only: bool = False) -> None:
        self._get_host = host
        if manager is None:
            from ..retrieval.manager import CollectionManager

            manager = CollectionManager()
        self.manager = manager
        self.root = Path(root).expanduser().resolve() if root is not None else None
        self.names_only = names_only
        self._attached: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    # -- names and paths ---------------------------------------------------------------------
    def path(self, name: str | os.PathLike[str]) -> Path:
        """The collection file for a name (or, unless ``names_only``, a ``.sqlite`` path)."""
        if not self.names_only:
            return self.manager.path(name)
        text = os.fspath(name)
        if not _NAME.match(text):
            raise InvalidRequest(
                f"{text!r} is not a valid collection name: use 1–100 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit.", details={"field": "name"})
        return self.manager.root / f"{text}.sqlite"

    def names(self) -> list[str]:
        """The names of the collections in the collections folder."""
        root = self.manager.root
        return sorted(p.stem for p in root.glob("*.sqlite")) if root.is_dir() else []

    def display(self, coll: Collection, key: str) -> str:
        """A recorded source key as shown to users: relative to ``root`` when inside it."""
        if self.root is None:
            return key
        path = coll.resolve_source(key)
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return key

    def resolve_paths(self, paths: Sequence[str]) -> list[Path]:
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

    # -- collections ---------------------------------------------------------------------------
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
            if coll in self._attached or eid.startswith("openai:") or "/" in eid:
                return coll
        emb = self.embedder(eid)
        if not isinstance(emb, str):
            coll.use_embedder(emb)
        with self._lock:
            self._attached.add(coll)
        return coll

    def _not_found(self, name: str | os.PathLike[str]) -> NotFound:
        known = self.names()
        listed = ", ".join(known) if known else "none yet"
        return NotFound(f"No collection {os.fspath(name)!r}. Known collections: {listed}. "
                        "Create one with POST llm/api/collections (or "
                        "client.create_collection(name)).",
                        details={"collection": os.fspath(name), "known": known})

    def open(self, name: str | os.PathLike[str]) -> Collection:
        """Open a collection (404 naming the known ones when it does not exist)."""
        path = self.path(name)
        if not path.is_file():
            raise self._not_found(name)
        return self.attach(self.manager.open(path))

    def info(self, coll: Collection) -> dict[str, Any]:
        """The collection's summary, with ``embedding_model`` and a displayable path."""
        info = coll.info()
        info["embedding_model"] = info.get("embedder_id")
        return info

    def list(self) -> list[dict[str, Any]]:
        """Every collection in the collections folder (broken files listed with ``error``)."""
        out = []
        for item in self.manager.list():
            if "embedder_id" in item:
                item["embedding_model"] = item["embedder_id"]
            out.append(item)
        return out

    def create(self, name: str, *, vector_backend: str | None = None,
               embedding_model: str | None = None) -> tuple[dict[str, Any], bool]:
        """Create a collection; an existing one is returned if it matches. Returns (info, created)."""
        if vector_backend is not None and vector_backend not in VECTOR_BACKENDS:
            raise InvalidOptions(
                f"vector_backend must be one of {', '.join(VECTOR_BACKENDS)}, not "
                f"{vector_backend!r}.", details={"fields": [
                    {"field": "vector_backend", "message": f"not one of {VECTOR_BACKENDS}"}]})
        path = self.path(name)
        existed = path.is_file()
        if existed:
            coll = self.manager.open(path)
            if vector_backend is not None and vector_backend != coll.meta.vector_backend:
                raise Conflict(
                    f"The collection {coll.name!r} exists with the {coll.meta.vector_backend!r} "
                    f"vector backend, not {vector_backend!r}; delete it first or use a new name.",
                    details={"collection": coll.name,
                             "vector_backend": coll.meta.vector_backend})
            if embedding_model is not None:
                coll.use_embedder(self.embedder(embedding_model))  # EmbedderMismatch (409)
            return self.info(self.attach(coll)), False
        coll = self.manager.create(path, embedder=self.embedder(embedding_model),
                                   vector_backend=vector_backend or "vec", exist_ok=True)
        return self.info(self.attach(coll)), True

    def delete(self, name: str | os.PathLike[str]) -> bool:
        """Delete a collection file (404 when it does not exist)."""
        path = self.path(name)
        if not path.is_file():
            raise self._not_found(name)
        self.manager.delete(path)
        return True

    # -- ingest, search, ask -----------------------------------------------------------------
    def progress_dict(self, coll: Collection, event: Any) -> dict[str, Any]:
        """One NDJSON progress line for an ``IngestProgress``."""
        return {"done": event.done, "total": event.total, "path": self.display(coll, event.path),
                "status": event.status, "chunks": event.chunks, "error": event.error}

    def ingest(self, name: str | os.PathLike[str], paths: Sequence[str], *,
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
        return {"done": True, "status": "done", "collection": coll.name, "summary": summary,
                **shown, "failed": failed, "chunks": report.chunks,
                "documents": info["documents"], "total_chunks": info["chunks"]}

    def _source_filter(self, source: str | None) -> str | None:
        """A root-relative ``source`` filter as the recorded (absolute) form."""
        if not source or self.root is None or os.path.isabs(source):
            return source
        if any(ch in source for ch in "*?["):
            return f"{self.root.as_posix()}/{source}"
        target = (self.root / source).resolve()
        return target.as_posix() if target.exists() and target.is_relative_to(self.root) \
            else source

    def search(self, name: str | os.PathLike[str], query: str, *, k: int = 5,
               mode: str = "hybrid", source: str | None = None) -> SearchResults:
        """The ``k`` best chunks with citations and a ``supported`` verdict."""
        check_search_params(k, mode)
        coll = self.open(name)
        results = coll.search(query, k=k, mode=mode, source=self._source_filter(source))
        for r in results.results:
            r.source = self.display(coll, r.source)
        return results

    def prepare_ask(self, name: str | os.PathLike[str], question: str, *,
                    model: str | None = None, k: int = 5, mode: str = "hybrid",
                    source: str | None = None, options: dict[str, Any] | None = None,
                    **chat_kwargs: Any) -> AskRun:
        """Check everything that can fail before an answer streams: the collection, the
        parameters, the question and the chat model (an unknown named model is 404; no
        default chat model means a retrieval-only answer)."""
        check_search_params(k, mode)
        if not isinstance(question, str) or not question.strip():
            raise InvalidRequest("The question is empty; ask something.",
                                 details={"fields": [{"field": "question",
                                                      "message": "is empty"}]})
        coll = self.open(name)
        host = self._host()
        chat, note = None, None
        try:
            spec = host.resolve(model)
        except JupyterLLMError as e:
            if model is not None:
                raise
            note = f"No chat model is available ({e.message})"
        else:
            chat = _HostChat(host, spec.id, **chat_kwargs)
        return AskRun(self, coll, question, chat, note, k, mode,
                      self._source_filter(source), dict(options or {}))

    def close(self) -> None:
        """Close every open collection file."""
        self.manager.close_all()


def stream_answer(run: AskRun) -> Any:
    """A ``Response`` streaming ``run``'s text; when it ends, ``response.answer`` holds the
    ``Answer`` and ``response.citations`` its citations. Closing it early stops the model."""
    import queue

    from ..errors import Cancelled
    from ..models import Finish, Response, Usage

    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    end = object()
    stop = threading.Event()

    def on_text(text: str) -> None:
        if stop.is_set():
            raise Cancelled("The answer was cancelled.")
        events.put(text)

    def work() -> None:
        try:
            run.run(on_text=on_text)
        except BaseException as e:  # re-raised in the reading thread
            events.put(e)
        finally:
            events.put(end)

    def pieces() -> Any:
        threading.Thread(target=work, daemon=True, name="jupyter-llm-ask").start()
        finished = False
        try:
            while (event := events.get()) is not end:
                if isinstance(event, BaseException):
                    raise event
                yield event
            finished = True
        finally:
            if not finished:
                stop.set()
                run.cancel()
        answer = run.answer
        assert answer is not None
        response.answer = answer
        response.citations = answer.citations
        response.model_id = answer.model or response.model_id
        summary = run.summary()
        usage = summary.get("usage") or {}
        yield Finish(summary.get("finish_reason") or "stop",
                     Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
                     if usage else None)

    response = Response(pieces(), model_id=run.chat.model_id if run.chat else "retrieval")
    return response
