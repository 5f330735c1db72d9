"""The collections API ``llm/api/collections…``: list, create, delete, ingest (NDJSON
progress), search and ask (grounded answers, streamed like chat). Handlers only parse, call
the extension's ``HostCollections`` off the loop, and answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tornado import web

from ..errors import Forbidden
from ..host.streams import CallbackStream
from .base import LLMHandler
from .native import ndjson

__all__ = ["default_handlers", "CreateCollectionBody", "IngestBody", "SearchBody", "AskBody"]


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
    """``POST llm/api/collections/{name}/search``."""

    query: str
    k: int = Field(5, description="Number of results, 1–1000.")
    mode: str = Field("hybrid", description='"dense", "lexical" or "hybrid".')
    source: str | None = Field(None, description="Only files under this path, or a glob.")


class AskBody(_Body):
    """``POST llm/api/collections/{name}/ask``."""

    question: str
    model: str | None = Field(None, description="Chat model (id, alias, tags:…); null: default.")
    stream: bool = Field(True, description="Stream NDJSON lines like chat.")
    k: int = Field(5, description="Number of passages to ground on, 1–1000.")
    mode: str = Field("hybrid", description='"dense", "lexical" or "hybrid".')
    source: str | None = Field(None, description="Only files under this path, or a glob.")
    options: dict[str, Any] = Field(default_factory=dict, description="Generation options.")
    log: bool = Field(True, description="Record the chat in the history.")


class CollectionsHandlerBase(LLMHandler):
    """Shared helpers: the extension's ``HostCollections`` and callback-driven streams."""

    async def collections(self) -> Any:
        """The server's ``HostCollections`` (created on first use, off the loop)."""
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
    async def get(self) -> None:
        """Every collection in the data directory."""
        colls = await self.collections()
        self.write_json({"collections": await self.run_blocking(colls.list)})

    @web.authenticated
    async def post(self) -> None:
        """Create a collection (201), or return a matching existing one (200)."""
        body = self.parse(CreateCollectionBody)
        colls = await self.collections()
        info, created = await self.run_blocking(
            colls.create, body.name, vector_backend=body.vector_backend,
            embedding_model=body.embedding_model)
        self.write_json(info, 201 if created else 200)


class CollectionHandler(CollectionsHandlerBase):
    """``GET`` / ``DELETE llm/api/collections/{name}``."""

    @web.authenticated
    async def get(self, name: str) -> None:
        """One collection's summary."""
        colls = await self.collections()
        self.write_json(await self.run_blocking(lambda: colls.info(colls.open(name))))

    @web.authenticated
    async def delete(self, name: str) -> None:
        """Delete the collection file (the ingested source files are untouched)."""
        colls = await self.collections()
        self.write_json({"removed": await self.run_blocking(colls.delete, name)})


class IngestHandler(CollectionsHandlerBase):
    """``POST llm/api/collections/{name}/ingest``: NDJSON progress ending with a summary."""

    @web.authenticated
    async def post(self, name: str) -> None:
        """Add, update and remove documents; a disconnect stops after the current batch."""
        body = self.parse(IngestBody)
        if not self.authorizer.is_authorized(self, self.current_user, "read", "contents"):
            raise Forbidden(
                "Ingesting reads files on the server, and this server does not let you read "
                "its files (`jupyter llm serve` refuses file access). Build the collection "
                "where the files are (`jupyter llm ingest NAME FOLDER`) and copy the .sqlite "
                "file into the host's collections folder.")
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
    async def post(self, name: str) -> None:
        """The best chunks with citations and whether the collection covers the query."""
        from ..client.collections import search_dict

        body = self.parse(SearchBody)
        colls = await self.collections()
        results = await self.run_blocking(colls.search, name, body.query, k=body.k,
                                          mode=body.mode, source=body.source)
        self.write_json(search_dict(results))


class AskHandler(CollectionsHandlerBase):
    """``POST llm/api/collections/{name}/ask``: a grounded answer with citations."""

    @web.authenticated
    async def post(self, name: str) -> None:
        """Stream ``{"delta"}`` lines then ``{"done": true, …, "citations", "supported"}``;
        or one JSON answer with ``stream: false``."""
        from ..client.collections import answer_dict

        body = self.parse(AskBody)
        colls = await self.collections()
        run = await self.run_blocking(
            colls.prepare_ask, name, body.question, model=body.model, k=body.k, mode=body.mode,
            source=body.source, options=body.options, log=body.log, face="api",
            user=self.identity())
        if not body.stream:
            answer = await self.run_blocking(run.run)
            self.write_json({**answer_dict(answer, run.summary()),
                             "message": {"role": "assistant", "content": answer.text}})
            return

        def work(emit: Callable[[Any], None]) -> dict[str, Any]:
            answer = run.run(on_text=emit)
            return {"done": True, **answer_dict(answer, run.summary())}

        await self.stream_calls(work, on_cancel=run.cancel)


default_handlers = [
    (r"/llm/api/collections", CollectionsHandler),
    (r"/llm/api/collections/([^/]+)", CollectionHandler),
    (r"/llm/api/collections/([^/]+)/ingest", IngestHandler),
    (r"/llm/api/collections/([^/]+)/search", SearchHandler),
    (r"/llm/api/collections/([^/]+)/ask", AskHandler),
]
