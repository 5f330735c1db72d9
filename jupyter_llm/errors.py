"""The one error hierarchy of jupyter_llm, mapped to HTTP status codes in one place.

Every message says what went wrong and what to do next. Handlers, magics and
the CLI render these errors; they never show a traceback to a user. Every class is built
as ``cls(message, details=...)`` (so any of them can be rebuilt from the JSON shape or a
worker's pipe); the ones that compose their own message have a ``from_…`` constructor.

    JupyterLLMError (500 internal_error)
    ├── InvalidRequest (400 invalid_request)        malformed JSON, missing fields
    │   ├── TooLarge (413 too_large)                a body over max_body_mb
    │   ├── InvalidOptions (422 invalid_options)    an option value out of range; names the field
    │   ├── ContextLengthExceeded (400 context_length_exceeded)  the input cannot fit n_ctx
    │   ├── MissingAPIKey (400 missing_api_key)     a remote model whose key variable is unset
    │   ├── NotACollection (400 not_a_collection)   a file that is not a jupyter-llm collection
    │   ├── QuestionFileError (400 invalid_question_file) a malformed evaluation question file; names the line
    │   └── LoaderError (400 unreadable_file)       a course file that cannot be read (ingest skips it)
    ├── Unauthorized (401 unauthorized)              a missing or wrong token
    ├── Forbidden (403 forbidden)                    a disabled capability (URL downloads, …)
    │   └── ModelNotAllowed (403 model_not_allowed)  the policy's allowlist excludes the model
    ├── NotFound (404 not_found)
    │   └── UnknownModel (404 unknown_model)        suggests close ids
    ├── Conflict (409 conflict)
    │   ├── ModelNotReady (409 model_not_ready)     not installed / not loaded
    │   └── EmbedderMismatch (409 embedder_mismatch) querying with another embedder than built with
    ├── RegistryError (422 registry_error)           a malformed registry file; names file and entry
    ├── ModelLoadError (422 model_load_failed)       corrupt or unsupported model file
    ├── Cancelled (499 cancelled)
    ├── MissingDependency (501 missing_dependency)   an optional package is not installed
    ├── BackendError (502 backend_error)             a remote API or a worker failed
    │   └── WorkerCrashed (502 worker_crashed)
    ├── DownloadError (502 download_failed)
    │   ├── ChecksumMismatch (502 checksum_mismatch)
    │   └── InsufficientStorage (507 insufficient_storage)
    ├── Busy (503 busy)                              queue full; carries retry_after
    └── RateLimited (429 rate_limited)               a per-user limit of the policy; carries retry_after

Messages say what is wrong and what to do in neutral words; they name no face's command.
The next step, when there is one, travels as data in ``details``: ``"action"`` plus that
action's arguments, e.g. ``{"action": "pull", "model": "qwen2.5-0.5b"}`` (see ``ACTIONS``).
Each face renders it in its own words: the CLI as a command (``Run: jupyter llm pull X``),
the magics as ``%llm pull X``, the lab panel as a button.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from .redact import redact, redact_obj

__all__ = [
    "JupyterLLMError",
    "InvalidRequest",
    "InvalidOptions",
    "ContextLengthExceeded",
    "MissingAPIKey",
    "Unauthorized",
    "TooLarge",
    "Forbidden",
    "NotFound",
    "UnknownModel",
    "Conflict",
    "ModelNotReady",
    "EmbedderMismatch",
    "NotACollection",
    "QuestionFileError",
    "LoaderError",
    "RegistryError",
    "ModelLoadError",
    "Cancelled",
    "MissingDependency",
    "BackendError",
    "WorkerCrashed",
    "DownloadError",
    "ChecksumMismatch",
    "InsufficientStorage",
    "Busy",
    "ModelNotAllowed",
    "RateLimited",
    "options_error_from_pydantic",
    "ACTIONS",
    "hint",
    "hint_of",
]

ACTIONS: dict[str, tuple[str, ...]] = {
    "pull": ("model",),                   # download the model
    "load": ("model",),                   # load the model now (auto-load is off)
    "remove": ("model",),                 # delete the installed model (then pull it again)
    "cancel_pull": ("model",),            # cancel the running download of the model
    "list_models": (),                    # list the models to choose from
    "set_key": ("env", "model"),          # set the API key environment variable ``env``
    "install": ("package", "extra"),      # install the optional package (jupyter-llm[extra])
    "ingest": ("collection",),            # ingest files or folders into the collection
    "create_collection": ("collection",),  # create the collection
    "completion": ("model",),             # raw completion: a base model without chat template
    "retry": ("retry_after",),            # try again after ``retry_after`` seconds
    "list_templates": (),                 # list the prompt templates
}
"""Every ``details["action"]`` and the argument keys it carries next to it in ``details``.

| action | arguments | the next step |
| --- | --- | --- |
| pull | model | download the model |
| load | model | load the model now |
| remove | model | delete the installed model's file, then pull it again |
| cancel_pull | model | cancel the running download |
| list_models | | list the models |
| set_key | env, model | set the environment variable ``env`` to an API key |
| install | package, extra | install the optional package |
| ingest | collection | ingest files or folders into the collection |
| create_collection | collection | create the collection |
| completion | model | use raw completion (a base model without a chat template) |
| retry | retry_after | try again after ``retry_after`` seconds |
| list_templates | | list the prompt templates |
"""


def hint(action: str, **args: Any) -> dict[str, Any]:
    """``{"action": action, **args}`` for an error's ``details``; checks the action's arguments."""
    expected = ACTIONS.get(action)
    if expected is None:
        raise ValueError(f"unknown hint action {action!r}; add it to errors.ACTIONS")
    if set(args) != set(expected):
        raise ValueError(f"hint {action!r} takes {expected}, not {tuple(args)}")
    return {"action": action, **args}


def hint_of(details: Any) -> dict[str, Any] | None:
    """The structured hint in an error's ``details`` (``action`` and its arguments), or None."""
    if not isinstance(details, dict) or details.get("action") not in ACTIONS:
        return None
    action = details["action"]
    return {"action": action, **{key: details.get(key) for key in ACTIONS[action]}}


class JupyterLLMError(Exception):
    """Base class: a user-facing error with an HTTP status and a stable type name."""

    status: int = 500
    type: str = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        message, details = redact(message), redact_obj(details)  # secrets never leave
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Return the one JSON error shape: ``{"error": {"type", "message", "details"}}``."""
        return {"error": {"type": self.type, "message": self.message, "details": self.details}}


class InvalidRequest(JupyterLLMError):
    """The request body or arguments are malformed."""

    status, type = 400, "invalid_request"


class TooLarge(InvalidRequest):
    """The request body is larger than the server accepts."""

    status, type = 413, "too_large"


class InvalidOptions(InvalidRequest):
    """One or more option values are invalid; ``details`` lists the fields."""

    status, type = 422, "invalid_options"


class ContextLengthExceeded(InvalidRequest):
    """The prompt (with the tokens to generate) does not fit the model's context window."""

    status, type = 400, "context_length_exceeded"

    @classmethod
    def from_counts(cls, model_id: str, prompt_tokens: int, n_ctx: int, *,
                    trained: int | None = None, at_least: bool = False) -> ContextLengthExceeded:
        """The error naming both numbers and how to fix it (``at_least``: counting stopped
        once the input surely did not fit)."""
        bigger = (f" (up to the model's trained length of {trained})" if trained and trained > n_ctx
                  else "")
        return cls(
            f"The input of {'at least ' if at_least else ''}{prompt_tokens} tokens does not "
            f"fit the context window of model {model_id!r}, which is {n_ctx} tokens. Send a shorter input (or fewer earlier "
            f"messages), or load the model with a larger n_ctx{bigger}.",
            details={"model": model_id, "prompt_tokens": prompt_tokens, "n_ctx": n_ctx,
                     "trained_context_length": trained})


class MissingAPIKey(InvalidRequest):
    """A remote model is called but its API key environment variable is not set."""

    status, type = 400, "missing_api_key"

    @classmethod
    def from_env(cls, model_id: str, env: str) -> MissingAPIKey:
        """The error naming the variable to set (``details.action`` is ``set_key``)."""
        return cls(
            f"Model {model_id!r} needs an API key: set the environment variable {env} where the "
            "model host runs (then restart it), or choose a local model.",
            details={"action": "set_key", "env": env, "model": model_id})


class Unauthorized(JupyterLLMError):
    """The request carries no valid token."""

    status, type = 401, "unauthorized"


class Forbidden(JupyterLLMError):
    """The operation is disabled by configuration."""

    status, type = 403, "forbidden"


class ModelNotAllowed(Forbidden):
    """The policy does not let this user's role use the model."""

    type = "model_not_allowed"


class NotFound(JupyterLLMError):
    """A named thing does not exist."""

    status, type = 404, "not_found"


class UnknownModel(NotFound):
    """No registry entry or alias has this id."""

    type = "unknown_model"

    @classmethod
    def from_id(cls, model_id: str, known: Iterable[str] = ()) -> UnknownModel:
        """The error for ``model_id``, suggesting the close ids among ``known``."""
        close = difflib.get_close_matches(model_id, list(known), n=3, cutoff=0.5)
        guess = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        message = f"Unknown model {model_id!r}.{guess} List the models to choose one."
        if model_id.endswith(".gguf") and not model_id.startswith("url:"):  # a missing file
            close, message = [], (f"No GGUF file at {model_id}: check the path, or choose a "
                                  "model from the list of models.")
        return cls(message, details={"model": model_id, "suggestions": close,
                                     **hint("list_models")})

    @property
    def model_id(self) -> str:
        """The id that no entry has."""
        return str((self.details or {}).get("model", ""))


class Conflict(JupyterLLMError):
    """The request conflicts with the current state."""

    status, type = 409, "conflict"


class ModelNotReady(Conflict):
    """The model exists but is not installed or not loaded."""

    type = "model_not_ready"


class EmbedderMismatch(Conflict):
    """The query embedder differs from the one the collection was built with."""

    type = "embedder_mismatch"


class NotACollection(InvalidRequest):
    """The file exists but is not a jupyter-llm collection."""

    type = "not_a_collection"


class QuestionFileError(InvalidRequest):
    """An evaluation question file is malformed (the message names the line)."""

    type = "invalid_question_file"


class LoaderError(InvalidRequest):
    """A file could not be read or parsed (corrupt, wrong encoding, unsupported)."""

    type = "unreadable_file"


class RegistryError(JupyterLLMError):
    """A registry file or entry is malformed."""

    status, type = 422, "registry_error"


class ModelLoadError(JupyterLLMError):
    """A model file could not be loaded (corrupt, truncated or unsupported)."""

    status, type = 422, "model_load_failed"


class Cancelled(JupyterLLMError):
    """The operation was cancelled by the client."""

    status, type = 499, "cancelled"


class MissingDependency(JupyterLLMError):
    """An optional package needed for this operation is not installed."""

    status, type = 501, "missing_dependency"

    @classmethod
    def from_package(cls, package: str, purpose: str, extra: str = "all") -> MissingDependency:
        """The error for ``purpose`` needing ``package`` (installed by the ``extra``)."""
        return cls(f"{purpose} needs the package {package!r}. "
                   f"Install it with `pip install 'jupyter-llm[{extra}]'`.",
                   details=hint("install", package=package, extra=extra))


class BackendError(JupyterLLMError):
    """A backend (a remote API or a worker process) failed."""

    status, type = 502, "backend_error"


class WorkerCrashed(BackendError):
    """The worker process of a local model died."""

    type = "worker_crashed"


class DownloadError(JupyterLLMError):
    """A download failed; the partial file is kept so a retry can resume."""

    status, type = 502, "download_failed"


class ChecksumMismatch(DownloadError):
    """The downloaded file's sha256 differs from the registry's."""

    type = "checksum_mismatch"


class InsufficientStorage(DownloadError):
    """Not enough free disk space, or the target directory is not writable."""

    status, type = 507, "insufficient_storage"


class Busy(JupyterLLMError):
    """The model's queue is full; retry after ``retry_after`` seconds."""

    status, type = 503, "busy"

    def __init__(self, message: str, *, details: Any = None, retry_after: int = 1) -> None:
        if details is None or (isinstance(details, dict) and "action" not in details):
            details = {**(details or {}), **hint("retry", retry_after=retry_after)}
        super().__init__(message, details=details)
        self.retry_after = retry_after


class RateLimited(Busy):
    """A per-user limit of the classroom policy; retry after ``retry_after`` seconds."""

    status, type = 429, "rate_limited"


def options_error_from_pydantic(exc: Any, *, what: str = "option") -> InvalidOptions:
    """Turn a pydantic ``ValidationError`` into an ``InvalidOptions`` naming each field."""
    fields = []
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())) or "(value)"
        if err.get("type") == "extra_forbidden":
            msg = "is not a known " + what
        else:
            msg = err.get("msg", "is invalid")
        fields.append({"field": name, "message": msg, "input": _jsonable(err.get("input"))})
        parts.append(f"{name}: {msg}")
    return InvalidOptions(f"Invalid {what}s — " + "; ".join(parts), details={"fields": fields})


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
