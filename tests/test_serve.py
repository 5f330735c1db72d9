"""``jupyter llm serve``: a standalone host in a subprocess, its port fallback, RemoteClient
against it, two Jupyter servers sharing it, and a crashing model that leaves it answering."""

from __future__ import annotations

import asyncio
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import httpx
import pytest

from jupyter_llm import errors
from jupyter_llm.client import RemoteClient, connect
from jupyter_llm.registry import ModelSpec
from jupyter_llm.store import Store

from .fixtures.server import start_serve
from .fixtures.waiting import wait_for


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def test_serve_takes_the_next_port_when_the_port_is_taken(tmp_path, tiny_registry):
    with closing(socket.socket()) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        served = start_serve(tmp_path, "--port", str(port), "--ip", "127.0.0.1")
        try:
            assert not served.url.endswith(f":{port}/")
            assert "already in use" in served.log()
            r = httpx.get(served.url + "llm/api/config", headers=_auth(served.token), timeout=30)
            assert r.status_code == 200 and r.json()["version"]
        finally:
            served.stop()
    assert served.process.returncode is not None


def test_serve_refuses_jupyter_kernels_and_contents(llm_serve):
    headers = _auth(llm_serve.token)
    for path in ("api/kernels", "api/contents", "api/sessions"):
        assert httpx.get(llm_serve.url + path, headers=headers, timeout=30).status_code == 403
    assert httpx.get(llm_serve.url + "llm/api/ps", headers=headers, timeout=30).status_code == 200


def test_connect_returns_a_remote_client_when_the_url_is_set(llm_serve, monkeypatch):
    monkeypatch.setenv("JUPYTER_LLM_URL", llm_serve.url)
    monkeypatch.setenv("JUPYTER_LLM_TOKEN", llm_serve.token)
    client = connect(fresh=True)
    assert isinstance(client, RemoteClient) and client.url == llm_serve.url
    monkeypatch.delenv("JUPYTER_LLM_URL")
    assert not isinstance(connect(), RemoteClient)


def test_remote_client_does_everything_the_client_interface_says(llm_serve):
    client = RemoteClient(llm_serve.url, llm_serve.token)
    states = {m["id"]: m["state"] for m in client.models()}
    assert states["tiny-chat"] == "installed"
    assert client.load("tiny", n_ctx=512)["id"] == "tiny-chat"
    assert [p["id"] for p in client.ps()] == ["tiny-chat"]
    streamed = client.chat([{"role": "user", "content": "Hi"}], "tiny-chat", max_tokens=8,
                           temperature=0)
    pieces = list(streamed)
    assert len(pieces) == 8 and streamed.finish_reason == "length"
    assert streamed.usage.completion_tokens == 8 and streamed.model_id == "tiny-chat"
    whole = client.prompt("Hi", "tiny-chat", max_tokens=8, temperature=0, stream=False)
    assert whole.text() == "".join(pieces)
    generated = client.generate("abc", max_tokens=3)
    generated.text()
    assert generated.usage.completion_tokens == 3
    vectors = client.embed(["a", "b"], "tiny-embed")
    assert len(vectors) == 2 and len(vectors[0]) == 64
    assert client.history(2)[0]["prompt"] == "abc"
    assert client.unload("tiny-chat") is True
    client.close()


def test_cli_ps_against_a_server_prints_sizes_and_times_for_people(llm_serve, monkeypatch,
                                                                   capsys):
    import re

    from jupyter_llm.cli import main

    client = RemoteClient(llm_serve.url, llm_serve.token)
    client.load("tiny-chat", n_ctx=512)
    monkeypatch.setenv("JUPYTER_LLM_URL", llm_serve.url)
    monkeypatch.setenv("JUPYTER_LLM_TOKEN", llm_serve.token)
    assert main(["ps"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny-chat  ") and re.search(r"memory: [0-9.]+ [KMG]B", out), out
    assert re.search(r"last_used: (just now|\d+ s ago)", out), out
    assert not re.search(r"\d{9,}", out), out  # no epoch seconds, no raw byte counts
    client.close()


def test_remote_errors_are_the_same_error_classes(llm_serve):
    client = RemoteClient(llm_serve.url, llm_serve.token)
    with pytest.raises(errors.UnknownModel) as info:
        client.chat([{"role": "user", "content": "x"}], "tiny-chta").text()
    assert "tiny-chat" in info.value.details["suggestions"]
    with pytest.raises(errors.InvalidOptions) as info:
        client.chat([{"role": "user", "content": "x"}], "tiny-chat", temperature=9).text()
    assert info.value.details["fields"][0]["field"] == "temperature"
    with pytest.raises(errors.ModelNotReady):
        client.load("tiny-remote-only")
    with pytest.raises(errors.Unauthorized, match="Invalid or missing token"):
        RemoteClient(llm_serve.url, "wrong").ps()
    with pytest.raises(errors.BackendError, match="Cannot reach"):
        RemoteClient("http://127.0.0.1:9/", "x").ps()


def test_remote_cancel_stops_the_generation_on_the_server(llm_serve):
    client = RemoteClient(llm_serve.url, llm_serve.token)
    response = client.chat([{"role": "user", "content": "go"}], "tiny-chat", max_tokens=1900,
                           temperature=0)
    first = next(iter(response))
    assert first
    response.cancel()
    entries = wait_for(lambda: [e for e in client.history(1) if e["error"] == "cancelled"],
                       timeout=30)
    assert entries, client.history(1)
    assert entries[0]["completion_tokens"] < 1000


def test_two_clients_share_one_host(llm_serve):
    clients = [RemoteClient(llm_serve.url, llm_serve.token) for _ in range(2)]

    def run(i: int) -> str:
        return clients[i % 2].prompt("Same prompt", "tiny-chat", max_tokens=10,
                                     temperature=0).text()

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(run, range(4)))
    assert len(set(texts)) == 1 and texts[0]
    assert len(clients[0].ps()) == 1  # one loaded copy for every client


async def test_a_jupyter_server_uses_a_shared_host_through_the_openai_backend(
        llm_serve, tmp_path, monkeypatch, tiny_registry, jp_fetch):
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps({"models": [{
        "id": "shared-tiny", "backend": "openai", "tags": ["CONVERSATIONAL"],
        "api_base": llm_serve.url + "llm/v1", "api_model": "tiny-chat",
        "api_key_env": "SHARED_LLM_TOKEN"}]}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(shared))
    monkeypatch.setenv("SHARED_LLM_TOKEN", llm_serve.token)
    body = {"model": "shared-tiny", "messages": [{"role": "user", "content": "Hi"}],
            "options": {"max_tokens": 8, "temperature": 0}, "stream": False}
    r = await jp_fetch("llm", "api", "chat", method="POST", body=json.dumps(body))
    through_shared = json.loads(r.body)
    direct = await asyncio.to_thread(
        lambda: RemoteClient(llm_serve.url, llm_serve.token).prompt(
            "Hi", "tiny-chat", max_tokens=8, temperature=0).text())
    assert through_shared["model"] == "shared-tiny"
    assert through_shared["message"]["content"] == direct
    faces = await asyncio.to_thread(
        lambda: [e["face"] for e in RemoteClient(llm_serve.url, llm_serve.token).history(5)])
    assert "openai" in faces  # the shared host served the Jupyter server's request


def test_a_model_that_aborts_llama_cpp_fails_cleanly_and_the_server_keeps_answering(
        tmp_path, tiny_registry, broken_gguf, monkeypatch):
    broken = broken_gguf("block_count_1000")
    registry = tmp_path / "broken.json"
    spec = {"id": "broken", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
            "filename": broken.name}
    registry.write_text(json.dumps({"models": [spec]}))
    Store().install_file(ModelSpec.model_validate(spec), broken, verified=True)
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", f"{tiny_registry.path}:{registry}")
    served = start_serve(tmp_path, "--port", "0", "--ip", "127.0.0.1")
    try:
        client = RemoteClient(served.url, served.token)
        with pytest.raises(errors.JupyterLLMError) as info:
            client.prompt("Hi", "broken", max_tokens=4).text()
        assert info.value.type in ("model_load_failed", "worker_crashed")
        answer = client.prompt("Hi", "tiny-chat", max_tokens=4)
        assert answer.text() and answer.usage.completion_tokens == 4
        assert served.process.poll() is None
    finally:
        served.stop()
