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


def test_openapi_paths_and_methods_equal_the_registered_native_routes(jp_web_app, jp_base_url):
    registered = {}
    for pattern, handler in llm_routes(jp_web_app):
        if "/llm/api/" in pattern:
            registered[normalise(pattern[len(jp_base_url) - 1:])] = set(implemented_verbs(handler))
    documented = {normalise(p): set(ops) for p, ops in openapi_document()["paths"].items()}
    assert documented == registered


def test_request_schemas_come_from_the_body_models():
    doc = openapi_document()
    chat = doc["components"]["schemas"]["ChatBody"]
    assert chat["required"] == ["messages"]
    assert chat["additionalProperties"] is False
    ref = doc["paths"]["/llm/api/chat"]["post"]["requestBody"]["content"]["application/json"]
    assert ref["schema"]["$ref"] == "#/components/schemas/ChatBody"


async def test_the_document_is_served(jp_fetch):
    r = await jp_fetch("llm", "api", "openapi.json")
    assert json.loads(r.body) == json.loads(json.dumps(openapi_document()))
