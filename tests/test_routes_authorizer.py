"""A custom Jupyter ``Authorizer`` (JupyterHub roles, for instance) governs every ``/llm`` route:
each handler asks it about the ``llm`` resource, after authentication."""

from __future__ import annotations

import json

import pytest
from jupyter_server.auth.authorizer import Authorizer

from tests.test_routes_auth import example_path, implemented_verbs, llm_routes


class NoLLMAuthorizer(Authorizer):
    """Allows everything except the jupyter_llm routes."""

    asked: list[tuple[str, str]] = []

    def is_authorized(self, handler, user, action, resource) -> bool:
        self.asked.append((action, resource))
        return resource != "llm"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_llm": True},
                          "authorizer_class": NoLLMAuthorizer}}


async def test_every_route_asks_the_authorizer_about_the_llm_resource(jp_web_app, jp_fetch,
                                                                      jp_base_url):
    NoLLMAuthorizer.asked.clear()
    checked = 0
    for pattern, handler in llm_routes(jp_web_app):
        path = example_path(pattern)[len(jp_base_url) - 1:]
        for verb in implemented_verbs(handler):
            body = "{}" if verb in ("post", "put", "patch") else None
            r = await jp_fetch(path, method=verb.upper(), body=body, raise_error=False)
            assert r.code == 403, (verb, path, r.code)
            err = json.loads(r.body)["error"]
            assert err["type"] == "forbidden" and "resource: llm" in err["message"], err
            checked += 1
    assert checked >= 25
    assert ("read", "llm") in NoLLMAuthorizer.asked and ("write", "llm") in NoLLMAuthorizer.asked
    r = await jp_fetch("api", "status")  # Jupyter's own routes are not affected
    assert r.code == 200
