"""The OpenAI-compatible API ``llm/v1/…``: models, chat/completions, completions and
embeddings, with SSE streaming ending in ``data: [DONE]``. Any OpenAI client works unchanged
with the Jupyter token as its API key (``Authorization: Bearer <TOKEN>``). Errors follow
OpenAI's statuses and codes (400 for invalid values, 401 ``invalid_api_key``,
``context_length_exceeded``); docs/rest.md lists what still differs."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel, ConfigDict, Field
from tornado import web

from ..errors import InvalidOptions, InvalidRequest, UnknownModel
from ..host.model_facts import model_entry
from ..models import Queued
from .base import LLMHandler, openai_error_body
from .generation import Generation, start_generation

__all__ = ["default_handlers", "ChatCompletionBody", "CompletionBody", "EmbeddingsBody"]

_FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}


class _OpenAIBody(BaseModel):
    # OpenAI clients send many fields we do not use (n=1, user, logprobs=False, …): ignore
    # them, but refuse the ones whose meaning we would silently change.
    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A model id or alias from GET llm/v1/models.")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    response_format: dict[str, Any] | None = None
    top_k: int | None = None
    repeat_penalty: float | None = None
    grammar: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    logprobs: bool | int | None = None
    top_logprobs: int | None = None

    def options(self) -> dict[str, Any]:
        """The generation options this request sets, in jupyter_llm's names."""
        if self.n not in (None, 1):
            raise InvalidOptions("n: only one choice per request is supported; send n=1.",
                                 details={"fields": [{"field": "n", "message": "must be 1"}]})
        for field in ("logprobs", "top_logprobs"):
            if getattr(self, field):
                raise InvalidOptions(
                    f"{field}: token log-probabilities are not supported by jupyter-llm's /v1; "
                    f"send the request without {field}.",
                    details={"fields": [{"field": field, "message": "not supported"}]})
        opts: dict[str, Any] = {}
        for key in ("temperature", "top_p", "seed", "stop", "top_k", "repeat_penalty",
                    "grammar", "presence_penalty", "frequency_penalty"):
            value = getattr(self, key)
            if value is not None:
                opts[key] = value
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None:
            opts["max_tokens"] = max_tokens
        kind = (self.response_format or {}).get("type", "text")
        if kind == "json_object":
            opts["json_mode"] = True
        elif kind == "json_schema":
            spec = (self.response_format or {}).get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise InvalidOptions(
                    "response_format.json_schema.schema: send the JSON schema the answer must "
                    "match.", details={"fields": [{"field": "response_format.json_schema.schema",
                                                   "message": "missing"}]})
            opts["json_schema"] = schema
        elif kind != "text":
            raise InvalidOptions(
                f"response_format: type {kind!r} is not supported; use 'json_schema', "
                "'json_object' or 'text'.",
                details={"fields": [{"field": "response_format.type", "message": "unsupported"}]})
        return opts

    @property
    def include_usage(self) -> bool:
        """True when the final stream chunk should carry usage."""
        return bool((self.stream_options or {}).get("include_usage"))


class ChatCompletionBody(_OpenAIBody):
    """``POST llm/v1/chat/completions``."""

    messages: list[dict[str, Any]]

    def chat_messages(self) -> list[dict[str, Any]]:
        """Messages with list-of-parts content joined into one string."""
        extra = self.model_extra or {}
        for field in ("tools", "functions"):
            if extra.get(field):
                raise InvalidOptions(
                    f"{field}: tool calling is not supported by jupyter-llm's /v1 yet; send the "
                    "request without tools (or describe the tools in the system message).",
                    details={"fields": [{"field": field, "message": "not supported"}]})
        out = []
        for i, msg in enumerate(self.messages):
            content = msg.get("content")
            if isinstance(content, list):
                parts = []
                for part in content:
                    if not isinstance(part, dict) or part.get("type") != "text":
                        raise InvalidRequest(
                            f"messages[{i}].content: only text parts are supported.",
                            details={"field": f"messages[{i}].content"})
                    parts.append(str(part.get("text", "")))
                content = "".join(parts)
            out.append({"role": msg.get("role"), "content": "" if content is None else content})
        return out


class CompletionBody(_OpenAIBody):
    """``POST llm/v1/completions``."""

    prompt: str | list[str] | list[int] | list[list[int]]

    def prompts(self) -> list[str]:
        """The prompts (one choice each); token-id prompts are refused."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if not self.prompt or not all(isinstance(p, str) for p in self.prompt):
            raise InvalidRequest("prompt: send a string or a non-empty list of strings (token "
                                 "ids are not supported).", details={"field": "prompt"})
        return list(self.prompt)  # type: ignore[arg-type]


class EmbeddingsBody(BaseModel):
    """``POST llm/v1/embeddings``."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


def sse(item: Any) -> bytes:
    """Encode one item as a server-sent event (errors in OpenAI's error shape); a ``Queued``
    event is a comment line (``: queued {"position": 2, "expected_wait_s": 6.0}``), which
    OpenAI clients skip."""
    if isinstance(item, Queued):
        return b": queued " + json.dumps(item.to_dict()).encode() + b"\n\n"
    if isinstance(item, BaseException):
        item = openai_error_body(item)[1]
    if item == "[DONE]":
        return b"data: [DONE]\n\n"
    return b"data: " + json.dumps(item, default=str).encode() + b"\n\n"


class _V1Handler(LLMHandler):
    """Base of the ``/v1`` handlers: errors as OpenAI answers them."""

    openai_errors = True


def _model_object(m: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's model object, plus our ``state``, ``usable`` and the ``hint`` when unusable."""
    out = {"id": m["id"], "object": "model", "created": 0, "owned_by": "jupyter-llm",
           "state": m.get("state"), "usable": m.get("usable", True)}
    if m.get("hint"):
        out["hint"] = m["hint"]
    return out


class V1ModelsHandler(_V1Handler):
    """``GET llm/v1/models``: every model that can answer now (installed, loaded or remote);
    a remote model whose API key is unset is listed with ``usable: false`` and a ``hint``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """OpenAI's model list."""
        host = await self.host()
        models = await self.run_blocking(host.models, None, user=self.identity())
        data = [_model_object(m) for m in models
                if m.get("state") in ("installed", "loaded") and m["allowed"]]
        self.write_json({"object": "list", "data": data})


class V1ModelHandler(_V1Handler):
    """``GET llm/v1/models/{id}``: one model (404 ``model_not_found`` for an unknown id)."""

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        """OpenAI's model object."""
        host = await self.host()
        found = await self.run_blocking(model_entry, host, model_id, self.identity())
        if not found["allowed"]:  # as in the list: a model the policy hides is unknown
            raise UnknownModel.from_id(model_id)
        self.write_json(_model_object(found))


class _CompletionHandler(_V1Handler):
    object_name = "chat.completion"

    def choice(self, text: str | None, finish: str | None, *, delta: bool,
               index: int = 0) -> dict[str, Any]:
        """One choice in OpenAI's shape (message or delta for chat, text for completions)."""
        raise NotImplementedError

    async def respond(self, body: _OpenAIBody, runs: list[dict[str, Any]]) -> None:
        """Run each generation (one choice each) and answer as OpenAI does (SSE when
        ``stream``). The first is started before answering, so its errors get a status."""
        host = await self.host()
        options = body.options()
        identity = self.identity()

        def start(gen_kwargs: dict[str, Any]) -> Generation:
            return start_generation(host, model=body.model, options=options, face="openai",
                                    user=identity, **gen_kwargs)

        first: Generation = await self.run_blocking(start, runs[0])
        await self.prime(first)
        rid = f"{'chatcmpl' if self.object_name.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex}"
        base = {"id": rid, "created": int(time.time()), "model": first.model_id}
        if not body.stream:
            choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            for index, run in enumerate(runs):
                gen = first if index == 0 else await self.run_blocking(start, run)
                text = await self.run_blocking(gen.text)
                summary = gen.summary()
                choices.append(self.choice(text, _finish(summary), delta=False, index=index))
                _add_usage(usage, summary["usage"])
            self.write_json({**base, "object": self.object_name, "choices": choices,
                             "usage": usage})
            return
        chunk_object = self.object_name + (".chunk" if self.object_name.startswith("chat") else "")

        def produce(cancel: threading.Event) -> Iterator[Any]:
            usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            for index, run in enumerate(runs):
                gen = first if index == 0 else start(run)
                if cancel.is_set():
                    gen.cancel()
                    return
                if self.object_name.startswith("chat"):
                    head = self.choice("", None, delta=True, index=index)
                    head["delta"]["role"] = "assistant"
                    yield {**base, "object": chunk_object, "choices": [head]}
                for piece in gen.chunks(cancel):
                    if isinstance(piece, Queued):
                        yield piece
                        continue
                    yield {**base, "object": chunk_object,
                           "choices": [self.choice(piece, None, delta=True, index=index)]}
                if cancel.is_set():
                    return
                summary = gen.summary()
                yield {**base, "object": chunk_object,
                       "choices": [self.choice(None, _finish(summary), delta=True, index=index)]}
                _add_usage(usage, summary["usage"])
            if body.include_usage:
                yield {**base, "object": chunk_object, "choices": [], "usage": usage}
            yield "[DONE]"

        await self.stream(produce, sse, "text/event-stream", on_cancel=first.cancel)


def _finish(summary: dict[str, Any]) -> str:
    return _FINISH.get(summary["finish_reason"], summary["finish_reason"])


class ChatCompletionsHandler(_CompletionHandler):
    """``POST llm/v1/chat/completions``."""

    object_name = "chat.completion"

    def choice(self, text: str | None, finish: str | None, *, delta: bool,
               index: int = 0) -> dict[str, Any]:
        """A chat choice."""
        if delta:
            return {"index": index, "delta": {} if text is None else {"content": text},
                    "finish_reason": finish, "logprobs": None}
        return {"index": index, "message": {"role": "assistant", "content": text},
                "finish_reason": finish, "logprobs": None}

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Chat completion."""
        body = self.parse(ChatCompletionBody)
        await self.respond(body, [{"messages": body.chat_messages()}])


class CompletionsHandler(_CompletionHandler):
    """``POST llm/v1/completions``."""

    object_name = "text_completion"

    def choice(self, text: str | None, finish: str | None, *, delta: bool,
               index: int = 0) -> dict[str, Any]:
        """A completion choice."""
        return {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Raw completion: one choice per prompt of a list."""
        body = self.parse(CompletionBody)
        await self.respond(body, [{"prompt": p} for p in body.prompts()])


class EmbeddingsHandler(_V1Handler):
    """``POST llm/v1/embeddings``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """One embedding per input (float lists, or base64 float32 as the openai client asks)."""
        body = self.parse(EmbeddingsBody)
        texts = [body.input] if isinstance(body.input, str) else body.input
        host = await self.host()

        cancel = self.hung_up

        def embed() -> tuple[str, list[list[float]], int | None]:
            spec = host.resolve(body.model, embedding=True)
            return spec.id, *host.embed_with_usage(texts, spec.id, user=self.identity(),
                                                   cancel=cancel)

        model_id, vectors, tokens = await self.run_blocking(embed)
        data = []
        for i, vector in enumerate(vectors):
            value: Any = vector
            if body.encoding_format == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        self.write_json({"object": "list", "data": data, "model": model_id,
                         "usage": {"prompt_tokens": tokens or 0, "total_tokens": tokens or 0}})


default_handlers = [
    (r"/llm/v1/models", V1ModelsHandler),
    (r"/llm/v1/models/(.+)", V1ModelHandler),
    (r"/llm/v1/chat/completions", ChatCompletionsHandler),
    (r"/llm/v1/completions", CompletionsHandler),
    (r"/llm/v1/embeddings", EmbeddingsHandler),
]


def _add_usage(total: dict[str, Any], usage: dict[str, Any] | None) -> None:
    """Add one choice's usage to the response's (counts, and cached tokens in the details)."""
    for key, value in (usage or {}).items():
        if isinstance(value, dict):
            details = total.setdefault(key, {})
            for name, count in value.items():
                details[name] = details.get(name, 0) + count
        else:
            total[key] = total.get(key, 0) + value
