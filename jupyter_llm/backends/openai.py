"""The ``openai`` backend: any OpenAI-compatible API (OpenAI, vLLM, Ollama, llama.cpp server,
or jupyter-llm's own ``/v1``), through the official ``openai`` client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..errors import (
    BackendError,
    Busy,
    InvalidOptions,
    JupyterLLMError,
    MissingAPIKey,
    MissingDependency,
)
from ..hookspecs import hookimpl
from ..models import Backend, Finish, Model, Request, Usage
from ..options import Options
from ..redact import add_secret, add_url_credentials, strip_userinfo

if TYPE_CHECKING:
    from ..registry import ModelSpec

__all__ = ["OpenAIOptions", "OpenAIModel", "OpenAIBackend", "DEFAULT_API_BASE", "missing_key_env"]

DEFAULT_API_BASE = "https://api.openai.com/v1"


class OpenAIOptions(Options):
    """Options for remote OpenAI-compatible models, on top of the common ones."""

    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, description="Penalty for tokens already present.")
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, description="Penalty proportional to token frequency.")
    timeout: float | None = Field(None, gt=0, description="Seconds to wait for the API.")


class OpenAIModel(Model):
    """A model behind an OpenAI-compatible HTTP API."""

    Options = OpenAIOptions
    backend = "openai"

    def __init__(self, model_id: str, spec: ModelSpec | None = None, *, api_base: str | None = None,
                 api_key: str | None = None, api_model: str | None = None) -> None:
        super().__init__(model_id, spec)
        self.api_base = (api_base or (spec.api_base if spec else None)
                         or os.environ.get("OPENAI_BASE_URL") or DEFAULT_API_BASE)
        self.api_model = api_model or (spec.api_model if spec else None) or model_id
        self._api_key = api_key
        add_secret(api_key)
        add_url_credentials(self.api_base)
        self._client: Any = None

    def __repr__(self) -> str:  # never show the key
        return f"<OpenAIModel {self.model_id!r} at {strip_userinfo(self.api_base)}>"

    def _key(self) -> str:
        if self._api_key:
            return self._api_key
        env = missing_key_env(self.spec, self.api_base)
        if env:
            raise MissingAPIKey.from_env(self.model_id, env)
        env = (self.spec.api_key_env if self.spec else None) or "OPENAI_API_KEY"
        return os.environ.get(env) or "not-needed"  # local servers usually accept any key

    @property
    def client(self) -> Any:
        """The ``openai.OpenAI`` client, created on first use."""
        if self._client is None:
            try:
                import openai
            except ImportError as e:
                raise MissingDependency.from_package("openai", "Remote models") from e
            self._client = openai.OpenAI(base_url=self.api_base, api_key=self._key(), max_retries=1)
        return self._client

    def _request_kwargs(self, opts: Options) -> dict[str, Any]:
        values = opts.set_options()
        if "n_ctx" in values:
            raise InvalidOptions("n_ctx: remote models have a fixed context; remove this option.",
                                 details={"fields": [{"field": "n_ctx", "message": "not supported"}]})
        kwargs: dict[str, Any] = {}
        for key in ("temperature", "top_p", "max_tokens", "stop", "seed",
                    "presence_penalty", "frequency_penalty", "timeout"):
            if key in values:
                kwargs[key] = values[key]
        extra = {k: values[k] for k in ("top_k", "repeat_penalty", "grammar") if k in values}
        if extra:
            kwargs["extra_body"] = extra
        if values.get("json_schema") is not None:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": str(values["json_schema"].get("title") or "response"),
                "schema": values["json_schema"]}}
        elif opts.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    def execute(self, request: Request) -> Iterator[str | Finish]:
        """Stream the API's answer, chunk by chunk, then its usage."""
        kwargs = self._request_kwargs(request.options)
        try:
            if request.is_chat:
                stream = self.client.chat.completions.create(
                    model=self.api_model, messages=request.messages, stream=True,
                    stream_options={"include_usage": True}, **kwargs)
            else:
                stream = self.client.completions.create(
                    model=self.api_model, prompt=request.prompt or "", stream=True,
                    stream_options={"include_usage": True}, **kwargs)
            reason, usage, count = "stop", None, 0
            for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                for choice in chunk.choices or []:
                    text = choice.delta.content if request.is_chat else choice.text
                    if text:
                        count += 1
                        yield text
                    if choice.finish_reason:
                        reason = choice.finish_reason
            yield Finish(reason, usage or Usage(completion_tokens=count))
        except JupyterLLMError:
            raise
        except Exception as e:
            raise _api_error(e, self) from e

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed texts with the API's ``/embeddings``, in batches of 256."""
        return self.embed_with_usage(texts)[0]

    def embed_with_usage(self, texts: list[str]) -> tuple[list[list[float]], int | None]:
        """The vectors and the prompt tokens the API reported (None when it reports none)."""
        out: list[list[float]] = []
        tokens: int | None = None
        try:
            for start in range(0, len(texts), 256):
                result = self.client.embeddings.create(model=self.api_model,
                                                       input=texts[start:start + 256])
                out.extend(list(d.embedding) for d in sorted(result.data, key=lambda d: d.index))
                used = getattr(getattr(result, "usage", None), "prompt_tokens", None)
                if used is not None:
                    tokens = (tokens or 0) + used
        except JupyterLLMError:
            raise
        except Exception as e:
            raise _api_error(e, self) from e
        return out, tokens

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None


def missing_key_env(spec: ModelSpec | None, api_base: str | None = None) -> str | None:
    """The API key variable a remote model needs but is unset (None when it can be called):
    its ``api_key_env``, or ``OPENAI_API_KEY`` for OpenAI's own API."""
    base = (api_base or (spec.api_base if spec else None) or os.environ.get("OPENAI_BASE_URL")
            or DEFAULT_API_BASE).rstrip("/")
    env = spec.api_key_env if spec else None
    if env is None and base == DEFAULT_API_BASE:
        env = "OPENAI_API_KEY"
    return env if env and not os.environ.get(env) else None


def _api_error(exc: Exception, model: OpenAIModel) -> JupyterLLMError:
    """Translate an ``openai`` exception into our hierarchy, without leaking the key."""
    import openai

    where = f"{strip_userinfo(model.api_base)} (model {model.api_model!r})"
    if isinstance(exc, openai.RateLimitError):
        return Busy(f"The API at {where} is rate-limiting requests; try again shortly.",
                    retry_after=5)
    if isinstance(exc, openai.AuthenticationError):
        env = (model.spec.api_key_env if model.spec else None) or "OPENAI_API_KEY"
        return BackendError(f"The API at {where} refused the key; check {env}.")
    if isinstance(exc, openai.APIConnectionError):
        return BackendError(f"Cannot reach the API at {where}: {exc}. Is the server running?")
    if isinstance(exc, openai.APIStatusError):
        message = _status_message(exc)
        return BackendError(f"The API at {where} answered {exc.status_code}: {message}",
                            details={"status": exc.status_code})
    return BackendError(f"The API at {where} failed: {exc}")


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))


class OpenAIBackend(Backend):
    """Creates ``OpenAIModel`` objects for registry entries with ``backend: openai``."""

    name = "openai"

    def create(self, spec: ModelSpec) -> OpenAIModel:
        """A model calling the API described by ``spec``."""
        return OpenAIModel(spec.id, spec)

    def setup_hint(self, spec: ModelSpec) -> dict[str, Any] | None:
        """``set_key`` when the entry's API key variable (or OpenAI's) is unset."""
        env = missing_key_env(spec)
        if env is None:
            return None
        return {"action": "set_key", "env": env, "model": spec.id,
                "message": f"Set the environment variable {env} to use {spec.id}."}


@hookimpl
def register_models(register: Any) -> None:
    """Register the OpenAI-compatible backend."""
    register(OpenAIBackend())
