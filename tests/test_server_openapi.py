"""The OpenAPI document of the native API stays true to the registered handlers."""

from __future__ import annotations

import json
import re

from jupyter_llm.server.openapi import openapi_document

from .test_routes_auth import implemented_verbs, llm_routes


def normalise(path: str) -> str:
    """Replace regex groups and {name} parameters with {}."""
    path = re.sub(r"\([^()]*\)", "{}", path.rstrip("$"))
    return re.sub(r"\{[^}]*\}", "{}", path).replace("\\.", ".")


def test_openapi_paths_and_methods_equal_every_registered_route(jp_web_app, jp_base_url):
    registered = {}
    for pattern, handler in llm_routes(jp_web_app):
        path = normalise(pattern[len(jp_base_url) - 1:])
        if path != "/llm/{}":  # the JSON 404 for everything else
            registered[path] = set(implemented_verbs(handler))
    documented = {normalise(p): set(ops) for p, ops in openapi_document()["paths"].items()}
    assert documented == registered


def test_request_schemas_come_from_the_body_models():
    doc = openapi_document()
    chat = doc["components"]["schemas"]["ChatBody"]
    assert chat["required"] == ["messages"]
    assert chat["additionalProperties"] is False
    ref = doc["paths"]["/llm/api/chat"]["post"]["requestBody"]["content"]["application/json"]
    assert ref["schema"]["$ref"] == "#/components/schemas/ChatBody"


def test_every_operation_documents_its_errors_and_pantry_only_success():
    doc = openapi_document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert "500" not in codes and "default" not in codes, (path, method)
            if path == "/llm/call":
                assert codes == {"200", "401"}
                continue
            assert {"400", "401", "403", "413", "422"} <= codes, (path, method)
            shape = "OpenAIError" if path.startswith("/llm/v1/") else "Error"
            assert op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"] \
                .endswith(shape)
    chat = doc["paths"]["/llm/api/chat"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/x-ndjson", "application/json"}
    assert "201" in doc["paths"]["/llm/api/collections"]["post"]["responses"]
    assert "Retry-After" in doc["paths"]["/llm/api/chat"]["post"]["responses"]["503"]["headers"]


async def test_an_unsupported_method_is_405_with_allow(jp_fetch):
    r = await jp_fetch("llm", "api", "models", method="PATCH", body="{}", raise_error=False)
    assert r.code == 405 and r.headers["Allow"] == "GET"
    r = await jp_fetch("llm", "api", "collections", method="PUT", body="{}", raise_error=False)
    assert r.code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "POST"}


async def test_the_document_is_served(jp_fetch):
    r = await jp_fetch("llm", "api", "openapi.json")
    assert json.loads(r.body) == json.loads(json.dumps(openapi_document()))
