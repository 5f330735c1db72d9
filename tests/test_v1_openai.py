"""The OpenAI-compatible ``llm/v1`` API, driven by the real ``openai`` client and LangChain.

The clients are synchronous and need a real socket, so each call runs in a thread while the
test's event loop serves the requests.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest


@pytest.fixture
def oai(tiny_registry, llm_url, llm_token):
    """An ``openai.OpenAI`` client pointed at the server's ``/v1`` with the Jupyter token."""
    client = openai.OpenAI(base_url=llm_url + "llm/v1", api_key=llm_token, max_retries=0,
                           timeout=60)
    yield client
    client.close()


async def test_models_lists_installed_models(oai):
    models = await asyncio.to_thread(oai.models.list)
    ids = {m.id for m in models.data}
    assert {"tiny-chat", "tiny-embed"} <= ids
    assert "tiny-remote-only" not in ids


async def test_chat_completion_without_streaming(oai):
    result = await asyncio.to_thread(
        oai.chat.completions.create, model="tiny-chat", max_tokens=10, temperature=0,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert result.object == "chat.completion" and result.model == "tiny-chat"
    choice = result.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert result.usage.completion_tokens == 10
    assert result.usage.total_tokens == result.usage.prompt_tokens + 10


async def test_streaming_matches_non_streaming_and_reports_usage(oai):
    kwargs = {"model": "tiny-chat", "max_tokens": 16, "temperature": 0, "seed": 3,
              "messages": [{"role": "user", "content": "Tell me a story"}]}

    def stream() -> tuple[list, str]:
        chunks = list(oai.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kwargs))
        return chunks, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    chunks, streamed = await asyncio.to_thread(stream)
    whole = await asyncio.to_thread(oai.chat.completions.create, **kwargs)
    assert streamed == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    assert len({c.id for c in chunks}) == 1


async def test_stream_ends_with_done_and_has_no_usage_unless_asked(tiny_registry, llm_url,
                                                                    llm_token):
    def raw() -> str:
        r = httpx.post(llm_url + "llm/v1/chat/completions",
                       headers={"Authorization": f"Bearer {llm_token}"},
                       json={"model": "tiny-chat", "stream": True, "max_tokens": 3,
                             "messages": [{"role": "user", "content": "x"}]}, timeout=60)
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.text

    text = await asyncio.to_thread(raw)
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert all("usage" not in p for p in payloads)


async def test_stop_sequences_and_json_mode(oai):
    first = await asyncio.to_thread(
        oai.completions.create, model="tiny-chat", prompt="a b c", max_tokens=30, temperature=0)
    text = first.choices[0].text
    assert first.object == "text_completion" and len(text) > 4
    stop = text[3:5]
    stopped = await asyncio.to_thread(
        oai.completions.create, model="tiny-chat", prompt="a b c", max_tokens=30, temperature=0,
        stop=[stop])
    assert stopped.choices[0].text == text[:text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    result = await asyncio.to_thread(
        oai.chat.completions.create, model="tiny-chat", max_tokens=40, temperature=0,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give me JSON"}])
    content = result.choices[0].message.content
    assert content.lstrip().startswith("{")
    if result.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)


async def test_temperature_and_seed_make_sampling_reproducible(oai):
    def sample(seed: int) -> str:
        return oai.chat.completions.create(
            model="tiny-chat", max_tokens=12, temperature=1.0, top_p=0.9, seed=seed,
            messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content

    a, b, c = [await asyncio.to_thread(sample, s) for s in (1, 1, 2)]
    assert a == b
    assert a != c


async def test_embeddings_in_float_and_base64(oai, llm_url, llm_token):
    result = await asyncio.to_thread(oai.embeddings.create, model="tiny-embed",
                                     input=["hello", "world"])  # the client asks for base64
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 64 for d in result.data)

    def floats() -> dict:
        return httpx.post(llm_url + "llm/v1/embeddings",
                          headers={"Authorization": f"Bearer {llm_token}"},
                          json={"model": "tiny-embed", "input": "hello"}, timeout=60).json()

    body = await asyncio.to_thread(floats)
    assert body["data"][0]["embedding"] == pytest.approx(result.data[0].embedding, abs=1e-6)


async def test_errors_reach_the_openai_client_as_its_exceptions(oai):
    with pytest.raises(openai.NotFoundError) as info:
        await asyncio.to_thread(oai.chat.completions.create, model="nope",
                                messages=[{"role": "user", "content": "x"}])
    assert "Unknown model 'nope'" in str(info.value) and info.value.code == "model_not_found"
    # invalid values are 400 as on OpenAI (not 422), naming the field in `param`
    with pytest.raises(openai.BadRequestError) as info:
        await asyncio.to_thread(oai.chat.completions.create, model="tiny-chat", temperature=9,
                                messages=[{"role": "user", "content": "x"}])
    assert "temperature" in str(info.value) and info.value.param == "temperature"
    with pytest.raises(openai.BadRequestError):
        await asyncio.to_thread(oai.chat.completions.create, model="tiny-chat", n=2,
                                messages=[{"role": "user", "content": "x"}])
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as info:
        await asyncio.to_thread(oai.chat.completions.create, model="tiny-chat", tools=[tool],
                                messages=[{"role": "user", "content": "x"}])
    assert "tool calling is not supported" in str(info.value)
    for kwargs in ({"logprobs": True}, {"logprobs": True, "top_logprobs": 2}):
        with pytest.raises(openai.BadRequestError) as info:  # refused, never ignored
            await asyncio.to_thread(oai.chat.completions.create, model="tiny-chat",
                                    messages=[{"role": "user", "content": "x"}], **kwargs)
        assert "log-probabilities are not supported" in str(info.value)


async def test_a_wrong_api_key_is_401_invalid_api_key(oai, llm_url):
    for key in ("wrong-token", ""):
        bad = openai.OpenAI(base_url=str(oai.base_url), api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            await asyncio.to_thread(bad.models.list)
        assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError) as info:  # a POST too (no _xsrf talk)
            await asyncio.to_thread(bad.chat.completions.create, model="tiny-chat",
                                    messages=[{"role": "user", "content": "x"}])
        assert "Invalid or missing token" in str(info.value)
        assert "_xsrf" not in str(info.value)


async def test_one_model_and_list_prompts(oai):
    model = await asyncio.to_thread(oai.models.retrieve, "tiny-chat")
    assert model.id == "tiny-chat" and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        await asyncio.to_thread(oai.models.retrieve, "no-such-model")
    result = await asyncio.to_thread(oai.completions.create, model="tiny-chat",
                                     prompt=["a b c", "x y"], max_tokens=4, temperature=0)
    assert [c.index for c in result.choices] == [0, 1]
    single = await asyncio.to_thread(oai.completions.create, model="tiny-chat", prompt="x y",
                                     max_tokens=4, temperature=0)
    assert result.choices[1].text == single.choices[0].text
    assert result.usage.completion_tokens == 8
    with pytest.raises(openai.BadRequestError):  # token ids: a clear refusal
        await asyncio.to_thread(oai.completions.create, model="tiny-chat", prompt=[1, 2, 3],
                                max_tokens=2)


async def test_langchain_chat_openai_works_unchanged(tiny_registry, llm_url, llm_token):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="tiny-chat", base_url=llm_url + "llm/v1", api_key=llm_token,
                     max_tokens=8, temperature=0, max_retries=0)
    message = await asyncio.to_thread(llm.invoke, "Hello there")
    assert isinstance(message.content, str) and message.content
    pieces = await asyncio.to_thread(lambda: [c.content for c in llm.stream("Hello there")])
    assert "".join(pieces) == message.content


async def test_sixteen_concurrent_streams_all_complete(oai):
    def one(i: int) -> tuple[str, str]:
        chunks = oai.chat.completions.create(
            model="tiny-chat", max_tokens=20, temperature=0, stream=True,
            messages=[{"role": "user", "content": f"Story number {i % 4}"}])
        text, finish = "", None
        for c in chunks:
            if c.choices:
                text += c.choices[0].delta.content or ""
                finish = c.choices[0].finish_reason or finish
        return text, finish

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(16) as pool:  # 16 requests in flight at once
        results = await asyncio.gather(*(loop.run_in_executor(pool, one, i) for i in range(16)))
    assert all(finish == "length" and text for text, finish in results)
    for i, (text, _) in enumerate(results):  # same prompt, temperature 0: same text
        assert text == results[i % 4][0]
