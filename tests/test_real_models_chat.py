"""Models nobody here generated: the real SmolLM2-135M-Instruct (ChatML in its file) and the
real Gemma 3 270M base (no chat template), through the backend, the server's /v1 with the
real ``openai`` client and LangChain, and the native API.

The machine is slow and shared: small max_tokens, temperature 0, one model load per test.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from jupyter_llm.backends.llama_cpp import LlamaCppModel

SMOL, GEMMA = "smollm2-real", "gemma3-base-real"


@pytest.fixture
def real_registry(tmp_path, smollm2_gguf, gemma3_gguf, monkeypatch):
    """A registry naming the two real files where they lie (``path``), SmolLM2 at n_ctx 512."""
    entries = [
        {"id": SMOL, "backend": "llama_cpp", "tags": ["CONVERSATIONAL", "INSTRUCT"],
         "path": str(smollm2_gguf), "context_length": 8192,
         "default_options": {"n_ctx": 512}},
        {"id": GEMMA, "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
         "path": str(gemma3_gguf), "context_length": 32768,
         "default_options": {"n_ctx": 512}},
    ]
    path = tmp_path / "real-registry.json"
    path.write_text(json.dumps({"models": entries}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(path))
    monkeypatch.setenv("JUPYTER_LLM_DEFAULT_MODEL", SMOL)
    return path


def test_each_real_file_gets_its_own_format_and_stops(smollm2_gguf, gemma3_gguf):
    smol = LlamaCppModel.from_path(smollm2_gguf, n_ctx=512)
    assert smol.chat_template.source == "gguf" and smol.chat_template.warning is None
    prompt, stops = smol.format_chat([{"role": "user", "content": "Hi"}])
    assert prompt.endswith("<|im_start|>assistant\n") and "<|im_end|>" in stops
    answer = smol.prompt("What is 2 + 2? Answer with a number.", max_tokens=48, temperature=0)
    text = answer.text()
    assert "4" in text and answer.finish_reason == "stop"  # stopped at EOS, not max_tokens
    assert "<|im" not in text and "assistant" not in text  # no leaked special tokens
    assert answer.warnings == []
    smol.close()

    gemma = LlamaCppModel.from_path(gemma3_gguf, n_ctx=512)
    template = gemma.chat_template  # gemma3, Gemma's turn tokens in the vocabulary, no fine-tune
    assert template.source == "none" and template.architecture == "gemma3"
    assert "base model" in template.warning and "--completion" in template.warning
    prompt, stops = gemma.format_chat([{"role": "user", "content": "What is the capital of France?"}])
    assert prompt == "<bos>User: What is the capital of France?\nAssistant:" and stops == ["\nUser:"]
    answer = gemma.prompt("What is the capital of France?", max_tokens=24, temperature=0)
    text = answer.text()
    assert "Paris" in text and "assistant" not in text.lower() and "<" not in text
    assert answer.finish_reason == "stop"
    gemma.close()


async def test_v1_says_when_no_template_applies_and_ps_records_it(real_registry, llm_url,
                                                                   llm_token, jp_fetch):
    def call() -> httpx.Response:
        return httpx.post(llm_url + "llm/v1/chat/completions",
                          headers={"Authorization": f"Bearer {llm_token}"}, timeout=300,
                          json={"model": GEMMA, "max_tokens": 8, "temperature": 0,
                                "messages": [{"role": "user", "content": "Hello"}]})

    r = await asyncio.to_thread(call)
    assert r.status_code == 200, r.text
    assert "probably a base model" in r.headers["X-Jupyter-LLM-Warning"]
    ps = json.loads((await jp_fetch("llm", "api", "ps")).body)["models"]
    (row,) = [m for m in ps if m["id"] == GEMMA]
    assert row["chat_template"]["source"] == "none" and row["n_ctx"] == 512
    # the native chat carries the warning in its summary (what the lab chat shows)
    r = await jp_fetch("llm", "api", "chat", method="POST", request_timeout=300, body=json.dumps({
        "model": GEMMA, "stream": False, "options": {"max_tokens": 4, "temperature": 0},
        "messages": [{"role": "user", "content": "Hello"}]}))
    body = json.loads(r.body)
    assert [w["type"] for w in body["warnings"]] == ["chat_template"]
    assert body["warnings"][0]["details"] == {"action": "completion", "model": GEMMA,
                                             "source": "none", "template": None}
    assert "probably a base model" in r.headers["X-Jupyter-LLM-Warning"]


async def test_too_long_input_is_400_context_length_exceeded_and_runs_once(
        real_registry, llm_url, llm_token, jp_fetch):
    client = openai.OpenAI(base_url=llm_url + "llm/v1", api_key=llm_token, timeout=300)  # retries on
    long_text = "The quick brown fox jumps over the lazy dog. " * 80  # about 800 tokens
    with pytest.raises(openai.BadRequestError) as info:
        await asyncio.to_thread(client.chat.completions.create, model=SMOL, max_tokens=4,
                                messages=[{"role": "user", "content": long_text}])
    assert info.value.code == "context_length_exceeded"
    message = str(info.value)
    assert "512 tokens" in message and "n_ctx" in message and "8192" in message
    history = json.loads((await jp_fetch("llm", "api", "history",
                                         params={"limit": "10"})).body)["entries"]
    assert len(history) == 1  # a 400 is not retried (a 502 was, three times)
    # the native chat leaves out the oldest turns instead, and says so
    turns = []
    for i in range(8):
        turns += [{"role": "user", "content": f"Tell me fact {i}. " + "Some words here. " * 12},
                  {"role": "assistant", "content": f"Fact {i}: " + "More words there. " * 12}]
    turns.append({"role": "user", "content": "Say hello."})
    r = await jp_fetch("llm", "api", "chat", method="POST", request_timeout=300, body=json.dumps({
        "model": SMOL, "stream": False, "messages": turns,
        "options": {"max_tokens": 8, "temperature": 0}}))
    body = json.loads(r.body)
    (warning,) = body["warnings"]
    assert warning["type"] == "context_trimmed" and warning["details"]["dropped_messages"] >= 2
    assert body["usage"]["prompt_tokens"] < 512 and body["message"]["content"]
    client.close()


async def test_structured_output_with_langchain_returns_a_valid_instance(real_registry, llm_url,
                                                                          llm_token):
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        country: str

    llm = ChatOpenAI(model=SMOL, base_url=llm_url + "llm/v1", api_key=llm_token, max_tokens=60,
                     temperature=0, max_retries=0, timeout=300)
    city = await asyncio.to_thread(llm.with_structured_output(City).invoke,
                                   "Name a city in France.")
    assert isinstance(city, City) and city.name


async def test_a_chat_gguf_without_pooling_embeds_with_real_token_counts(real_registry, llm_url,
                                                                          llm_token):
    client = openai.OpenAI(base_url=llm_url + "llm/v1", api_key=llm_token, max_retries=0,
                           timeout=300)
    result = await asyncio.to_thread(client.embeddings.create, model=SMOL,
                                     input=["hello world", "bonjour"])
    assert [len(d.embedding) for d in result.data] == [576, 576]  # SmolLM2's n_embd, mean-pooled
    assert result.usage.prompt_tokens >= 3
    client.close()
