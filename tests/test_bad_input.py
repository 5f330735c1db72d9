"""Bad input gets a 4xx in the one error shape, fast, on every face; never a 5xx (Pantry: 200)."""

from __future__ import annotations

import json
import time

import pytest

from jupyter_llm.config import Settings
from jupyter_llm.errors import InvalidRequest
from jupyter_llm.limits import check_json_depth, check_texts

MSG = [{"role": "user", "content": "hi"}]
DEEP = "[" * 100_000 + "]" * 100_000

POST_ROUTES = [("llm", "api", "chat"), ("llm", "api", "generate"), ("llm", "api", "embed"),
               ("llm", "api", "pull"), ("llm", "api", "load"), ("llm", "api", "unload"),
               ("llm", "api", "collections"), ("llm", "v1", "chat", "completions"),
               ("llm", "v1", "completions"), ("llm", "v1", "embeddings")]


async def _fetch(jp_fetch, *path, body=None, method="POST", **kw):
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    r = await jp_fetch(*path, method=method, body=body, raise_error=False, **kw)
    text = r.body.decode()
    try:
        return r.code, json.loads(text) if text else text
    except ValueError:
        return r.code, text


def _is_4xx(code, body, where):
    assert 400 <= code < 500, (where, code, body)
    assert "Traceback" not in json.dumps(body)


async def test_deeply_nested_json_is_a_400_on_every_route_and_pantry_answers_200(
        tiny_registry, jp_fetch):
    for route in POST_ROUTES:
        code, body = await _fetch(jp_fetch, *route, body=DEEP)
        _is_4xx(code, body, route)
    code, body = await _fetch(jp_fetch, "llm", "call", body=DEEP)
    assert code == 200 and body["status"] == "error" and "nested" in body["message"]
    shallow_but_deep = {"model": "tiny-chat", "messages": MSG, "options": {"x": [[[[[[]]]]]] * 1}}
    for _ in range(80):
        shallow_but_deep = {"a": shallow_but_deep}
    code, body = await _fetch(jp_fetch, "llm", "api", "chat", body=shallow_but_deep)
    _is_4xx(code, body, "deep object")


async def test_wrong_option_types_are_422_not_500(tiny_registry, jp_fetch):
    for options in ({"n_ctx": "x"}, {"n_ctx": -5}, {"n_threads": "many"}, {"n_ctx": [1]}):
        code, body = await _fetch(jp_fetch, "llm", "api", "chat", body={
            "model": "tiny-chat", "messages": MSG, "options": options})
        _is_4xx(code, body, options)
    code, body = await _fetch(jp_fetch, "llm", "api", "load", body={
        "model": "tiny-chat", "options": {"n_ctx": "x"}})
    _is_4xx(code, body, "load")


async def test_a_huge_history_limit_is_a_400(tiny_registry, jp_fetch):
    for limit in ("99999999999999999999", "-1", "abc", "1e9"):
        code, body = await _fetch(jp_fetch, "llm", "api", "history", method="GET",
                                  params={"limit": limit})
        _is_4xx(code, body, limit)


async def test_a_lone_surrogate_in_message_content_is_a_400(tiny_registry, jp_fetch):
    raw = '{"model": "tiny-chat", "messages": [{"role": "user", "content": "a\\udcffb"}]}'
    for route in (("llm", "api", "chat"), ("llm", "v1", "chat", "completions")):
        code, body = await _fetch(jp_fetch, *route, body=raw)
        _is_4xx(code, body, route)
        assert "surrogate" in json.dumps(body)
    raw = '{"model": "tiny-embed", "input": ["ok", "\\ud800"]}'
    code, body = await _fetch(jp_fetch, "llm", "api", "embed", body=raw)
    _is_4xx(code, body, "embed")


async def test_a_body_over_max_body_mb_is_a_413(tiny_registry, jp_fetch, monkeypatch):
    big = json.dumps({"model": "tiny-chat", "messages": [
        {"role": "user", "content": "x" * (17 << 20)}]})
    start = time.monotonic()
    code, body = await _fetch(jp_fetch, "llm", "api", "chat", body=big)
    assert code == 413 and body["error"]["type"] == "too_large", body
    assert body["error"]["details"]["limit_bytes"] == 16 << 20
    code, body = await _fetch(jp_fetch, "llm", "call", body=big)
    assert code == 200 and body["type"] == "too_large"
    assert time.monotonic() - start < 60


async def test_a_long_prompt_is_refused_before_tokenising_with_the_numbers(
        tiny_registry, jp_fetch):
    long = "word " * 210_000  # 1,050,000 characters, under the body limit
    start = time.monotonic()
    for route, body in ((("llm", "api", "chat"), {"model": "tiny-chat", "messages": [
            {"role": "user", "content": long}]}),
            (("llm", "v1", "completions"), {"model": "tiny-chat", "prompt": long}),
            (("llm", "api", "embed"), {"model": "tiny-embed", "input": [long]})):
        code, answer = await _fetch(jp_fetch, *route, body=body)
        assert code == 400, (route, str(answer)[:300])
        assert "1,050,000" in answer["error"]["message"] and "1,000,000" in answer["error"]["message"]
    assert time.monotonic() - start < 10, "refused before any model work"
    code, answer = await _fetch(jp_fetch, "llm", "api", "embed", body={
        "model": "tiny-embed", "input": ["x"] * 2049})
    assert code == 400 and answer["error"]["details"]["limit"] == 2048
    code, answer = await _fetch(jp_fetch, "llm", "api", "chat", body={
        "model": "tiny-chat", "messages": MSG, "options": {"max_tokens": 2}})
    assert code == 200  # and the server still answers


def test_the_limit_checks_name_their_setting():
    settings = Settings(max_prompt_chars=10, max_embed_inputs=2)
    with pytest.raises(InvalidRequest, match="max_prompt_chars"):
        check_texts(["x" * 11], settings)
    with pytest.raises(InvalidRequest, match="max_embed_inputs"):
        check_texts(["a", "b", "c"], settings, embedding=True)
    check_texts(["a", "b"], settings, embedding=True)
    value: list = []
    for _ in range(64):
        value = [value]
    with pytest.raises(InvalidRequest, match="nested"):
        check_json_depth(value)
    check_json_depth(value[0])


def _counting_tokenizer(model):
    """Record the bytes each ``tokenize`` call of ``model``'s llama.cpp context is given."""
    llama = model.load()
    seen: list[int] = []
    real = llama.tokenize

    def tokenize(data, *args, **kwargs):
        seen.append(len(data))
        return real(data, *args, **kwargs)

    llama.tokenize = tokenize
    return seen


def test_a_huge_prompt_is_refused_after_counting_about_n_ctx_tokens_not_all_of_it(tiny_gguf):
    pytest.importorskip("llama_cpp")
    from jupyter_llm.backends.llama_cpp import LlamaCppModel
    from jupyter_llm.errors import ContextLengthExceeded
    from jupyter_llm.models import Request
    from jupyter_llm.options import Options

    model = LlamaCppModel("tiny", path=tiny_gguf, n_ctx=256)
    try:
        seen = _counting_tokenizer(model)
        huge = "word " * 199_000  # 995,000 characters: under max_prompt_chars
        for request in (Request(prompt=huge, options=Options(max_tokens=2)),
                        Request(messages=[{"role": "user", "content": huge}],
                                options=Options(max_tokens=2)),
                        Request(messages=[{"role": "user", "content": huge}],
                                options=Options(max_tokens=2, trim_history=True))):
            seen.clear()
            with pytest.raises(ContextLengthExceeded, match=r"at least \d+ tokens") as info:
                list(model.execute(request))
            assert info.value.details["prompt_tokens"] >= 256
            assert sum(seen) < 5_000, f"tokenised {sum(seen):,} of 995,000 bytes"
        seen.clear()
        fits = "word " * 60  # longer than n_ctx in bytes, shorter in tokens: tokenised whole
        out = list(model.execute(Request(prompt=fits, options=Options(max_tokens=2,
                                                                      temperature=0))))
        assert out[-1].usage.prompt_tokens == len(model.load().tokenize(fits.encode(),
                                                                        add_bos=True))
        assert len(fits) in seen
    finally:
        model.close()


def test_a_cancel_reaches_the_tokeniser_and_the_embedder(tiny_gguf):
    pytest.importorskip("llama_cpp")
    from jupyter_llm.backends.llama_cpp import LlamaCppModel
    from jupyter_llm.errors import Cancelled
    from jupyter_llm.models import Request
    from jupyter_llm.options import Options

    model = LlamaCppModel("tiny", path=tiny_gguf, n_ctx=2048)
    try:
        seen = _counting_tokenizer(model)
        model.should_stop = lambda: True  # the worker's check: the request was cancelled
        with pytest.raises(Cancelled):
            list(model.execute(Request(prompt="word " * 1000, options=Options(max_tokens=2))))
        with pytest.raises(Cancelled):
            model.embed(["word"] * 200)
        assert seen == [], "nothing was tokenised after the cancel"
        model.should_stop = lambda: False
        assert len(model.embed(["word"] * 70)) == 70  # embedded in batches, all of them
    finally:
        model.close()


LONG_EMBEDDING = {"model": "tiny-embed", "input": ["word " * 90] * 192}  # a minute or more


async def _warm_embedder(jp_fetch) -> None:
    code, _ = await _fetch(jp_fetch, "llm", "api", "embed",
                           body={"model": "tiny-embed", "input": ["warm up"]})
    assert code == 200


def _send_long_embedding_and_hang_up(llm_url: str, llm_token: str) -> str:
    """POST ``LONG_EMBEDDING`` and give up after a second: "hung up" (or "answered")."""
    import httpx

    try:
        httpx.post(llm_url + "llm/api/embed", json=LONG_EMBEDDING, timeout=1.0,
                   headers={"Authorization": f"token {llm_token}"})
    except httpx.TimeoutException:
        return "hung up"
    return "answered"


async def _embedding_ended_cancelled(caplog) -> bool:
    """Wait up to 60 s for the server's log line of the embedding's 499; whether it says
    cancelled."""
    import asyncio

    from tests.fixtures.waiting import wait_for

    await asyncio.to_thread(wait_for, lambda: any(
        "499" in r.getMessage() and "/embed" in r.getMessage() for r in caplog.records), 60, 0.1)
    return any("499" in r.getMessage() and "cancelled" in r.getMessage()
               for r in caplog.records)


async def test_a_client_that_hangs_up_stops_its_embedding_in_the_worker(
        tiny_registry, jp_fetch, llm_url, llm_token, caplog):
    import asyncio

    caplog.set_level("DEBUG", logger="jupyter_llm")
    await _warm_embedder(jp_fetch)
    assert await asyncio.to_thread(_send_long_embedding_and_hang_up, llm_url, llm_token) \
        == "hung up"
    assert await _embedding_ended_cancelled(caplog), "the worker stopped with Cancelled"
    code, body = await _fetch(jp_fetch, "llm", "api", "embed",
                              body={"model": "tiny-embed", "input": ["next"]})
    assert code == 200 and len(body["embeddings"]) == 1  # and the next request is served


async def test_a_client_that_hangs_up_before_its_embedding_starts_still_cancels_it(
        tiny_registry, jp_serverapp, jp_fetch, llm_url, llm_token, caplog):
    """The hang-up comes while the request waits for a thread: the embedding must not then
    run its whole minute (the cancel used to be lost when no work had started yet)."""
    import asyncio
    import threading

    caplog.set_level("DEBUG", logger="jupyter_llm")
    await _warm_embedder(jp_fetch)
    pool = jp_serverapp.web_app.settings["jupyter_llm"].executor
    release = threading.Event()
    busy = [pool.submit(release.wait, 120) for _ in range(pool._max_workers)]
    try:
        assert await asyncio.to_thread(_send_long_embedding_and_hang_up, llm_url, llm_token) \
            == "hung up"
        await asyncio.sleep(0.5)  # the server notices the closed connection
    finally:
        release.set()
    for job in busy:
        await asyncio.wrap_future(job)
    started = time.monotonic()
    assert await _embedding_ended_cancelled(caplog), \
        "the embedding ran although the client had gone"
    assert time.monotonic() - started < 20, "the embedding ran on after the hang-up"
