"""The OpenAPI document of every route (native, ``/v1``, Pantry), served at
``llm/api/openapi.json``: the contract that Schemathesis checks the server against.

Request schemas come from the handlers' pydantic body models, so they cannot drift; a test
checks that the document's paths are exactly the registered routes, and
``jupyter_llm.testing.api_fuzz`` fuzzes a real server with it (no 5xx, every answer as
documented).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import httputil, web

from .._version import __version__
from .base import LLMHandler

__all__ = ["openapi_document", "default_handlers", "Op"]

JSON, NDJSON, SSE = "application/json", "application/x-ndjson", "text/event-stream"

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["type", "message"],
    "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}
_OPENAI_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {}}}}}
_PANTRY_ANSWER = {"type": "object", "required": ["status"], "properties": {
    "status": {"enum": ["success", "error"]}, "value": {}, "message": {"type": "string"},
    "type": {"type": "string"}, "details": {}}}


def _obj(*required: str, **props: Any) -> dict[str, Any]:
    """An object schema with ``required`` keys (typed by ``props``; others are any value)."""
    properties = {name: props.get(name, {}) for name in required}
    properties.update(props)
    return {"type": "object", "required": list(required), "properties": properties}


_ARRAY = {"type": "array"}
_STR, _BOOL, _INT = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
_NUM = {"type": "number"}

# Errors every route can answer: a bad body (400), no or a bad token (401), a capability
# the caller lacks (403), a body over max_body_mb (413), invalid values (422), a per-user
# rate limit (429).
_COMMON = (400, 401, 403, 413, 422, 429)
_MODEL = (404, 409, 499, 501, 502, 503, 507)  # routes that resolve, load or run a model


@dataclass(frozen=True)
class Op:
    """One documented operation: its summary, body model, success answers and error codes."""

    summary: str
    body: str | None = None
    ok: dict[str, dict[str, Any]] = field(default_factory=dict)  # status -> media -> schema
    errors: tuple[int, ...] = ()
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    error_schema: str = "Error"


def _ok(schema: dict[str, Any] | None = None, *media: str, status: str = "200"
        ) -> dict[str, dict[str, Any]]:
    return {status: {m: ({"schema": schema} if schema and m == JSON else {})
                     for m in (media or (JSON,))}}


_GEN = _obj("model", "finish_reason", "usage", "timings", model=_STR)
_LIMIT = ("limit", {"type": "integer", "minimum": 1, "maximum": 1_000_000})
_FILTERS = (("model", _STR), ("user", _STR), ("collection", _STR), ("since", _NUM),
            ("until", _NUM))

ROUTES: dict[str, dict[str, Op]] = {
    "/llm/api/models": {"get": Op("List registry models with their state",
                                  ok=_ok(_obj("models", models=_ARRAY)),
                                  query=(("tag", _STR),))},
    "/llm/api/models/{id}": {
        "get": Op("One model with its state", ok=_ok(_obj("id", "state", id=_STR, state=_STR)),
                  errors=(404,)),
        "delete": Op("Unload and delete an installed model", ok=_ok(_obj("removed", removed=_BOOL)),
                     errors=(404, 409))},
    "/llm/api/pull": {"post": Op("Download a registry model (NDJSON progress unless stream is "
                                 "false)", "PullBody", _ok(_obj("id"), NDJSON, JSON),
                                 errors=_MODEL)},
    "/llm/api/pull/cancel": {"post": Op("Cancel a running download", "ModelBody",
                                        _ok(_obj("cancelled", cancelled=_BOOL)), errors=(404,))},
    "/llm/api/downloads": {"get": Op("Running downloads", ok=_ok(_obj("downloads",
                                                                      downloads=_ARRAY)))},
    "/llm/api/load": {"post": Op("Load a model now", "LoadBody", _ok(_obj("id", id=_STR)),
                                 errors=_MODEL)},
    "/llm/api/unload": {"post": Op("Unload a model", "ModelBody",
                                   _ok(_obj("unloaded", unloaded=_BOOL)), errors=(404,))},
    "/llm/api/ps": {"get": Op("Loaded models", ok=_ok(_obj("models", models=_ARRAY)))},
    "/llm/api/chat": {"post": Op('Chat with a model: NDJSON {"delta"} lines then {"done": '
                                 'true, ...}, with {"queued": {"position", "expected_wait_s"}} '
                                 'lines while waiting for the model; one object with "message" '
                                 'when stream is false',
                                 "ChatBody", _ok(_GEN, NDJSON, JSON), errors=_MODEL)},
    "/llm/api/generate": {"post": Op('Raw completion: as chat, with "text" instead of '
                                     '"message"', "GenerateBody", _ok(_GEN, NDJSON, JSON),
                                     errors=_MODEL)},
    "/llm/api/embed": {"post": Op("Embed texts", "EmbedBody",
                                  _ok(_obj("model", "embeddings", model=_STR,
                                           embeddings=_ARRAY)), errors=_MODEL)},
    "/llm/api/history": {"get": Op("Recent requests the caller may see, newest first",
                                   ok=_ok(_obj("entries", entries=_ARRAY)),
                                   query=(_LIMIT, *_FILTERS))},
    "/llm/api/history/stats": {"get": Op("Requests, errors, tokens and speed per model or user",
                                         ok=_ok(_obj("requests", "errors")),
                                         query=(("by", {"enum": ["model", "user"]}),
                                                *_FILTERS[1:]))},
    "/llm/api/history/export": {"get": Op("The filtered history as CSV or JSONL",
                                          ok=_ok(None, "text/csv", NDJSON),
                                          query=(("format", {"enum": ["csv", "jsonl"]}),
                                                 *_FILTERS))},
    "/llm/api/history/{id}/feedback": {"post": Op("Rate one of the caller's answers",
                                                  "FeedbackBody", _ok(_obj("id")),
                                                  errors=(404,))},
    "/llm/api/me": {"get": Op("The caller's name, role, permissions and usage",
                              ok=_ok(_obj("name", "role", name=_STR, role=_STR)))},
    "/llm/api/tokens": {
        "get": Op("Named tokens (never the tokens themselves)", ok=_ok(_obj("tokens",
                                                                            tokens=_ARRAY))),
        "post": Op("Issue a named token (shown only in this answer)", "TokenBody",
                   _ok(_obj("name", "role", "token"), status="201"), errors=(409,))},
    "/llm/api/tokens/{name}": {"delete": Op("Revoke a named token",
                                            ok=_ok(_obj("revoked", revoked=_BOOL)),
                                            errors=(404,))},
    "/llm/api/conversations": {
        "get": Op("The caller's saved conversations, most recent first",
                  ok=_ok(_obj("conversations", conversations=_ARRAY))),
        "post": Op("Save a new conversation of the caller's", "ConversationBody",
                   _ok(_obj("id", "title", "messages", id=_STR), status="201"), errors=(503, 507))},
    "/llm/api/conversations/{id}": {
        "get": Op("One of the caller's conversations with its messages",
                  ok=_ok(_obj("id", "title", "messages", id=_STR)), errors=(404,)),
        "put": Op("Replace the messages of one of the caller's conversations",
                  "ConversationBody", _ok(_obj("id", "title", "messages", id=_STR)),
                  errors=(404, 503, 507)),
        "delete": Op("Delete one of the caller's conversations",
                     ok=_ok(_obj("deleted", deleted=_BOOL)))},
    "/llm/api/conversations/{id}/export": {"post": Op(
        "Write one of the caller's conversations as a notebook in the server's root folder",
        "ExportBody", _ok(_obj("path", path=_STR), status="201"), errors=(404,))},
    "/llm/api/config": {"get": Op("Version and non-secret settings", ok=_ok(_obj("version")))},
    "/llm/api/collections": {
        "get": Op("List collections", ok=_ok(_obj("collections", collections=_ARRAY))),
        "post": Op("Create a collection (201; 200 when a matching one exists)",
                   "CreateCollectionBody", {**_ok(_obj("name")), **_ok(_obj("name"),
                                                                        status="201")},
                   errors=(404, 409, 501, 502, 507))},
    "/llm/api/collections/{name}": {
        "get": Op("One collection", ok=_ok(_obj("name")), errors=(404,)),
        "patch": Op("Change a collection's settings (tutoring_guard: instructors and admins)",
                    "CollectionSettingsBody", ok=_ok(_obj("name", tutoring_guard=_BOOL)),
                    errors=(404,)),
        "delete": Op("Delete a collection file", ok=_ok(_obj("removed")), errors=(404,))},
    "/llm/api/collections/{name}/documents": {
        "get": Op('The documents of a collection: {"documents": [{"source", "path", "title", "kind", '
                  '"size", "n_chunks", "ingested_at"}]}',
                  ok=_ok(_obj("documents", documents=_ARRAY)), errors=(404,))},
    "/llm/api/collections/{name}/ingest": {
        "post": Op('Ingest files and folders under root_dir: NDJSON {"done", "total", "path", '
                   '"status"} lines ending with {"done": true, "status": "done", ...}',
                   "IngestBody", _ok(_obj("done"), NDJSON, JSON),
                   errors=(404, 409, 499, 501, 502, 507))},
    "/llm/api/collections/{name}/search": {
        "post": Op('Search a collection (with "queries": {"searches": [one result per '
                   'query]})', "SearchBody",
                   _ok({"type": "object", "anyOf": [_obj("results", "supported",
                                                         results=_ARRAY),
                                                    _obj("searches", searches=_ARRAY)]}),
                   errors=(404, 409, 501, 502))},
    "/llm/api/collections/{name}/ask": {
        "post": Op('Answer from a collection with citations: as chat, plus "citations", '
                   '"supported"', "AskBody", _ok(_obj("citations"), NDJSON, JSON),
                   errors=(404, 409, 499, 501, 502, 503))},
    "/llm/api/collections/{name}/evaluate": {
        "post": Op('Evaluate a collection (and chat models) on questions: NDJSON {"item"} '
                   'lines, one per question and model, ending with {"done": true, "measured"}',
                   "EvaluateBody", _ok(_obj("done"), NDJSON),
                   errors=(404, 409, 499, 501, 502, 503))},
    "/llm/api/openapi.json": {"get": Op("This document", ok=_ok(_obj("openapi", "paths")))},
    "/llm/v1/models": {"get": Op("OpenAI: list models", ok=_ok(_obj(
        "object", "data", object={"const": "list"}, data=_ARRAY)), error_schema="OpenAIError")},
    "/llm/v1/models/{id}": {"get": Op("OpenAI: one model", ok=_ok(_obj("id", "object")),
                                      errors=(404,), error_schema="OpenAIError")},
    "/llm/v1/chat/completions": {"post": Op(
        "OpenAI: chat completion (server-sent events when stream is true; while waiting for "
        "the model, comment lines ': queued {\"position\", \"expected_wait_s\"}')",
        "ChatCompletionBody", _ok(_obj("id", "object", "choices", choices=_ARRAY), JSON, SSE),
        errors=(401, *_MODEL), error_schema="OpenAIError")},
    "/llm/v1/completions": {"post": Op(
        "OpenAI: text completion (server-sent events when stream is true)", "CompletionBody",
        _ok(_obj("id", "object", "choices", choices=_ARRAY), JSON, SSE),
        errors=(401, *_MODEL), error_schema="OpenAIError")},
    "/llm/v1/embeddings": {"post": Op("OpenAI: embeddings", "EmbeddingsBody", _ok(_obj(
        "object", "data", "model", data=_ARRAY)), errors=(401, *_MODEL),
        error_schema="OpenAIError")},
    "/llm/call": {"post": Op(
        "Pantry: one function call. Always 200 once authenticated: the outcome is in the body "
        '({"status": "success", "value": ...} or {"status": "error", "message", "type"})',
        "PantryCall", _ok(_PANTRY_ANSWER), errors=())},
}

_PANTRY_CALL = {"type": "object", "required": ["function"], "properties": {
    "function": {"type": "string", "description": "handshake, call_llm, load_llm, "
                                                  "unload_llm or download_model"},
    "parameters": {"type": "object"}}}


def _body_models() -> dict[str, type[Any]]:
    from . import classroom, collections, conversations, native, openai_compat

    found: dict[str, type[Any]] = {}
    for module in (native, collections, classroom, conversations, openai_compat):
        for name in dir(module):
            if name.endswith("Body"):
                found[name] = getattr(module, name)
    return found


def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of every route: native, ``/v1`` and Pantry."""
    models = _body_models()
    schemas: dict[str, Any] = {"Error": _ERROR, "OpenAIError": _OPENAI_ERROR,
                               "PantryCall": _PANTRY_CALL, "PantryAnswer": _PANTRY_ANSWER}
    paths: dict[str, Any] = {}
    for path, methods in ROUTES.items():
        item: dict[str, Any] = {}
        for method, spec in methods.items():
            responses: dict[str, Any] = {
                status: {"description": "Success", "content": content}
                for status, content in spec.ok.items()}
            codes = sorted(set(spec.errors) | (set() if path == "/llm/call" else set(_COMMON)))
            for code in codes or (401,):
                responses[str(code)] = {
                    "description": httputil.responses.get(code, "Client Closed Request"),
                    "content": {JSON: {"schema": {"$ref": f"#/components/schemas/"
                                                          f"{spec.error_schema}"}}}}
                if code in (429, 503):
                    responses[str(code)]["headers"] = {"Retry-After": {"schema": _INT}}
            op: dict[str, Any] = {"summary": spec.summary, "responses": responses}
            params = [{"name": p[1:-1], "in": "path", "required": True,
                       "schema": {"type": "string", "minLength": 1}}
                      for p in path.split("/") if p.startswith("{")]
            params += [{"name": name, "in": "query", "required": False, "schema": schema}
                       for name, schema in spec.query]
            if params:
                op["parameters"] = params
            if spec.body:
                if spec.body not in schemas:
                    schemas[spec.body] = models[spec.body].model_json_schema(
                        ref_template="#/components/schemas/{model}")
                    schemas.update(schemas[spec.body].pop("$defs", {}))
                op["requestBody"] = {"required": True, "content": {JSON: {
                    "schema": {"$ref": f"#/components/schemas/{spec.body}"}}}}
            item[method] = op
        paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "jupyter-llm API: native, OpenAI-compatible /v1 and Pantry",
                 "version": __version__,
                 "description": "Paths are relative to the Jupyter server's base_url. "
                                "Authenticate with `Authorization: token <TOKEN>` (or "
                                "`Bearer <TOKEN>`). Errors have one shape: `Error` on the "
                                "native API, `OpenAIError` on /v1; Pantry answers 200 with "
                                "the outcome in the body."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"token": {
            "type": "apiKey", "in": "header", "name": "Authorization"}}},
        "security": [{"token": []}],
    }


class OpenAPIHandler(LLMHandler):
    """``GET llm/api/openapi.json``."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        """The OpenAPI document."""
        self.write_json(openapi_document())


default_handlers = [(r"/llm/api/openapi.json", OpenAPIHandler)]
