"""The ``openai`` backend: any OpenAI-compatible API (OpenAI, vLLM, Ollama, llama.cpp server,
or jupyter-llm's own ``/v1``), through the official ``openai`` client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..errors import BackendError, Busy, InvalidOptions, JupyterLLMError, MissingDependency
from ..hookspecs import hookimpl
from ..models import Backend, Finish, Model, Request, Usage
from ..options import Options

if TYPE_CHECKING:
    from ..registry import ModelSpec

__all__ = ["OpenAIOptions", "OpenAIModel", "OpenAIBackend", "DEFAULT_API_BASE"]

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
        self._client: Any = None

    def __repr__(self) -> str:  # never show the key
        return f"<OpenAIModel {self.model_id!r} at {self.api_base}>"

    def _key(self) -> str:
        if self._api_key:
            return self._api_key
        env = (self.spec.api_key_env if self.spec else None) or "OPENAI_API_KEY"
        key = os.environ.get(env)
        if key:
            return key
        if self.api_base.rstrip("/") == DEFAULT_API_BASE:
            raise BackendError(
                f"Model {self.model_id!r} needs an API key: set the environment variable {env}.",
                details={"model": self.model_id, "env": env})
        return "not-needed"  # local OpenAI-compatible servers usually accept any key

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
        if opts.json_mode:
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
        out: list[list[float]] = []
        try:
            for start in range(0, len(texts), 256):
                result = self.client.embeddings.create(model=self.api_model,
                                                       input=texts[start:start + 256])
                out.extend(list(d.embedding) for d in sorted(result.data, key=lambda d: d.index))
        except JupyterLLMError:
            raise
        except Exception as e:
            raise _api_error(e, self) from e
        return out

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _api_error(exc: Exception, model: OpenAIModel) -> JupyterLLMError:
    """Translate an ``openai`` exception into our hierarchy, without leaking the key."""
    import openai

    where = f"{model.api_base} (model {model.api_model!r})"
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


@hookimpl
def register_models(register: Any) -> None:
    """Register the OpenAI-compatible backend."""
    register(OpenAIBackend())
