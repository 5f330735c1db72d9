"""The Pantry protocol ``llm/call`` against a real server and real tiny models."""

from __future__ import annotations

import json

import pytest

from jupyter_llm.testing.tiny_gguf import sha256_file


async def pantry(jp_fetch, function, **parameters):
    """Call one Pantry function and return the protocol answer."""
    body = json.dumps({"function": function, "parameters": parameters})
    r = await jp_fetch("llm", "call", method="POST", body=body, raise_error=False)
    assert r.code == 200
    return json.loads(r.body)


async def test_handshake_names_the_server_and_functions(tiny_registry, jp_fetch):
    answer = await pantry(jp_fetch, "handshake")
    assert answer["status"] == "success"
    assert answer["value"]["server"] == "jupyter-llm"
    assert set(answer["value"]["functions"]) == {
        "handshake", "call_llm", "load_llm", "unload_llm", "download_model"}


async def test_call_llm_by_requirements_loads_an_installed_model(tiny_registry, jp_fetch):
    answer = await pantry(jp_fetch, "call_llm", prompt="Hello",
                          model_requirements={"tags": ["2024_BASIC"]},
                          fallback_mode="requirements_load", options={"max_tokens": 6})
    assert answer["status"] == "success", answer
    assert answer["value"]["model"] == "tiny-chat"
    assert answer["value"]["text"] and answer["value"]["usage"]["completion_tokens"] == 6


async def test_fallback_none_needs_the_preferred_model_loaded(tiny_registry, jp_fetch):
    answer = await pantry(jp_fetch, "call_llm", prompt="Hi", preferred_model="tiny-chat",
                          fallback_mode="none")
    assert answer["status"] == "error" and answer["type"] == "model_not_ready"
    assert "fallback_mode" in answer["message"]
    loaded = await pantry(jp_fetch, "load_llm", model="tiny-chat")
    assert loaded["status"] == "success" and loaded["value"]["id"] == "tiny-chat"
    answer = await pantry(jp_fetch, "call_llm", preferred_model="tiny-chat", fallback_mode="none",
                          messages=[{"role": "user", "content": "Hi"}], options={"max_tokens": 3})
    assert answer["status"] == "success" and answer["value"]["model"] == "tiny-chat"
    answer = await pantry(jp_fetch, "call_llm", prompt="x", fallback_mode="requirements",
                          model_requirements=["2024_BASIC"], options={"max_tokens": 2})
    assert answer["value"]["model"] == "tiny-chat"  # loaded, so "requirements" finds it
    unloaded = await pantry(jp_fetch, "unload_llm", model="tiny-chat")
    assert unloaded == {"status": "success", "value": {"unloaded": True}}
    answer = await pantry(jp_fetch, "call_llm", prompt="x", fallback_mode="requirements",
                          model_requirements=["2024_BASIC"])
    assert answer["status"] == "error" and answer["type"] == "model_not_ready"


async def test_protocol_errors_are_status_error_with_a_message(tiny_registry, jp_fetch):
    r = await jp_fetch("llm", "call", method="POST", body="{nope", raise_error=False)
    assert json.loads(r.body)["status"] == "error"
    answer = await pantry(jp_fetch, "make_coffee")
    assert answer["status"] == "error" and "call_llm" in answer["message"]
    answer = await pantry(jp_fetch, "call_llm", prompt="x", messages=[])
    assert answer["status"] == "error" and "exactly one of prompt or messages" in answer["message"]
    answer = await pantry(jp_fetch, "call_llm", prompt="x", fallback_mode="sometimes")
    assert answer["status"] == "error" and "fallback_mode" in answer["message"]
    answer = await pantry(jp_fetch, "load_llm", model="nope")
    assert answer["status"] == "error" and answer["type"] == "unknown_model"
    answer = await pantry(jp_fetch, "call_llm", prompt="x", bogus=1)
    assert answer["status"] == "error" and "bogus" in answer["message"]


@pytest.fixture
def served_gguf(http_server, tiny_gguf):
    """The tiny chat GGUF served over HTTP."""
    http_server.serve("/served.gguf", file=tiny_gguf)
    return http_server.url("/served.gguf")


async def test_download_model_by_url_is_forbidden_by_default(tiny_registry, served_gguf,
                                                             jp_fetch):
    answer = await pantry(jp_fetch, "download_model", url=served_gguf)
    assert answer["status"] == "error" and answer["type"] == "forbidden"
    assert "allow_url_downloads" in answer["message"]


async def test_download_model_from_the_registry(tiny_registry, tmp_path, monkeypatch,
                                                served_gguf, tiny_gguf, jp_fetch):
    registry = tmp_path / "extra.json"
    registry.write_text(json.dumps({"models": [{
        "id": "served", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"], "url": served_gguf,
        "sha256": sha256_file(tiny_gguf)}]}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", f"{tiny_registry.path}:{registry}")
    answer = await pantry(jp_fetch, "download_model", model="served")
    assert answer["status"] == "success", answer
    assert answer["value"]["manifest"]["sha256_verified"] is True


@pytest.fixture
def jp_server_config():
    """This module's servers allow URL downloads only where a test asks (see below)."""
    return {"ServerApp": {"jpserver_extensions": {"jupyter_llm": True}}}


@pytest.mark.parametrize("jp_server_config", [{"ServerApp": {
    "jpserver_extensions": {"jupyter_llm": True}},
    "JupyterLLM": {"allow_url_downloads": True}}])
async def test_download_model_by_url_when_enabled_then_call_it(tiny_registry, served_gguf,
                                                               jp_server_config, jp_fetch):
    answer = await pantry(jp_fetch, "download_model", url=served_gguf)
    assert answer["status"] == "success", answer
    model_id = answer["value"]["model"]
    assert model_id == "url:served.gguf"
    answer = await pantry(jp_fetch, "call_llm", preferred_model=model_id, fallback_mode="load",
                          prompt="Hi", options={"max_tokens": 3})
    assert answer["status"] == "success" and answer["value"]["model"] == model_id
