"""The native API ``llm/api/…``: models, pulls, load/unload, ps, chat, generate, embed and
config (collections: ``collections.py``; history, feedback, tokens: ``classroom.py``). Handlers only parse, call the
``ModelHost`` off the loop, and answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel, ConfigDict, Field
from tornado import web

from ..errors import InvalidRequest
from ..host.model_facts import model_entry
from ..host.streams import CallbackStream
from ..models import Queued
from .base import LLMHandler, error_body
from .generation import Generation, start_generation

__all__ = ["default_handlers", "ChatBody", "GenerateBody", "EmbedBody", "PullBody", "ModelBody",
           "LoadBody", "ndjson"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _with_format(options: dict[str, Any], fmt: str | dict[str, Any] | None) -> dict[str, Any]:
    """Ollama's ``format``: "json" for any JSON object, or a JSON schema the answer must match."""
    if fmt is None:
        return options
    if fmt == "json":
        return {**options, "json_mode": True}
    if isinstance(fmt, dict):
        return {**options, "json_schema": fmt}
    raise InvalidRequest('format: send "json" or a JSON schema object.',
                         details={"field": "format"})


class ChatBody(_Body):
    """``POST llm/api/chat``."""

    model: str | None = Field(None, description="Id, alias, `tags:A,B` query, or null (default).")
    messages: list[dict[str, Any]] = Field(description='[{"role": "user", "content": "..."}]')
    options: dict[str, Any] = Field(default_factory=dict, description=(
        "Generation options. trim_history defaults to true here: the oldest turns are left out "
        "when the conversation does not fit the context, and a warning says so."))
    format: str | dict[str, Any] | None = Field(None, description=(
        '"json", or a JSON schema the answer must match (Ollama\'s format).'))
    stream: bool = Field(True, description="Stream NDJSON lines.")
    log: bool = Field(True, description="Record this request in the history.")
    keep_alive: float | None = Field(None, ge=0, description="Seconds to keep the model loaded.")
    tutoring: bool = Field(False, description=(
        "The material asks for the tutoring guard (a notebook's `jupyter_llm.tutoring_guard` "
        "metadata): on for a student, on top of the policy; never for an instructor."))


class GenerateBody(_Body):
    """``POST llm/api/generate``."""

    model: str | None = None
    prompt: str
    options: dict[str, Any] = Field(default_factory=dict)
    format: str | dict[str, Any] | None = Field(None, description='"json" or a JSON schema.')
    stream: bool = True
    log: bool = True
    keep_alive: float | None = Field(None, ge=0)


class EmbedBody(_Body):
    """``POST llm/api/embed``."""

    model: str | None = None
    input: str | list[str]


class PullBody(_Body):
    """``POST llm/api/pull``."""

    model: str
    stream: bool = True


class ModelBody(_Body):
    """``POST llm/api/pull/cancel`` and ``llm/api/unload``."""

    model: str


class LoadBody(_Body):
    """``POST llm/api/load``."""

    model: str
    options: dict[str, Any] = Field(default_factory=dict, description="Load options, e.g. n_ctx.")


def ndjson(item: Any) -> bytes:
    """Encode one stream item as an NDJSON line (text deltas, ``{"queued": …}`` while waiting
    in line, dicts, or an error)."""
    if isinstance(item, str):
        item = {"delta": item}
    elif isinstance(item, Queued):
        item = {"queued": item.to_dict()}
    elif isinstance(item, BaseException):
        item = error_body(item)[1]
    return json.dumps(item, default=str).encode() + b"\n"


class ModelsHandler(LLMHandler):
    """``GET llm/api/models[?tag=TAG]``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every registry model with its state."""
        host = await self.host()
        tag = self.get_argument("tag", None)
        models = await self.run_blocking(host.models, tag, user=self.identity())
        self.write_json({"models": models})


class ModelHandler(LLMHandler):
    """``GET`` / ``DELETE llm/api/models/{id}``."""

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        """One model with its state."""
        host = await self.host()
        self.write_json(await self.run_blocking(model_entry, host, model_id, self.identity()))

    @web.authenticated
    @authorized
    async def delete(self, model_id: str) -> None:
        """Unload and delete an installed model."""
        host = await self.host()
        self.write_json({"removed": await self.run_blocking(host.remove, model_id)})


class PullHandler(LLMHandler):
    """``POST llm/api/pull``: NDJSON progress, or one JSON answer with ``stream: false``.

    A disconnect does not cancel the download (others may share it); use ``pull/cancel``.
    """

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Download a registry model."""
        body = self.parse(PullBody)
        host = await self.host()
        if not body.stream:
            manifest = await self.run_blocking(host.pull, body.model)
            self.write_json({"model_id": body.model, "status": "done", "manifest": manifest})
            return

        def pull(emit: Callable[[Any], None]) -> None:
            def progress(p: Any) -> None:
                if p.status != "done":  # the transfer's own "done"; ours carries the manifest
                    emit(p.to_dict())

            try:
                manifest = host.pull(body.model, progress=progress)
                emit({"model_id": body.model, "status": "done", "manifest": manifest})
            except Exception as e:
                emit({"model_id": body.model, "status": "error", **error_body(e)[1]})

        # a disconnect detaches from the download (others may share it) without stopping it
        await self.stream(CallbackStream(pull, detach=True, name="jupyter-llm-pull"), ndjson,
                          "application/x-ndjson")


class PullCancelHandler(LLMHandler):
    """``POST llm/api/pull/cancel``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Cancel a running download (the partial file is kept)."""
        body = self.parse(ModelBody)
        host = await self.host()
        self.write_json({"cancelled": await self.run_blocking(host.cancel_pull, body.model)})


class DownloadsHandler(LLMHandler):
    """``GET llm/api/downloads``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The running downloads with their latest progress."""
        host = await self.host()
        active = await self.run_blocking(lambda: host.downloads.active())
        self.write_json({"downloads": [p.to_dict() for p in active]})


class LoadHandler(LLMHandler):
    """``POST llm/api/load``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Load a model now and answer its ``ps`` entry."""
        body = self.parse(LoadBody)
        host = await self.host()
        self.write_json(await self.run_blocking(host.load, body.model, **body.options))


class UnloadHandler(LLMHandler):
    """``POST llm/api/unload``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Unload a model and free its memory."""
        body = self.parse(ModelBody)
        host = await self.host()
        self.write_json({"unloaded": await self.run_blocking(host.unload, body.model)})


class PsHandler(LLMHandler):
    """``GET llm/api/ps``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The loaded models."""
        host = await self.host()
        self.write_json({"models": await self.run_blocking(host.ps)})


class GenerationHandler(LLMHandler):
    """Shared by chat and generate: start off the loop, then stream NDJSON or answer once."""

    async def respond(self, gen_kwargs: dict[str, Any], stream: bool, key: str) -> None:
        """Run the generation and answer in the native format (``key``: message or text)."""
        host = await self.host()
        gen: Generation = await self.run_blocking(
            start_generation, host, face="api", user=self.identity(), **gen_kwargs)
        await self.prime(gen)
        if not stream:
            text = await self.run_blocking(gen.text)
            value: Any = {"role": "assistant", "content": text} if key == "message" else text
            self.write_json({"model": gen.model_id, key: value,
                             **{k: v for k, v in gen.summary().items() if k != "model"}})
            return

        def produce(cancel: threading.Event) -> Iterator[Any]:
            yield from gen.chunks(cancel)
            if not cancel.is_set():
                yield {"done": True, **gen.summary()}

        await self.stream(produce, ndjson, "application/x-ndjson", on_cancel=gen.cancel)


class ChatHandler(GenerationHandler):
    """``POST llm/api/chat``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Chat with a model."""
        body = self.parse(ChatBody)
        options = _with_format({"trim_history": True, **body.options}, body.format)
        await self.respond({"messages": body.messages, "model": body.model,
                            "options": options, "log": body.log,
                            "keep_alive": body.keep_alive, "tutoring": body.tutoring},
                           body.stream, "message")


class GenerateHandler(GenerationHandler):
    """``POST llm/api/generate``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Raw completion (no chat template)."""
        body = self.parse(GenerateBody)
        await self.respond({"prompt": body.prompt, "model": body.model,
                            "options": _with_format(body.options, body.format), "log": body.log,
                            "keep_alive": body.keep_alive}, body.stream, "text")


class EmbedHandler(LLMHandler):
    """``POST llm/api/embed``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """One vector per input text."""
        body = self.parse(EmbedBody)
        texts = [body.input] if isinstance(body.input, str) else body.input
        host = await self.host()

        cancel = self.hung_up

        def embed() -> dict[str, Any]:
            spec = host.resolve(body.model, embedding=True)
            return {"model": spec.id, "embeddings": host.embed(
                texts, spec.id, user=self.identity(), cancel=cancel)}

        self.write_json(await self.run_blocking(embed))


class ConfigHandler(LLMHandler):
    """``GET llm/api/config``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Version and the non-secret settings."""
        self.write_json(self.llm.config_summary())


default_handlers = [
    (r"/llm/api/models", ModelsHandler),
    (r"/llm/api/models/(.+)", ModelHandler),
    (r"/llm/api/pull", PullHandler),
    (r"/llm/api/pull/cancel", PullCancelHandler),
    (r"/llm/api/downloads", DownloadsHandler),
    (r"/llm/api/load", LoadHandler),
    (r"/llm/api/unload", UnloadHandler),
    (r"/llm/api/ps", PsHandler),
    (r"/llm/api/chat", ChatHandler),
    (r"/llm/api/generate", GenerateHandler),
    (r"/llm/api/embed", EmbedHandler),
    (r"/llm/api/config", ConfigHandler),
]
