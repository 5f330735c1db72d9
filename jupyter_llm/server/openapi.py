"""The OpenAPI document of the native API, served at ``llm/api/openapi.json``.

Request schemas come from the handlers' pydantic body models, so they cannot drift; a test
checks that the document's paths are exactly the registered native routes.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from .._version import __version__
from .base import LLMHandler

__all__ = ["openapi_document", "default_handlers"]

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["type", "message"],
    "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}

# path -> method -> (summary, body model name or None, answer description, streams NDJSON)
_ROUTES: dict[str, dict[str, tuple[str, str | None, str, bool]]] = {
    "/llm/api/models": {"get": ("List registry models with their state", None,
                                '{"models": [ModelSpec + {"state"}]}; query `tag` filters', False)},
    "/llm/api/models/{id}": {
        "get": ("One model with its state", None, "ModelSpec + state", False),
        "delete": ("Unload and delete an installed model", None, '{"removed": bool}', False)},
    "/llm/api/pull": {"post": ("Download a registry model", "PullBody",
                               "NDJSON progress lines ending with status done or error", True)},
    "/llm/api/pull/cancel": {"post": ("Cancel a running download", "ModelBody",
                                      '{"cancelled": bool}', False)},
    "/llm/api/downloads": {"get": ("Running downloads", None, '{"downloads": [progress]}', False)},
    "/llm/api/load": {"post": ("Load a model now", "LoadBody", "the model's ps entry", False)},
    "/llm/api/unload": {"post": ("Unload a model", "ModelBody", '{"unloaded": bool}', False)},
    "/llm/api/ps": {"get": ("Loaded models", None, '{"models": [ps entry]}', False)},
    "/llm/api/chat": {"post": ("Chat with a model", "ChatBody",
                               'NDJSON {"delta"} lines then {"done": true, ...}; or one object '
                               'with "message" when stream is false', True)},
    "/llm/api/generate": {"post": ("Raw completion", "GenerateBody",
                                   'as chat, with "text" instead of "message"', True)},
    "/llm/api/embed": {"post": ("Embed texts", "EmbedBody",
                                '{"model", "embeddings": [[float]]}', False)},
    "/llm/api/me": {"get": ("The caller's name, role, permissions and usage", None,
                            '{"name", "role", "history", "export", "manage_tokens", '
                            '"tutoring_guard", "models", "usage", "policy_error"}', False)},
    "/llm/api/history": {"get": ("Recent requests the caller may see, newest first", None,
                                 '{"entries": [...]}; query `limit`, `model`, `user`, '
                                 '`collection`, `since`, `until`', False)},
    "/llm/api/history/stats": {"get": ("Request statistics per model or user", None,
                                       '{"requests", "errors", "refusals", "models"|"users": '
                                       '{...}}; query `by`', False)},
    "/llm/api/history/export": {"get": ("The history as CSV or JSONL (instructors)", None,
                                        "a CSV or JSONL download; query `format` and the "
                                        "history filters", False)},
    "/llm/api/history/{id}/feedback": {
        "post": ("Rate an answer (id or request_id)", "FeedbackBody", "the updated entry",
                 False)},
    "/llm/api/tokens": {
        "get": ("Named API tokens (admins)", None, '{"tokens": [{"name", "role", '
                '"created_at"}]}', False),
        "post": ("Issue a named token (admins)", "TokenBody",
                 '{"name", "role", "token"} (201; the only time the token is shown)', False)},
    "/llm/api/tokens/{name}": {"delete": ("Revoke a named token (admins)", None,
                                          '{"revoked": true}', False)},
    "/llm/api/config": {"get": ("Version and non-secret settings", None, "config", False)},
    "/llm/api/collections": {
        "get": ("List collections", None, '{"collections": [{"name", "path", "documents", '
                '"chunks", "embedding_model", "vector_backend", "updated_at", ...}]}', False),
        "post": ("Create a collection", "CreateCollectionBody",
                 "the collection (201 created; 200 when a matching one exists)", False)},
    "/llm/api/collections/{name}": {
        "get": ("One collection", None, "the collection", False),
        "delete": ("Delete a collection file", None, '{"removed": true}', False)},
    "/llm/api/collections/{name}/ingest": {
        "post": ("Ingest files and folders under root_dir", "IngestBody",
                 'NDJSON {"done", "total", "path", "status", "chunks", "error"} lines ending '
                 'with {"done": true, "status": "done", "summary", "added", "updated", '
                 '"unchanged", "removed", "failed"}', True)},
    "/llm/api/collections/{name}/search": {
        "post": ("Search a collection", "SearchBody",
                 '{"supported", "top_similarity", "threshold", "results": [{"source", "path", '
                 '"text", "score", "heading", "start_line", "end_line", ...}]}; with '
                 '"queries": {"searches": [one such object per query]}', False)},
    "/llm/api/collections/{name}/ask": {
        "post": ("Answer from a collection with citations", "AskBody",
                 'as chat, plus "citations", "supported", "retrieval_only", "note", "cited"',
                 True)},
    "/llm/api/openapi.json": {"get": ("This document", None, "OpenAPI 3.1", False)},
}


def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of the native API."""
    from . import classroom, collections, native

    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for path, methods in _ROUTES.items():
        item: dict[str, Any] = {}
        for method, (summary, body, answer, streams) in methods.items():
            op: dict[str, Any] = {
                "summary": summary,
                "responses": {
                    "200": {"description": answer, "content": {
                        ("application/x-ndjson" if streams else "application/json"): {}}},
                    "default": {"description": "Error", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}}}}},
            }
            params = [p[1:-1] for p in path.split("/") if p.startswith("{")]
            if params:
                op["parameters"] = [{"name": p, "in": "path", "required": True,
                                     "schema": {"type": "string"}} for p in params]
            if body:
                model = next(getattr(m, body) for m in (native, collections, classroom)
                             if hasattr(m, body))
                schemas[body] = model.model_json_schema(ref_template="#/components/schemas/{model}")
                op["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{body}"}}}}
            item[method] = op
        paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "jupyter-llm native API", "version": __version__,
                 "description": "Paths are relative to the Jupyter server's base_url. "
                                "Authenticate with `Authorization: token <TOKEN>`."},
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
