"""The Pantry protocol ``llm/call``: ``{"function", "parameters"}`` →
``{"status": "success", "value"}`` or ``{"status": "error", "message", "type"}``.

Protocol errors are answered with HTTP 200 and ``status: error`` (Pantry clients read the
body, not the status); authentication failures stay plain 403s like every other route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tornado import web

from .._version import __version__
from ..errors import InvalidRequest, JupyterLLMError
from .base import LLMHandler, log
from .generation import start_generation

__all__ = ["default_handlers", "PANTRY_FUNCTIONS", "pantry_call"]

PROTOCOL_VERSION = 1


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CallLLMParams(_Params):
    """``call_llm``."""

    preferred_model: str | None = None
    fallback_mode: str = "requirements_load"
    model_requirements: list[str] | dict[str, Any] | None = Field(
        None, description='Capability tags, as a list or {"tags": [...]}.')
    prompt: str | None = None
    system: str | None = None
    messages: list[dict[str, Any]] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    log: bool = True

    def tags(self) -> list[str]:
        """The required capability tags."""
        req = self.model_requirements
        if isinstance(req, dict):
            req = req.get("tags", [])
        return [str(t) for t in req or []]


class ModelParams(_Params):
    """``load_llm`` / ``unload_llm``."""

    model: str
    options: dict[str, Any] = Field(default_factory=dict)


class DownloadParams(_Params):
    """``download_model``: a registry ``model``, or a ``url`` when URL downloads are enabled."""

    model: str | None = None
    url: str | None = None
    sha256: str | None = None


def _handshake(llm: Any, params: dict[str, Any], user: str | None) -> dict[str, Any]:
    return {"server": "jupyter-llm", "version": __version__, "protocol": PROTOCOL_VERSION,
            "functions": sorted(PANTRY_FUNCTIONS)}


def _call_llm(llm: Any, params: dict[str, Any], user: str | None) -> dict[str, Any]:
    p = _validate(CallLLMParams, params)
    if (p.prompt is None) == (p.messages is None):
        raise InvalidRequest("call_llm needs exactly one of prompt or messages.",
                             details={"field": "prompt"})
    host = llm.host
    spec = host.registry.select(preferred=p.preferred_model, tags=p.tags(),
                                fallback_mode=p.fallback_mode,
                                installed=host.store.installed_ids(), loaded=host.loaded_ids())
    messages = p.messages
    if messages is None:
        messages = ([{"role": "system", "content": p.system}] if p.system else []) + [
            {"role": "user", "content": p.prompt}]
    gen = start_generation(host, messages=messages, model=spec.id, options=p.options,
                           log=p.log, face="pantry", user=user)
    text = gen.text()
    return {"text": text, **gen.summary()}


def _load_llm(llm: Any, params: dict[str, Any], user: str | None) -> dict[str, Any]:
    p = _validate(ModelParams, params)
    return llm.host.load(p.model, **p.options)


def _unload_llm(llm: Any, params: dict[str, Any], user: str | None) -> dict[str, Any]:
    p = _validate(ModelParams, params)
    return {"unloaded": llm.host.unload(p.model)}


def _download_model(llm: Any, params: dict[str, Any], user: str | None) -> dict[str, Any]:
    p = _validate(DownloadParams, params)
    if (p.model is None) == (p.url is None):
        raise InvalidRequest("download_model needs exactly one of model or url.",
                             details={"field": "model"})
    manifest = llm.host.pull(p.model or p.url or "", sha256=p.sha256)
    return {"model": manifest.get("id", p.model), "manifest": manifest}


PANTRY_FUNCTIONS: dict[str, Callable[[Any, dict[str, Any], str | None], Any]] = {
    "handshake": _handshake,
    "call_llm": _call_llm,
    "load_llm": _load_llm,
    "unload_llm": _unload_llm,
    "download_model": _download_model,
}


def _validate(model: type[BaseModel], params: dict[str, Any]) -> Any:
    try:
        return model.model_validate(params)
    except ValidationError as e:
        fields = [{"field": ".".join(str(x) for x in err["loc"]), "message": err["msg"]}
                  for err in e.errors()]
        raise InvalidRequest("Invalid parameters — " + "; ".join(
            f"{f['field']}: {f['message']}" for f in fields) + ".",
            details={"fields": fields}) from None


def pantry_call(llm: Any, body: Any, user: str | None = None) -> dict[str, Any]:
    """Run one Pantry call (blocking) and return the protocol's answer; never raises."""
    try:
        if not isinstance(body, dict) or not isinstance(body.get("function"), str):
            raise InvalidRequest('Send {"function": NAME, "parameters": {...}}.')
        fn = PANTRY_FUNCTIONS.get(body["function"])
        if fn is None:
            raise InvalidRequest(f"Unknown function {body['function']!r}; known: "
                                 f"{', '.join(sorted(PANTRY_FUNCTIONS))}.")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidRequest("parameters must be a JSON object.")
        return {"status": "success", "value": fn(llm, params, user)}
    except JupyterLLMError as e:
        return {"status": "error", "message": e.message, "type": e.type, "details": e.details}
    except Exception:
        log.exception("Pantry call %r failed", body.get("function") if isinstance(body, dict) else None)
        return {"status": "error", "message": "Internal server error; the server log has the "
                "details.", "type": "internal_error", "details": None}


class PantryHandler(LLMHandler):
    """``POST llm/call``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """One Pantry function call."""
        try:
            body = self.json_body()
        except JupyterLLMError as e:
            self.write_json({"status": "error", "message": e.message, "type": e.type,
                             "details": e.details})
            return
        self.write_json(await self.run_blocking(pantry_call, self.llm, body, self.identity()))


default_handlers = [(r"/llm/call", PantryHandler)]
