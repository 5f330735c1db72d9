"""Every route the extension registers refuses requests without a valid token, for every
verb it implements, and answers in the one JSON error shape."""

from __future__ import annotations

import json
import re

from tornado import web
from tornado.routing import Router

from jupyter_llm.server.base import AUTH_MESSAGE, LLMHandler

VERBS = ("get", "post", "put", "patch", "delete")


def llm_routes(app: web.Application) -> list[tuple[str, type]]:
    """(regex pattern, handler class) of every jupyter_llm handler in the tornado app."""
    found: list[tuple[str, type]] = []

    def walk(router: Router) -> None:
        for rule in getattr(router, "rules", []):
            target = rule.target
            if isinstance(target, Router):
                walk(target)
            elif isinstance(target, type) and issubclass(target, LLMHandler):
                found.append((rule.matcher.regex.pattern, target))

    walk(app.default_router)
    return found


def implemented_verbs(handler: type) -> list[str]:
    """The HTTP verbs a handler class implements itself."""
    return [v for v in VERBS if getattr(handler, v) is not getattr(web.RequestHandler, v)]


def example_path(pattern: str) -> str:
    """A concrete URL path matching a route regex (first alternative / 'x' for each group)."""
    path = re.sub(r"\(([^()]*)\)", lambda m: m.group(1).split("|")[0]
                  if re.fullmatch(r"[\w|]+", m.group(1)) else "x", pattern.rstrip("$"))
    return path.replace("\\.", ".")


def test_the_extension_registers_the_documented_route_families(jp_web_app):
    patterns = [p for p, _ in llm_routes(jp_web_app)]
    assert any(p.endswith("/llm/api/chat$") for p in patterns)
    assert any(p.endswith("/llm/v1/chat/completions$") for p in patterns)
    assert any(p.endswith("/llm/call$") for p in patterns)
    assert all(p.startswith("/a%40b/llm/") for p in patterns)  # all under base_url
    assert len(patterns) >= 20


async def test_every_route_and_verb_refuses_a_missing_or_wrong_token(jp_web_app, jp_fetch,
                                                                     http_server_client):
    checked = 0
    for pattern, handler in llm_routes(jp_web_app):
        path = example_path(pattern)
        verbs = implemented_verbs(handler)
        assert verbs, f"{handler.__name__} implements no verb"
        for verb in verbs:
            body = "{}" if verb in ("post", "put", "patch") else None
            for auth in ("", "token wrong-token", "Bearer wrong-token"):
                r = await http_server_client.fetch(
                    path, method=verb.upper(), body=body, raise_error=False,
                    headers={"Authorization": auth} if auth else {})
                assert r.code == 401, (verb, path, auth, r.code)  # never Jupyter's _xsrf 403
                err = json.loads(r.body)["error"]
                assert err["type"] == "unauthorized" and err["message"] == AUTH_MESSAGE, err
                if "/llm/v1/" in path:  # what the openai client turns into AuthenticationError
                    assert err["code"] == "invalid_api_key", err
                checked += 1
    assert checked >= 3 * 25


async def test_the_same_routes_answer_with_the_token(jp_web_app, jp_fetch, jp_base_url):
    for pattern, handler in llm_routes(jp_web_app):
        if "get" not in implemented_verbs(handler):
            continue
        path = example_path(pattern)[len(jp_base_url) - 1:]
        r = await jp_fetch(path, raise_error=False)
        assert r.code not in (401, 403), (path, r.code)
