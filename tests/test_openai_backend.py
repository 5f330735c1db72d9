"""The ``openai`` backend against a real OpenAI-compatible server: our own ``jupyter llm serve``
(llama.cpp underneath), reached through the official ``openai`` client."""

import pytest

from jupyter_llm.backends.openai import OpenAIModel
from jupyter_llm.errors import BackendError, InvalidOptions, MissingAPIKey
from jupyter_llm.registry import ModelSpec


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_gguf, tiny_embed_gguf):
    """One `jupyter llm serve` over the tiny registry for this module's tests."""
    import json
    import os

    from jupyter_llm.registry import ModelSpec
    from jupyter_llm.store import Store
    from tests.fixtures.models import tiny_registry_entries
    from tests.fixtures.server import _free_port, start_serve

    home = tmp_path_factory.mktemp("served_home")
    registry = home / "registry.json"
    entries = tiny_registry_entries(tiny_gguf, tiny_embed_gguf)
    registry.write_text(json.dumps({"models": entries}))
    env = {"JUPYTER_LLM_HOME": str(home), "JUPYTER_LLM_REGISTRY_PATH": str(registry)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for entry, src in zip(entries[:2], (tiny_gguf, tiny_embed_gguf)):
            Store().install_file(ModelSpec.model_validate(entry), src)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    server = start_serve(home, "--port", str(_free_port()), "--ip", "127.0.0.1", env=env)
    yield server
    server.stop()


@pytest.fixture
def remote(served, monkeypatch):
    monkeypatch.setenv("TEST_SERVE_TOKEN", served.token)
    spec = ModelSpec(id="remote-tiny", backend="openai", api_base=served.url + "llm/v1",
                     api_model="tiny-chat", api_key_env="TEST_SERVE_TOKEN",
                     tags=["CONVERSATIONAL"])
    model = OpenAIModel(spec.id, spec)
    yield model
    model.close()


def test_remote_chat_streams_the_same_text_as_local_llama_cpp(remote, tiny_gguf):
    from jupyter_llm.backends.llama_cpp import LlamaCppModel

    response = remote.prompt("Hello", temperature=0, max_tokens=10)
    chunks = list(response)
    assert len(chunks) >= 2  # really streamed
    local = LlamaCppModel.from_path(tiny_gguf).prompt("Hello", temperature=0, max_tokens=10).text()
    assert response.text() == local
    assert response.usage.completion_tokens == 10 and response.usage.prompt_tokens > 0
    assert response.finish_reason == "length"


def test_remote_completion_and_stop(remote):
    full = remote.complete("abc", temperature=0, max_tokens=16).text()
    cut = remote.complete("abc", temperature=0, max_tokens=16, stop=[full[4:7]]).text()
    assert full.startswith(cut) and len(cut) < len(full)


def test_remote_embeddings(served, monkeypatch):
    monkeypatch.setenv("TEST_SERVE_TOKEN", served.token)
    spec = ModelSpec(id="remote-embed", backend="openai", api_base=served.url + "llm/v1",
                     api_model="tiny-embed", api_key_env="TEST_SERVE_TOKEN", tags=["EMBEDDING"])
    vectors = OpenAIModel(spec.id, spec).embed(["a cat", "a dog"])
    assert len(vectors) == 2 and len(vectors[0]) == 64


def test_server_errors_come_back_as_clear_backend_errors(served, monkeypatch):
    monkeypatch.setenv("TEST_SERVE_TOKEN", served.token)
    spec = ModelSpec(id="r", backend="openai", api_base=served.url + "llm/v1",
                     api_model="no-such-model", api_key_env="TEST_SERVE_TOKEN")
    with pytest.raises(BackendError, match="404.*no-such-model"):
        OpenAIModel(spec.id, spec).prompt("hi").text()


def test_wrong_key_names_the_variable(served, monkeypatch):
    monkeypatch.setenv("TEST_SERVE_TOKEN", "wrong-token")
    spec = ModelSpec(id="r", backend="openai", api_base=served.url + "llm/v1",
                     api_model="tiny-chat", api_key_env="TEST_SERVE_TOKEN")
    with pytest.raises(BackendError) as info:
        OpenAIModel(spec.id, spec).prompt("hi").text()
    assert "TEST_SERVE_TOKEN" in info.value.message or "40" in info.value.message
    assert "wrong-token" not in info.value.message  # never echo a secret


def test_unreachable_server_says_so():
    model = OpenAIModel("x", api_base="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(BackendError, match="Cannot reach the API"):
        model.prompt("hi").text()


def test_openai_api_without_a_key_says_which_variable_to_set(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(MissingAPIKey, match="set the environment variable OPENAI_API_KEY") as info:
        OpenAIModel("gpt-4o-mini").prompt("hi").text()
    assert info.value.status == 400  # a client error: OpenAI clients do not retry it
    assert info.value.details == {"action": "set_key", "env": "OPENAI_API_KEY",
                                  "model": "gpt-4o-mini"}


def test_local_only_options_are_refused_for_remote_models():
    with pytest.raises(InvalidOptions, match="n_ctx"):
        OpenAIModel("x", api_base="http://127.0.0.1:9/v1", api_key="k").prompt("hi", n_ctx=512).text()
