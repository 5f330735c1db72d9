"""The native API ``llm/api/…`` against a real Jupyter server and real tiny GGUF models."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from jupyter_llm.registry import ModelSpec
from jupyter_llm.testing.tiny_gguf import sha256_file


async def call(jp_fetch, *path, body=None, method=None, **kwargs):
    """Fetch and return ``(status, parsed JSON or NDJSON list, response)``."""
    if body is not None:
        kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
    r = await jp_fetch(*path, method=method or ("POST" if body is not None else "GET"),
                       raise_error=False, **kwargs)
    text = r.body.decode()
    if r.headers.get("Content-Type", "").startswith("application/x-ndjson"):
        return r.code, [json.loads(line) for line in text.splitlines() if line], r
    return r.code, json.loads(text) if text else None, r


def assert_error(status, body, code, kind):
    """The one error shape, with the expected status and type."""
    assert status == code, body
    assert set(body) == {"error"}
    assert body["error"]["type"] == kind
    assert body["error"]["message"]
    assert "Traceback" not in json.dumps(body)


async def test_models_lists_the_registry_with_states(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "models")
    assert status == 200
    states = {m["id"]: m["state"] for m in body["models"]}
    assert states["tiny-chat"] == "installed"
    assert states["tiny-remote-only"] == "available"
    status, body, _ = await call(jp_fetch, "llm", "api", "models", params={"tag": "EMBEDDING"})
    assert "tiny-embed" in {m["id"] for m in body["models"]}
    assert "tiny-chat" not in {m["id"] for m in body["models"]}


async def test_one_model_by_alias_and_unknown_model_is_404(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "models", "tiny")
    assert status == 200 and body["id"] == "tiny-chat" and body["state"] == "installed"
    status, body, _ = await call(jp_fetch, "llm", "api", "models", "tiny-chta")
    assert_error(status, body, 404, "unknown_model")
    assert "tiny-chat" in body["error"]["details"]["suggestions"]


async def test_chat_streams_ndjson_then_done_and_model_shows_as_loaded(tiny_registry, jp_fetch):
    status, lines, r = await call(jp_fetch, "llm", "api", "chat", body={
        "model": "tiny-chat", "messages": [{"role": "user", "content": "Hello"}],
        "options": {"max_tokens": 12, "temperature": 0}})
    assert status == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
    deltas = [line["delta"] for line in lines[:-1]]
    assert len(deltas) == 12 and all(isinstance(d, str) for d in deltas)
    done = lines[-1]
    assert done["done"] is True and done["model"] == "tiny-chat"
    assert done["finish_reason"] == "length"
    assert done["usage"]["completion_tokens"] == 12 and done["usage"]["prompt_tokens"] > 0
    assert done["timings"]["duration_s"] > 0
    # the same request without streaming gives the same text (temperature 0)
    status, body, _ = await call(jp_fetch, "llm", "api", "chat", body={
        "model": "tiny-chat", "messages": [{"role": "user", "content": "Hello"}],
        "options": {"max_tokens": 12, "temperature": 0}, "stream": False})
    assert status == 200
    assert body["message"] == {"role": "assistant", "content": "".join(deltas)}
    status, body, _ = await call(jp_fetch, "llm", "api", "ps")
    assert [m["id"] for m in body["models"]] == ["tiny-chat"]
    status, body, _ = await call(jp_fetch, "llm", "api", "models", "tiny-chat")
    assert body["state"] == "loaded"


async def test_generate_and_default_model(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "generate", body={
        "model": None, "prompt": "Once upon", "options": {"max_tokens": 5, "temperature": 0},
        "stream": False})
    assert status == 200 and body["model"] == "tiny-chat"
    assert isinstance(body["text"], str) and body["usage"]["completion_tokens"] == 5


async def test_embed_returns_one_vector_per_input(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "embed",
                                 body={"input": ["a cat", "a dog", "a cat"]})
    assert status == 200 and body["model"] == "tiny-embed"
    vectors = body["embeddings"]
    assert len(vectors) == 3 and all(len(v) == 64 for v in vectors)
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    status, body, _ = await call(jp_fetch, "llm", "api", "embed",
                                 body={"model": "tiny-embed", "input": "one"})
    assert len(body["embeddings"]) == 1


async def test_load_unload_and_ps(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "load",
                                 body={"model": "tiny", "options": {"n_ctx": 256}})
    assert status == 200 and body["id"] == "tiny-chat"
    status, body, _ = await call(jp_fetch, "llm", "api", "unload", body={"model": "tiny-chat"})
    assert body == {"unloaded": True}
    status, body, _ = await call(jp_fetch, "llm", "api", "unload", body={"model": "tiny-chat"})
    assert body == {"unloaded": False}
    status, body, _ = await call(jp_fetch, "llm", "api", "ps")
    assert body == {"models": []}


async def test_malformed_json_is_400(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "chat", body='{"messages": [')
    assert_error(status, body, 400, "invalid_request")
    assert "not valid JSON" in body["error"]["message"]


async def test_client_errors_log_one_line_not_an_uncaught_traceback(tiny_registry, jp_fetch,
                                                                     caplog):
    caplog.set_level("DEBUG")
    status, _, _ = await call(jp_fetch, "llm", "api", "chat", body='{"messages": [')
    assert status == 400
    status, _, _ = await call(jp_fetch, "llm", "api", "chat", body={
        "model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert status == 404
    assert not [r for r in caplog.records if r.exc_info or "Uncaught" in r.getMessage()]
    assert any("Unknown model 'nope'" in r.getMessage() for r in caplog.records)


async def test_missing_and_unknown_body_fields_are_400_naming_the_field(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "chat", body={"model": "tiny-chat"})
    assert_error(status, body, 400, "invalid_request")
    assert body["error"]["details"]["fields"][0]["field"] == "messages"
    status, body, _ = await call(jp_fetch, "llm", "api", "chat", body={
        "messages": [{"role": "user", "content": "x"}], "temprature": 1})
    assert_error(status, body, 400, "invalid_request")
    assert "temprature" in body["error"]["message"]


async def test_invalid_options_are_422_naming_the_field(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "chat", body={
        "model": "tiny-chat", "messages": [{"role": "user", "content": "x"}],
        "options": {"temperature": 7}})
    assert_error(status, body, 422, "invalid_options")
    assert [f["field"] for f in body["error"]["details"]["fields"]] == ["temperature"]


async def test_unknown_model_in_chat_is_404_and_uninstalled_is_409(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "chat", body={
        "model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert_error(status, body, 404, "unknown_model")
    status, body, _ = await call(jp_fetch, "llm", "api", "chat", body={
        "model": "tiny-remote-only", "messages": [{"role": "user", "content": "x"}]})
    assert_error(status, body, 409, "model_not_ready")
    assert "jupyter llm" not in body["error"]["message"]  # the hint is data: each face renders it
    assert body["error"]["details"] == {"action": "pull", "model": "tiny-remote-only"}


async def test_unknown_route_under_llm_is_a_json_404(tiny_registry, jp_fetch, jp_base_url):
    status, body, _ = await call(jp_fetch, "llm", "api", "nothing-here")
    assert_error(status, body, 404, "not_found")
    # the path is quoted as sent: '%' is not doubled (jp_base_url is /a%40b/)
    assert f"No route {jp_base_url}llm/api/nothing-here;" in body["error"]["message"]


async def test_config_shows_settings_and_version(tiny_registry, jp_fetch):
    status, body, _ = await call(jp_fetch, "llm", "api", "config")
    assert status == 200 and body["version"]
    assert body["settings"]["default_model"] == "tiny-chat"
    assert body["settings"]["allow_url_downloads"] is False


async def test_history_records_requests_unless_log_is_false(tiny_registry, jp_fetch):
    for log, text in ((True, "remember me"), (False, "forget me")):
        await call(jp_fetch, "llm", "api", "chat", body={
            "messages": [{"role": "user", "content": text}], "log": log, "stream": False,
            "options": {"max_tokens": 4}})
    status, body, _ = await call(jp_fetch, "llm", "api", "history", params={"limit": "10"})
    assert status == 200
    contents = [e["messages"][0]["content"] for e in body["entries"]]
    assert contents == ["remember me"]
    entry = body["entries"][0]
    assert entry["model"] == "tiny-chat" and entry["face"] == "api"
    assert entry["completion_tokens"] == 4
    assert entry["options"] == {"max_tokens": 4, "trim_history": True}  # native chat's default
    status, body, _ = await call(jp_fetch, "llm", "api", "history", params={"limit": "0"})
    assert_error(status, body, 400, "invalid_request")
    status, body, _ = await call(jp_fetch, "llm", "api", "history", "stats")
    assert body["models"]["tiny-chat"]["requests"] == 1


async def test_disconnect_cancels_the_generation(tiny_registry, jp_fetch, llm_url, llm_token):
    payload = {"model": "tiny-chat", "messages": [{"role": "user", "content": "go"}],
               "options": {"max_tokens": 1900, "temperature": 0}}
    status, full, _ = await call(jp_fetch, "llm", "api", "chat", body=payload)
    full_tokens = full[-1]["usage"]["completion_tokens"]
    assert full_tokens > 1000

    def read_one_line_and_hang_up() -> str:
        with httpx.Client(headers={"Authorization": f"token {llm_token}"}) as client:
            with client.stream("POST", llm_url + "llm/api/chat", json=payload) as r:
                return next(r.iter_lines())

    first = await asyncio.to_thread(read_one_line_and_hang_up)
    assert "delta" in json.loads(first)
    deadline = time.monotonic() + 30
    entries = []
    while time.monotonic() < deadline:
        status, body, _ = await call(jp_fetch, "llm", "api", "history", params={"limit": "5"})
        entries = body["entries"]
        if len(entries) == 2:
            break
        await asyncio.sleep(0.05)
    summary = [(e["error"], e["completion_tokens"]) for e in entries]
    assert [e["error"] for e in entries] == ["cancelled", None], summary
    assert entries[0]["completion_tokens"] < full_tokens / 2, summary
    # and the server still answers
    status, body, _ = await call(jp_fetch, "llm", "api", "ps")
    assert status == 200


async def test_pull_streams_progress_then_the_model_is_installed(
        tiny_registry, tmp_path, monkeypatch, http_server, tiny_gguf, jp_fetch):
    http_server.serve("/pull-me.gguf", file=tiny_gguf)
    registry = tmp_path / "pull-registry.json"
    entry = {"id": "pull-me", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
             "url": http_server.url("/pull-me.gguf"), "sha256": sha256_file(tiny_gguf),
             "size_bytes": tiny_gguf.stat().st_size}
    registry.write_text(json.dumps({"models": [entry]}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", f"{tiny_registry.path}:{registry}")
    status, lines, _ = await call(jp_fetch, "llm", "api", "pull", body={"model": "pull-me"})
    assert status == 200
    assert lines[-1]["status"] == "done"
    assert lines[-1]["manifest"]["sha256"] == entry["sha256"]
    assert all(line["model_id"] == "pull-me" for line in lines)
    status, body, _ = await call(jp_fetch, "llm", "api", "models", "pull-me")
    assert body["state"] == "installed"
    status, body, _ = await call(jp_fetch, "llm", "api", "models", "pull-me", method="DELETE")
    assert body == {"removed": True}
    status, body, _ = await call(jp_fetch, "llm", "api", "models", "pull-me")
    assert body["state"] == "available"
    assert ModelSpec.model_validate(entry).id == "pull-me"


async def test_pull_errors_end_the_stream_with_an_error_line(tiny_registry, jp_fetch):
    status, lines, _ = await call(jp_fetch, "llm", "api", "pull",
                                  body={"model": "tiny-remote-only"})
    assert status == 200
    assert lines[-1]["status"] == "error"
    assert lines[-1]["error"]["type"] in ("download_failed", "backend_error")
    status, body, _ = await call(jp_fetch, "llm", "api", "pull",
                                 body={"model": "nope", "stream": False})
    assert_error(status, body, 404, "unknown_model")
