"""The collections API ``llm/api/collections…``: list, create, delete, ingest (NDJSON
progress), search (one query or a batch), ask (grounded answers, streamed like chat) and
evaluate (a question set measured item by item, NDJSON).
Handlers only parse, call the host's collections service (``host.collections``) off the
loop, and answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tornado import web

from ..errors import Forbidden, InvalidRequest
from ..host.streams import CallbackStream
from .base import LLMHandler
from .native import ndjson

__all__ = ["default_handlers", "CreateCollectionBody", "IngestBody", "SearchBody", "AskBody",
           "EvaluateBody"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateCollectionBody(_Body):
    """``POST llm/api/collections``."""

    name: str = Field(description="Letters, digits, '.', '_' or '-' (the file name).")
    vector_backend: str | None = Field(
        None, description='"vec" (sqlite-vec, the default for a new collection) or "vss".')
    embedding_model: str | None = Field(
        None, description="all-MiniLM-L6-v2 (default), a registry GGUF embedding model id "
                          "(run by the host), or openai:MODEL@BASE_URL.")
    chunk_size: int | None = Field(None, description="Tokens per chunk of a new collection "
                                                     "(16–8192, default 200).")
    chunk_overlap: int | None = Field(None, description="Tokens two chunks share (default 32).")


class CollectionSettingsBody(_Body):
    """``PATCH llm/api/collections/{name}``."""

    tutoring_guard: bool | None = Field(None, description=(
        "Guard answers from this collection for students (collapse complete code solutions); "
        "null leaves it as it is."))


class IngestBody(_Body):
    """``POST llm/api/collections/{name}/ingest``."""

    paths: list[str] = Field(description="Files or folders, relative to the server's root_dir.")
    include: list[str] = Field(default_factory=list, description="Only files matching a glob.")
    exclude: list[str] = Field(default_factory=list, description="Skip files matching a glob.")
    stream: bool = Field(True, description="Stream NDJSON progress lines.")

    @field_validator("paths")
    @classmethod
    def _plain_paths(cls, paths: list[str]) -> list[str]:
        for p in paths:
            if not p or "\x00" in p or any(0xD800 <= ord(c) <= 0xDFFF for c in p):
                raise ValueError("each path must be non-empty text without NUL bytes or lone "
                                 "surrogates")
        return paths


class SearchBody(_Body):
    """``POST llm/api/collections/{name}/search``: ``query``, or a batch of ``queries``."""

    query: str | None = Field(None, description="The query (or give `queries`).")
    queries: list[str] | None = Field(None, description="A batch of queries: the answer is "
                                                         '{"searches": [one result per query]}.')
    k: int = Field(5, description="Number of results, 1–1000.")
    mode: str = Field("hybrid", description='"dense", "lexical" or "hybrid".')
    source: str | None = Field(None, description="Only files under this path, or a glob.")
    threshold: float | None = Field(None, description="Best cosine similarity that counts as "
                                                      "covered (null: the collection's own).")


class AskBody(_Body):
    """``POST llm/api/collections/{name}/ask``."""

    question: str
    model: str | None = Field(None, description="Chat model (id, alias, tags:…); null: default.")
    stream: bool = Field(True, description="Stream NDJSON lines like chat.")
    k: int = Field(5, description="Number of passages to ground on, 1–1000.")
    mode: str = Field("hybrid", description='"dense", "lexical" or "hybrid".')
    source: str | None = Field(None, description="Only files under this path, or a glob.")
    threshold: float | None = Field(None, description="Best cosine similarity that counts as "
                                                      "covered (null: the collection's own).")
    retrieval_only: bool = Field(False, description="Answer with the cited passages only.")
    options: dict[str, Any] = Field(default_factory=dict, description="Generation options.")
    log: bool = Field(True, description="Record the chat in the history.")


class EvaluateBody(_Body):
    """``POST llm/api/collections/{name}/evaluate``."""

    questions: list[dict[str, Any]] = Field(
        description="The question file's lines as objects: question, sources, contains, "
                    "unanswerable, id (see docs/retrieval.md).")
    models: list[str | None] = Field(default_factory=list, description="Chat models to compare "
                                     "(null or retrieval-only: search only); empty: search only.")
    k: int = Field(5, description="Passages retrieved per question, 1–1000.")
    mode: str = Field("hybrid", description='"dense", "lexical" or "hybrid".')
    threshold: float | None = Field(None, description="Best cosine similarity that counts as "
                                                      "covered (null: the collection's own).")
    options: dict[str, Any] = Field(default_factory=dict, description="Generation options.")


def _root_paths(body: dict[str, Any]) -> dict[str, Any]:
    """Over HTTP a citation's ``path`` is its ``source``: relative to the server's root (or
    to the collection's base), never an absolute path on the server."""
    for c in body.get("citations") or []:
        c["path"] = c["source"]
    return body


class CollectionsHandlerBase(LLMHandler):
    """Shared helpers: the host's collections service and callback-driven streams."""

    async def collections(self) -> Any:
        """The server's collections service (created on first use, off the loop)."""
        return await self.run_blocking(lambda: self.llm.collections)

    async def stream_calls(self, run: Callable[[Callable[[Any], None]], Any],
                           on_cancel: Callable[[], None] | None = None) -> None:
        """Stream as NDJSON what ``run(emit)`` emits, then its return value as the last line.

        ``run`` runs in its own thread; after a disconnect, ``emit`` raises ``Cancelled`` so
        the work stops at its next step.
        """
        stream = CallbackStream(lambda emit: emit(run(emit)), on_cancel=on_cancel,
                                name="jupyter-llm-collections")
        await self.stream(stream, ndjson, "application/x-ndjson")


class CollectionsHandler(CollectionsHandlerBase):
    """``GET`` / ``POST llm/api/collections``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every collection in the data directory."""
        colls = await self.collections()
        self.write_json({"collections": await self.run_blocking(colls.list)})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Create a collection (201), or return a matching existing one (200)."""
        body = self.parse(CreateCollectionBody)
        colls = await self.collections()
        info, created = await self.run_blocking(
            colls.create, body.name, vector_backend=body.vector_backend,
            embedding_model=body.embedding_model, chunk_size=body.chunk_size,
            chunk_overlap=body.chunk_overlap)
        self.write_json(info, 201 if created else 200)


class CollectionHandler(CollectionsHandlerBase):
    """``GET`` / ``DELETE llm/api/collections/{name}``."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """One collection's summary."""
        colls = await self.collections()
        self.write_json(await self.run_blocking(lambda: colls.info(colls.open(name))))

    @web.authenticated
    @authorized
    async def patch(self, name: str) -> None:
        """Change the collection's settings (the tutoring guard: instructors and admins)."""
        body = self.parse(CollectionSettingsBody)
        colls = await self.collections()
        self.write_json(await self.run_blocking(
            colls.configure, name, tutoring_guard=body.tutoring_guard, user=self.identity()))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Delete the collection file (the ingested source files are untouched)."""
        colls = await self.collections()
        self.write_json({"removed": await self.run_blocking(colls.delete, name)})


class DocumentsHandler(CollectionsHandlerBase):
    """``GET llm/api/collections/{name}/documents``."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """The documents of a collection, by path."""
        colls = await self.collections()
        self.write_json({"documents": await self.run_blocking(colls.documents, name)})


class IngestHandler(CollectionsHandlerBase):
    """``POST llm/api/collections/{name}/ingest``: NDJSON progress ending with a summary."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Add, update and remove documents; a disconnect stops after the current batch."""
        body = self.parse(IngestBody)
        if not self.authorizer.is_authorized(self, self.current_user, "read", "contents"):
            raise Forbidden(
                "Ingesting reads files on the server, and this server does not let you read "
                "its files (a shared model host refuses file access). Build the collection "
                "where the files are and copy its .sqlite file into the host's collections "
                "folder.", details={"collection": name})
        colls = await self.collections()
        # errors that need their own status: unknown collection, path outside root_dir, missing
        await self.run_blocking(lambda: (colls.open(name), colls.resolve_paths(body.paths)))

        def run(emit: Callable[[Any], None] | None) -> dict[str, Any]:
            return colls.ingest(name, body.paths, include=body.include, exclude=body.exclude,
                                progress=emit)

        if not body.stream:
            self.write_json(await self.run_blocking(run, None))
            return
        await self.stream_calls(run)


class SearchHandler(CollectionsHandlerBase):
    """``POST llm/api/collections/{name}/search``."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """The best chunks with citations and whether the collection covers the query; for a
        batch (``queries``), ``{"searches": [...]}`` in the same order."""
        from ..host.grounded import search_dict

        body = self.parse(SearchBody)
        if (body.query is None) == (body.queries is None):
            raise InvalidRequest("Give either `query` or `queries` (a list of queries).",
                                 details={"fields": [{"field": "query",
                                                      "message": "give query or queries"}]})
        colls = await self.collections()
        found = await self.run_blocking(
            colls.search_many, name, body.queries if body.query is None else [body.query],
            k=body.k, mode=body.mode, source=body.source, threshold=body.threshold)
        if body.query is not None:
            self.write_json(search_dict(found[0]))
        else:
            self.write_json({"searches": [search_dict(r) for r in found]})


class AskHandler(CollectionsHandlerBase):
    """``POST llm/api/collections/{name}/ask``: a grounded answer with citations."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Stream ``{"delta"}`` lines then ``{"done": true, …, "citations", "supported"}``;
        or one JSON answer with ``stream: false``."""
        from ..host.grounded import answer_dict

        body = self.parse(AskBody)
        colls = await self.collections()
        run = await self.run_blocking(
            colls.prepare_ask, name, body.question, model=body.model, k=body.k, mode=body.mode,
            source=body.source, threshold=body.threshold, retrieval_only=body.retrieval_only,
            options=body.options, log=body.log, face="api", user=self.identity())
        if not body.stream:
            answer = await self.run_blocking(run.run)
            self.write_json({**_root_paths(answer_dict(answer, run.summary())),
                             "message": {"role": "assistant", "content": answer.text}})
            return

        def work(emit: Callable[[Any], None]) -> dict[str, Any]:
            answer = run.run(on_text=emit, on_queued=emit)
            return {"done": True, **_root_paths(answer_dict(answer, run.summary()))}

        await self.stream_calls(work, on_cancel=run.cancel)


class EvaluateHandler(CollectionsHandlerBase):
    """``POST llm/api/collections/{name}/evaluate``: one NDJSON ``{"item"}`` line per question
    and model, then ``{"done": true, "measured": N}``; a disconnect stops the run."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Measure the questions with each model, streaming every item as it is measured."""
        import json

        from ..retrieval.questions import parse_questions

        body = self.parse(EvaluateBody)
        questions = parse_questions([json.dumps(q) for q in body.questions], "questions")
        colls = await self.collections()
        items = await self.run_blocking(
            colls.evaluate_items, name, questions, body.models, k=body.k, mode=body.mode,
            threshold=body.threshold, options=body.options, log=False, face="api",
            user=self.identity())

        def work(emit: Callable[[Any], None]) -> dict[str, Any]:
            measured = 0
            try:
                for item in items:
                    emit({"item": item.to_dict()})
                    measured += 1
            finally:
                items.close()
            return {"done": True, "measured": measured}

        await self.stream_calls(work)


default_handlers = [
    (r"/llm/api/collections", CollectionsHandler),
    (r"/llm/api/collections/([^/]+)", CollectionHandler),
    (r"/llm/api/collections/([^/]+)/documents", DocumentsHandler),
    (r"/llm/api/collections/([^/]+)/ingest", IngestHandler),
    (r"/llm/api/collections/([^/]+)/search", SearchHandler),
    (r"/llm/api/collections/([^/]+)/ask", AskHandler),
    (r"/llm/api/collections/([^/]+)/evaluate", EvaluateHandler),
]
