"""Settings shared by the server extension, the standalone server and in-process clients.

Each field can be set with a ``JUPYTER_LLM_<FIELD>`` environment variable; the server
extension also exposes each one as a ``c.JupyterLLM.<field>`` traitlet.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidOptions, options_error_from_pydantic

__all__ = ["Settings", "ENV_PREFIX"]

ENV_PREFIX = "JUPYTER_LLM_"


class Settings(BaseModel):
    """Configuration of the model host and its faces."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    default_model: str | None = Field(None, description="Chat model used when none is named (id, alias or tags:...).")
    default_embedding_model: str | None = Field(None, description="Embedding model used when none is named.")
    allow_downloads: bool = Field(True, description="Allow pulling registry models.")
    allow_url_downloads: bool = Field(False, description="Allow downloading arbitrary URLs that are not in a registry.")
    auto_load: bool = Field(True, description="Load a model on first use instead of answering 409.")
    memory_budget_mb: int | None = Field(None, ge=64, description="RAM for loaded models; default: 70% of available memory.")
    max_loaded_models: int = Field(3, ge=1, description="Most local models loaded at once.")
    keep_alive_s: float = Field(300.0, ge=0, description="Unload a local model after this many idle seconds (0: never).")
    queue_size: int = Field(16, ge=1, description="Requests waiting per model before answering 503 busy.")
    queue_per_user: int | None = Field(None, ge=1, description="Requests one user may have waiting per model before answering 429 (default: no cap).")
    scheduling: Literal["fair", "fifo"] = Field("fair", description="Who goes next in a model's queue: fair (round-robin by user) or fifo (first come, first served).")
    n_threads: int | None = Field(None, ge=1, description="CPU threads per local model (default: llama.cpp's choice).")
    n_ctx: int | None = Field(None, ge=16, description="Context window for local models (default: min(4096, trained)).")
    parallel: int | None = Field(None, ge=1, le=64, description="Requests a local model decodes together, each with a context of n_ctx (default: up to 8, from the memory budget).")
    history: bool = Field(True, description="Log requests to history.sqlite.")
    max_body_mb: float = Field(16.0, gt=0, description="Largest request body in MB (413 above).")
    max_prompt_chars: int = Field(1_000_000, ge=1, description="Most characters in one prompt "
                                  "or embedding request, checked before tokenising (400 above).")
    max_embed_inputs: int = Field(2048, ge=1, description="Most inputs in one embedding request.")
    allow_model_paths: list[str] = Field(
        default_factory=list,
        description="Folders whose GGUF files HTTP requests may load by path (default: none; "
                    "several separated by the OS path separator).")
    policy_file: str | None = Field(None, description="Classroom policy file (YAML or JSON): roles, limits, allowed models; reloaded when it changes.")
    policy: dict[str, Any] | None = Field(None, description="Classroom policy given inline (same format as the policy file); JSON in the environment variable.")

    @field_validator("allow_model_paths", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p.strip()]
        return value

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as e:
                raise ValueError(f"not valid JSON ({e})") from None
        return value

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``JUPYTER_LLM_*`` variables, then ``overrides``."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            error = options_error_from_pydantic(e, what="setting")
            names = sorted({ENV_PREFIX + str(err["loc"][0]).upper() for err in e.errors()
                            if err.get("loc") and err["loc"][0] in values
                            and err["loc"][0] not in given})
            if names:
                error = InvalidOptions(f"{error.message}. Fix or unset {', '.join(names)}.",
                                       details=error.details)
            raise error from None


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    if field not in Settings.model_fields:
        raise InvalidOptions(f"Unknown setting {field!r}.")
    return ENV_PREFIX + field.upper()
