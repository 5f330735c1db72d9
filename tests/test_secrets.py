"""The secret canary: a remote API that echoes the key back in its errors, and credentials
in an ``api_base`` URL, must never show up in any output of any face."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jupyter_llm import paths
from jupyter_llm.redact import redact, strip_userinfo

KEY = "canary-key-7f3a9c1e5b"            # a name that matches no *_KEY pattern: api_key_env only
URL_PASSWORD = "urlpass-c4n4ry-9921"
ENV = "CANARY_CREDENTIAL"


class _Echo(BaseHTTPRequestHandler):
    """An OpenAI-compatible API that fails every call, echoing the Authorization header."""

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        status = 500 if "embeddings" in self.path else 400
        body = json.dumps({"error": {"message": f"Bad request; you sent {auth!r} "
                                                f"(key {auth.split()[-1] if auth else ''})",
                                     "type": "invalid_request_error"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def canary_registry(echo_api, tmp_path, monkeypatch):
    """A registry with remote models behind the echoing API; the key lives in $CANARY_CREDENTIAL."""
    entries = [
        {"id": "canary", "backend": "openai", "tags": ["CONVERSATIONAL"],
         "api_base": f"http://{echo_api}/v1", "api_model": "m", "api_key_env": ENV},
        {"id": "canary-url", "backend": "openai", "tags": ["CONVERSATIONAL"],
         "api_base": f"http://user:{URL_PASSWORD}@{echo_api}/v1", "api_model": "m",
         "api_key_env": ENV},
        {"id": "canary-embed", "backend": "openai", "tags": ["EMBEDDING"],
         "api_base": f"http://{echo_api}/v1", "api_model": "e", "api_key_env": ENV},
    ]
    path = tmp_path / "canary.json"
    path.write_text(json.dumps({"models": entries}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(path))
    monkeypatch.setenv(ENV, KEY)
    return path


def _clean(text: str, where: str) -> None:
    assert KEY not in text, f"the key leaked into {where}: {text[:500]}"
    assert URL_PASSWORD not in text, f"the URL password leaked into {where}: {text[:500]}"


def test_redact_masks_keys_auth_headers_and_url_credentials(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-1234567890")
    text = redact("key tok-1234567890, Authorization: Bearer abcdefgh, http://u:pw12@h/x")
    assert "tok-1234567890" not in text and "abcdefgh" not in text and "pw12" not in text
    assert strip_userinfo("https://u:p@host:8/v1") == "https://***@host:8/v1"
    assert redact("a 4096-token context window") == "a 4096-token context window"


async def test_an_echoed_key_is_nowhere(canary_registry, jp_fetch, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    outputs: list[tuple[str, str]] = []
    msgs = [{"role": "user", "content": "hi"}]
    for model in ("canary", "canary-url"):
        for route, body in (
                (("llm", "api", "chat"), {"model": model, "messages": msgs}),
                (("llm", "api", "generate"), {"model": model, "prompt": "hi"}),
                (("llm", "v1", "chat", "completions"), {"model": model, "messages": msgs}),
                (("llm", "v1", "chat", "completions"), {"model": model, "messages": msgs,
                                                 "stream": True}),
                (("llm", "v1", "completions"), {"model": model, "prompt": "hi"}),
                (("llm", "call"), {"function": "call_llm", "parameters": {
                    "preferred_model": model, "fallback_mode": "load", "prompt": "hi"}})):
            r = await jp_fetch(*route, method="POST", body=json.dumps(body), raise_error=False)
            text = r.body.decode()
            outputs.append(("/".join(route), text))
            assert r.code != 200 or "error" in text, text  # the echo API always fails
    for route, body in ((("llm", "api", "embed"), {"model": "canary-embed", "input": ["x"]}),
                        (("llm", "v1", "embeddings"), {"model": "canary-embed", "input": ["x"]})):
        r = await jp_fetch(*route, method="POST", body=json.dumps(body), raise_error=False)
        outputs.append(("/".join(route), r.body.decode()))
    r = await jp_fetch("llm", "api", "models", method="GET")
    models = json.loads(r.body)["models"]
    outputs.append(("models", r.body.decode()))
    assert any(m.get("api_base", "").startswith("http://***@") for m in models)
    r = await jp_fetch("llm", "api", "history", method="GET", params={"limit": 100})
    outputs.append(("history API", r.body.decode()))
    assert any("error" in e and e["error"] for e in json.loads(r.body)["entries"])

    for where, text in outputs:
        _clean(text, where)
    assert any("canary" in t or "Bad request" in t for _, t in outputs)

    db = sqlite3.connect(paths.history_path())
    rows = db.execute("SELECT * FROM requests").fetchall()
    db.close()
    assert rows
    _clean(json.dumps(rows, default=str), "the history database")
    _clean(caplog.text, "the server log")

    from jupyter_llm.cli import main

    monkeypatch.delenv("JUPYTER_LLM_URL", raising=False)  # the CLI in-process, not via this loop
    assert main(["prompt", "-m", "canary", "hi"]) != 0
    cli = capsys.readouterr()
    assert "Bad request" in cli.err  # the remote's message still reaches the user…
    _clean(cli.out + cli.err, "the CLI output")  # … without the key
