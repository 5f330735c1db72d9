"""The OpenAI-compatible API ``llm/v1/…``: models, chat/completions, completions and
embeddings, with SSE streaming ending in ``data: [DONE]``. Any OpenAI client works unchanged
with the Jupyter token as its API key (``Authorization: Bearer <TOKEN>``)."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from tornado import web

from ..errors import InvalidOptions, InvalidRequest
from .base import LLMHandler, error_body
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

    def options(self) -> dict[str, Any]:
        """The generation options this request sets, in jupyter_llm's names."""
        if self.n not in (None, 1):
            raise InvalidOptions("n: only one choice per request is supported; send n=1.",
                                 details={"fields": [{"field": "n", "message": "must be 1"}]})
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
        elif kind != "text":
            raise InvalidOptions(
                f"response_format: type {kind!r} is not supported; use 'json_object' or 'text'.",
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

    prompt: str | list[str]


class EmbeddingsBody(BaseModel):
    """``POST llm/v1/embeddings``."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


def sse(item: Any) -> bytes:
    """Encode one item as a server-sent event (errors in the one error shape)."""
    if isinstance(item, BaseException):
        item = error_body(item)[1]
    if item == "[DONE]":
        return b"data: [DONE]\n\n"
    return b"data: " + json.dumps(item, default=str).encode() + b"\n\n"


class V1ModelsHandler(LLMHandler):
    """``GET llm/v1/models``: every model that can answer now (installed, loaded or remote)."""

    @web.authenticated
    async def get(self) -> None:
        """OpenAI's model list."""
        host = await self.host()
        models = await self.run_blocking(host.models, None, user=self.identity())
        data = [{"id": m["id"], "object": "model", "created": 0, "owned_by": "jupyter-llm",
                 "state": m.get("state")}
                for m in models if m.get("state") in ("installed", "loaded") and m["allowed"]]
        self.write_json({"object": "list", "data": data})


class _CompletionHandler(LLMHandler):
    object_name = "chat.completion"

    def choice(self, text: str | None, finish: str | None, *, delta: bool) -> dict[str, Any]:
        """One choice in OpenAI's shape (message or delta for chat, text for completions)."""
        raise NotImplementedError

    async def respond(self, body: _OpenAIBody, gen_kwargs: dict[str, Any]) -> None:
        """Start the generation and answer as OpenAI does (SSE when ``stream``)."""
        host = await self.host()
        gen: Generation = await self.run_blocking(
            start_generation, host, model=body.model, options=body.options(), face="openai",
            user=self.identity(), **gen_kwargs)
        rid = f"{'chatcmpl' if self.object_name.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex}"
        created = int(time.time())
        base = {"id": rid, "created": created, "model": gen.model_id}
        if not body.stream:
            text = await self.run_blocking(gen.text)
            summary = gen.summary()
            self.write_json({**base, "object": self.object_name,
                             "choices": [self.choice(text, _FINISH.get(summary["finish_reason"],
                                                                      summary["finish_reason"]),
                                                     delta=False)],
                             "usage": summary["usage"]})
            return
        chunk_object = self.object_name + (".chunk" if self.object_name.startswith("chat") else "")

        def produce(cancel: threading.Event) -> Iterator[Any]:
            if self.object_name.startswith("chat"):
                first = self.choice("", None, delta=True)
                first["delta"]["role"] = "assistant"
                yield {**base, "object": chunk_object, "choices": [first]}
            for piece in gen.chunks(cancel):
                yield {**base, "object": chunk_object,
                       "choices": [self.choice(piece, None, delta=True)]}
            if cancel.is_set():
                return
            summary = gen.summary()
            finish = _FINISH.get(summary["finish_reason"], summary["finish_reason"])
            yield {**base, "object": chunk_object, "choices": [self.choice(None, finish, delta=True)]}
            if body.include_usage:
                yield {**base, "object": chunk_object, "choices": [], "usage": summary["usage"]}
            yield "[DONE]"

        await self.stream(produce, sse, "text/event-stream", on_cancel=gen.cancel)


class ChatCompletionsHandler(_CompletionHandler):
    """``POST llm/v1/chat/completions``."""

    object_name = "chat.completion"

    def choice(self, text: str | None, finish: str | None, *, delta: bool) -> dict[str, Any]:
        """A chat choice."""
        if delta:
            return {"index": 0, "delta": {} if text is None else {"content": text},
                    "finish_reason": finish, "logprobs": None}
        return {"index": 0, "message": {"role": "assistant", "content": text},
                "finish_reason": finish, "logprobs": None}

    @web.authenticated
    async def post(self) -> None:
        """Chat completion."""
        body = self.parse(ChatCompletionBody)
        await self.respond(body, {"messages": body.chat_messages()})


class CompletionsHandler(_CompletionHandler):
    """``POST llm/v1/completions``."""

    object_name = "text_completion"

    def choice(self, text: str | None, finish: str | None, *, delta: bool) -> dict[str, Any]:
        """A completion choice."""
        return {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}

    @web.authenticated
    async def post(self) -> None:
        """Raw completion."""
        body = self.parse(CompletionBody)
        prompt = body.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidRequest("prompt: send one prompt per request.",
                                     details={"field": "prompt"})
            prompt = prompt[0]
        await self.respond(body, {"prompt": prompt})


class EmbeddingsHandler(LLMHandler):
    """``POST llm/v1/embeddings``."""

    @web.authenticated
    async def post(self) -> None:
        """One embedding per input (float lists, or base64 float32 as the openai client asks)."""
        body = self.parse(EmbeddingsBody)
        texts = [body.input] if isinstance(body.input, str) else body.input
        host = await self.host()

        def embed() -> tuple[str, list[list[float]]]:
            spec = host.resolve(body.model, embedding=True)
            return spec.id, host.embed(texts, spec.id, user=self.identity())

        model_id, vectors = await self.run_blocking(embed)
        data = []
        for i, vector in enumerate(vectors):
            value: Any = vector
            if body.encoding_format == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        self.write_json({"object": "list", "data": data, "model": model_id,
                         "usage": {"prompt_tokens": 0, "total_tokens": 0}})


default_handlers = [
    (r"/llm/v1/models", V1ModelsHandler),
    (r"/llm/v1/chat/completions", ChatCompletionsHandler),
    (r"/llm/v1/completions", CompletionsHandler),
    (r"/llm/v1/embeddings", EmbeddingsHandler),
]
