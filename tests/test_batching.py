"""Continuous batching of local models: parallel sequences in one llama.cpp context, their
own samplers, stops and cancellation, the prefix cache, crashes, and memory accounting."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from jupyter_llm.backends.llama_batch import StopMatcher
from jupyter_llm.backends.llama_cpp import LlamaCppModel
from jupyter_llm.config import Settings
from jupyter_llm.errors import WorkerCrashed
from jupyter_llm.host import ModelHost
from jupyter_llm.host.memory import MB, default_parallel, estimate_model_bytes, kv_cache_bytes
from jupyter_llm.models import Request
from jupyter_llm.registry import ModelSpec, Registry
from jupyter_llm.testing.tiny_gguf import write_tiny_gguf

from .fixtures.models import hosts_on

pytest.importorskip("llama_cpp")

GREEDY = {"temperature": 0, "max_tokens": 40}
LONG = {"temperature": 0, "max_tokens": 100_000}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("batch-gguf")
    return {"a": write_tiny_gguf(d / "a.gguf", seed=0, n_embd=64),
            "embed": write_tiny_gguf(d / "embed.gguf", seed=1, n_embd=64, name="tiny-embed")}


@pytest.fixture
def make_host(files):
    with hosts_on([ModelSpec(id="a", backend="llama_cpp", tags=["CONVERSATIONAL"],
                             path=str(files["a"])),
                   ModelSpec(id="embed", backend="llama_cpp", tags=["EMBEDDING"],
                             path=str(files["embed"]))], history=False, n_ctx=2048) as make:
        yield make


def _run_all(host: ModelHost, jobs: list[tuple[str, dict]], model: str = "a") -> list[str]:
    """Run every (prompt, options) at once, each in a thread; their texts in order."""
    results: list[str | BaseException | None] = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            results[i] = host.generate(jobs[i][0], model, **jobs[i][1]).text()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


# -- text pieces and stop strings ----------------------------------------------------------
def test_stop_matcher_holds_back_a_possible_stop_and_cuts_at_the_first_one():
    m = StopMatcher(["<end>", "STOP"])
    assert m.feed(b"Hello <") == ["Hello "]
    assert m.feed(b"en") == []
    assert m.feed(b"x") == ["<", "en", "x"]  # released at last, still one piece per token
    assert m.feed(b" ok ST") == [" ok "]
    assert m.feed(b"OP and more") == []
    assert m.stopped and m.flush() == []


def test_stop_matcher_waits_for_whole_utf8_characters():
    m = StopMatcher([])
    snow = "☃".encode()
    assert m.feed(snow[:1]) == [] and m.feed(snow[1:2]) == []
    assert m.feed(snow[2:] + b"!") == ["☃!"]
    assert m.feed(b"ab") == ["ab"] and m.flush() == []


# -- the engine in this process -------------------------------------------------------------
def test_batched_greedy_sequences_match_each_one_alone(files):
    model = LlamaCppModel("a", path=files["a"], n_ctx=512, parallel=4)
    prompts = ["Once upon", "The cat", "In a galaxy far", "Numbers: 1 2 3"]
    opts = model.options(GREEDY)
    alone = [model.run(Request(prompt=p, options=opts)).text() for p in prompts]
    model.close()
    batched = LlamaCppModel("a", path=files["a"], n_ctx=512, parallel=4)
    batched.load()
    texts = {i: "" for i in range(4)}
    done: set[int] = set()
    for i, p in enumerate(prompts):
        assert batched.submit(i, Request(prompt=p, options=opts))
    while batched.active:
        for rid, event in batched.step():
            if isinstance(event, str):
                texts[rid] += event
            else:
                done.add(rid)
                assert event.reason == "length" and event.usage.completion_tokens == 40
    assert done == {0, 1, 2, 3}
    assert [texts[i] for i in range(4)] == alone
    batched.close()


def test_each_sequence_keeps_its_own_stops_max_tokens_and_grammar(files):
    model = LlamaCppModel("a", path=files["a"], n_ctx=512, parallel=4)
    model.load()
    free = model.options({"temperature": 0, "max_tokens": 60})
    model.submit("short", Request(prompt="Short", options=model.options(
        {"temperature": 0, "max_tokens": 3})))
    model.submit("free", Request(prompt="Free", options=free))
    model.submit("yesno", Request(prompt="Answer", options=model.options(
        {"temperature": 0.7, "seed": 3, "max_tokens": 10,
         "grammar": 'root ::= "yes" | "no"'})))
    model.submit("json", Request(prompt="JSON", options=model.options(
        {"temperature": 0, "max_tokens": 200, "json_schema": {
            "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}})))
    texts: dict[str, str] = {k: "" for k in ("short", "free", "yesno", "json")}
    finishes = {}
    while model.active:
        for rid, event in model.step():
            if isinstance(event, str):
                texts[rid] += event
            else:
                finishes[rid] = event
    assert finishes["short"].usage.completion_tokens == 3
    assert finishes["free"].usage.completion_tokens == 60
    assert texts["yesno"] in ("yes", "no") and finishes["yesno"].reason == "stop"
    assert isinstance(json.loads(texts["json"])["a"], int)
    stop_at = texts["free"][10:14]  # a stop string the free run met: a second run ends there
    model.submit("stopped", Request(prompt="Free", options=model.options(
        {"temperature": 0, "max_tokens": 60, "stop": [stop_at]})))
    out = ""
    while model.active:
        for _, event in model.step():
            out += event if isinstance(event, str) else ""
    assert out == texts["free"][:texts["free"].index(stop_at)]
    model.close()


def test_a_request_longer_than_a_slot_is_refused_with_the_slot_size(files):
    from jupyter_llm.errors import ContextLengthExceeded

    model = LlamaCppModel("a", path=files["a"], n_ctx=64, parallel=2)
    model.load()
    with pytest.raises(ContextLengthExceeded) as info:
        model.submit(1, Request(prompt="word " * 200, options=model.options(GREEDY)))
    assert "64" in info.value.message and not model.active
    model.close()


def test_a_long_prompt_read_beside_a_streaming_answer_does_not_stall_it(files):
    from jupyter_llm.backends.llama_batch import PROMPT_PAYBACK, REPRODUCIBLE_CHUNK

    model = LlamaCppModel("a", path=files["a"], n_ctx=512, parallel=2)
    model.load()
    model.submit("streaming", Request(prompt="Once upon", options=model.options(
        {"temperature": 0, "max_tokens": 400})))
    made = {"streaming": 0, "long": 0}

    def step() -> None:
        for rid, event in model.step():
            made[rid] += isinstance(event, str)

    while made["streaming"] < 2:
        step()
    before = made["streaming"]
    long_prompt = "Numbers: " + " ".join(str(i) for i in range(60))
    model.submit("long", Request(prompt=long_prompt, options=model.options(
        {"temperature": 0, "max_tokens": 5})))
    engine = model._engine
    to_read = len(engine._by_rid["long"].todo)
    assert 2 * REPRODUCIBLE_CHUNK < to_read < 300
    reads = 0
    while made["long"] == 0:
        left = len(engine._by_rid["long"].todo)
        step()
        reads += "long" in engine._by_rid and len(engine._by_rid["long"].todo) < left
    # every 64-token chunk of the new prompt was paid back with PROMPT_PAYBACK tokens of the
    # answer already streaming per prompt token (without payback: one token per chunk)
    assert reads >= 2
    made_meanwhile = made["streaming"] - before
    assert made_meanwhile >= PROMPT_PAYBACK * (to_read - REPRODUCIBLE_CHUNK) - 5
    assert made_meanwhile > 3 * reads
    while model.active:
        step()
    assert made["long"] >= 1 and made["streaming"] >= 390
    model.close()


def test_running_sequences_keep_neighbouring_slots_and_a_cached_prefix_is_copied_over(files):
    from jupyter_llm.backends.llama_batch import PREFIX_WORTH

    long_shared = "Read the passages below and answer from them only. " * 6
    model = LlamaCppModel("a", path=files["a"], n_ctx=256, parallel=4)
    expected = model.run(Request(prompt=long_shared + "And b?", options=model.options(
        {"temperature": 0, "max_tokens": 40}))).text()
    model.close()  # a fresh context: nothing cached
    assert len(expected) > 10
    model.load()
    engine = model._engine
    texts: dict[str, str] = {}

    def submit(rid: str, prompt: str, max_tokens: int = 150) -> int:
        model.submit(rid, Request(prompt=prompt, options=model.options(
            {"temperature": 0, "max_tokens": max_tokens})))
        texts[rid] = ""
        return engine._by_rid[rid].slot

    def step() -> list[int]:
        for rid, event in model.step():
            texts[rid] += event if isinstance(event, str) else ""
        batch = engine._batch.batch
        return [batch.seq_id[i][0] for i in range(batch.n_tokens)]

    assert [submit(f"r{i}", f"Question {i}") for i in range(3)] == [0, 1, 2]
    assert submit("long", long_shared + "What is a?", max_tokens=1) == 3
    while "long" in engine._by_rid:  # slot 3 now caches the long prompt
        step()
    model.cancel("r0")
    model.cancel("r1")
    step()
    # new requests take the lowest free slots, not the one caching their prefix ...
    assert submit("short", "Question 9") == 0
    assert submit("again", long_shared + "And b?", max_tokens=40) == 1
    # ... whose KV is copied over: the shared prefix is not read again, the answer is the same
    assert engine._by_rid["again"].reused >= PREFIX_WORTH
    mixed = set()
    while model.active:
        ids = step()
        assert ids == sorted(ids), ids  # the batch lists the sequences in slot order
        mixed |= {frozenset(ids)} if len(set(ids)) > 1 else set()
    assert frozenset({0, 1, 2}) in mixed  # the new prompts were read beside the running answer
    assert texts["again"] == expected
    model.close()


# -- through the host and its worker ---------------------------------------------------------
def test_concurrent_requests_run_together_and_match_sequential_outputs(make_host):
    host = make_host(parallel=4)
    prompts = [f"Question {i}" for i in range(8)]
    expected = [host.generate(p, "a", **GREEDY).text() for p in prompts]
    row = host.ps()[0]
    assert row["parallel"] == 4 and row["kv_cache_bytes"] > 0
    seen_active: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen_active.append(host.ps()[0]["active"])
            stop.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    got = _run_all(host, [(p, {"temperature": 0, "max_tokens": 40}) for p in prompts])
    stop.set()
    watcher.join()
    assert got == expected
    assert max(seen_active) > 1  # they really ran at the same time


def test_cancelling_one_request_in_a_batch_leaves_the_others_untouched(make_host):
    host = make_host(parallel=3)
    alone = [host.generate(p, "a", temperature=0, max_tokens=300).text() for p in ("X", "Y")]
    victim = host.generate("Tell me everything", "a", **LONG)
    others = [host.generate(p, "a", temperature=0, max_tokens=300) for p in ("X", "Y")]
    pieces = []
    for piece in victim:
        pieces.append(piece)
        if len(pieces) == 5:
            victim.cancel()
    assert victim.finish_reason == "cancelled" and len(pieces) < 300
    assert [r.text() for r in others] == alone
    assert host.ps()[0]["active"] == 0


def test_a_worker_crash_fails_every_request_in_flight_and_the_next_one_is_served(make_host):
    host = make_host(parallel=4)
    running = [iter(host.generate(f"Run {i}", "a", **LONG)) for i in range(3)]
    for stream in running:
        next(stream)
    assert host.ps()[0]["active"] == 3
    pid = host.ps()[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    for stream in running:
        with pytest.raises(WorkerCrashed) as info:
            for _ in stream:
                pass
        assert "SIGKILL" in info.value.message
    assert host.generate("Again", "a", temperature=0, max_tokens=5).text()
    assert host.ps()[0]["pid"] != pid


def test_a_shared_prefix_is_read_once_and_counted_in_ps(make_host):
    host = make_host(parallel=2)
    system = "You are a careful tutor. Answer from the passages only. " * 8
    first = [{"role": "system", "content": system}, {"role": "user", "content": "What is a?"}]
    second = [{"role": "system", "content": system}, {"role": "user", "content": "And b?"}]
    fresh = host.chat(second, "a", temperature=0, max_tokens=30).text()
    host.unload("a")
    host.chat(first, "a", temperature=0, max_tokens=30).text()
    cache = host.ps()[0]["prefix_cache"]
    assert cache["reused_tokens"] == 0 and cache["prompt_tokens"] > 100
    assert host.chat(second, "a", temperature=0, max_tokens=30).text() == fresh
    cache = host.ps()[0]["prefix_cache"]
    assert cache["reused_tokens"] > 100 and 0.4 < cache["hit_rate"] < 0.5


def test_the_prefix_cache_shows_in_usage_and_in_the_history_stats(make_host):
    host = make_host(parallel=2, history=True)
    system = "You are a careful tutor. Answer from the passages only. " * 8
    first = host.chat([{"role": "system", "content": system},
                       {"role": "user", "content": "What is a?"}], "a", **GREEDY)
    first.text()
    assert first.usage.cached_tokens == 0 and "prompt_tokens_details" not in first.usage.to_dict()
    second = host.chat([{"role": "system", "content": system},
                        {"role": "user", "content": "And b?"}], "a", **GREEDY)
    second.text()
    cached = second.usage.cached_tokens
    assert 100 < cached < second.usage.prompt_tokens
    assert second.summary()["usage"]["prompt_tokens_details"] == {"cached_tokens": cached}
    stats = host.history.stats()["models"]["a"]
    assert stats["cached_tokens"] == cached
    prompt = stats["prompt_tokens"]
    assert stats["prefix_cache_hit_rate"] == round(cached / prompt, 4)


def test_parallel_one_keeps_the_single_sequence_path(make_host):
    host = make_host(parallel=1)
    assert host.generate("Hi", "a", **GREEDY).text()
    row = host.ps()[0]
    assert row["parallel"] == 1 and row["prefix_cache"] is None


def test_parallel_is_a_load_option_and_reloads_with_new_slots(make_host):
    host = make_host(parallel=2)
    assert host.load("a")["parallel"] == 2
    pid = host.ps()[0]["pid"]
    row = host.load("a", parallel=5)
    assert row["parallel"] == 5 and row["pid"] != pid
    assert host._queue(host.resolve("a")).concurrency == 5


def test_concurrent_embedding_requests_match_one_by_one(make_host):
    host = make_host()
    groups = [[f"text {i}", f"other {i}"] for i in range(6)]
    expected = [host.embed(g, "embed") for g in groups]
    results: list = [None] * len(groups)

    def run(i: int) -> None:
        results[i] = host.embed(groups[i], "embed")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for got, want in zip(results, expected, strict=True):
        assert got is not None
        for a, b in zip(got, want, strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4


# -- memory -------------------------------------------------------------------------------
def test_memory_counts_a_kv_cache_per_slot_and_the_default_fits_the_budget(files):
    one = kv_cache_bytes(files["a"], n_ctx=1024)
    assert one > 0
    assert estimate_model_bytes(files["a"], n_ctx=1024, parallel=4) - \
        estimate_model_bytes(files["a"], n_ctx=1024) == 3 * one
    assert default_parallel(files["a"], n_ctx=1024, budget=4096 * MB) == 8
    tight = estimate_model_bytes(files["a"], n_ctx=1024, parallel=2)
    assert default_parallel(files["a"], n_ctx=1024, budget=tight) <= 2
    assert default_parallel(files["a"], n_ctx=1024, budget=1) == 1


# -- a real model ---------------------------------------------------------------------------
def test_real_smollm2_batched_answers_match_each_answer_alone(smollm2_gguf, tmp_path):
    registry = Registry()
    registry.add(ModelSpec(id="smol", backend="llama_cpp", tags=["CONVERSATIONAL"],
                           path=str(smollm2_gguf)))
    host = ModelHost(Settings(history=False, n_ctx=1024, parallel=4), registry=registry)
    try:
        questions = ["What is a shell?", "Name a prime number.", "What does git commit do?",
                     "Say hello in French."]
        opts = {"temperature": 0, "seed": 1, "max_tokens": 48}
        alone = [host.chat([{"role": "user", "content": q}], "smol", **opts).text()
                 for q in questions]
        results: list = [None] * 4

        def run(i: int) -> None:
            results[i] = host.chat([{"role": "user", "content": questions[i]}], "smol",
                                   **opts).text()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results == alone
    finally:
        host.close()
