"""The model host on real llama.cpp workers: concurrency, queueing, crashes, memory, cancel."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from jupyter_llm.backends.llama_cpp import LlamaCppModel
from jupyter_llm.config import Settings
from jupyter_llm.errors import (
    Busy,
    InvalidRequest,
    ModelLoadError,
    ModelNotReady,
    UnknownModel,
    WorkerCrashed,
)
from jupyter_llm.host import ModelHost
from jupyter_llm.registry import ModelSpec, Registry
from jupyter_llm.testing.tiny_gguf import write_broken_gguf, write_tiny_gguf

from .fixtures.waiting import wait_for

pytest.importorskip("llama_cpp")

MB = 1024 * 1024
HI = [{"role": "user", "content": "Hello there"}]
LONG = {"temperature": 0, "max_tokens": 100_000}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny chat models (three seeds), an embedder, and two files that abort llama.cpp."""
    d = tmp_path_factory.mktemp("host-gguf")
    return {
        "a": write_tiny_gguf(d / "a.gguf", seed=0, n_embd=64),
        "b": write_tiny_gguf(d / "b.gguf", seed=2, n_embd=64),
        "c": write_tiny_gguf(d / "c.gguf", seed=3, n_embd=64),
        "embed": write_tiny_gguf(d / "embed.gguf", seed=1, n_embd=64, name="tiny-embed"),
        "abort": write_broken_gguf(d / "abort.gguf", "block_count_1000"),
        "nan": write_broken_gguf(d / "nan.gguf", "nan_eps"),
    }


def _spec(model_id: str, path: Path, **fields) -> ModelSpec:
    return ModelSpec(id=model_id, backend="llama_cpp", tags=["CONVERSATIONAL"],
                     path=str(path), **fields)


@pytest.fixture
def make_host(files):
    """Factory of hosts over a registry of the tiny files; every host is closed after the test."""
    hosts: list[ModelHost] = []

    def make(recorder=None, ram_bytes: int | None = None, **settings) -> ModelHost:
        registry = Registry()
        for key in ("a", "b", "c", "abort", "nan"):
            registry.add(_spec(key, files[key], ram_bytes=ram_bytes))
        registry.add(ModelSpec(id="embed", backend="llama_cpp", tags=["EMBEDDING"],
                               path=str(files["embed"])))
        settings.setdefault("history", recorder is not None)
        settings.setdefault("n_ctx", 2048)
        host = ModelHost(Settings(**settings), registry=registry, history=recorder)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()


def _pid(host: ModelHost, model_id: str) -> int:
    return next(p["pid"] for p in host.ps() if p["id"] == model_id)


def _gone(pid: int) -> bool:
    """True once the process has exited (a zombie awaiting its parent counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start_reading(response, pieces: list[str], seen: threading.Event, after: int = 3):
    """Read ``response`` in a thread, setting ``seen`` once ``after`` pieces arrived."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for piece in response:
                pieces.append(piece)
                if len(pieces) >= after:
                    seen.set()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)
        seen.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


# -- concurrency and the queue -------------------------------------------------------------
def test_sixteen_concurrent_streams_match_sequential_outputs(make_host):
    before = _children()
    host = make_host()
    prompts = [[{"role": "user", "content": f"Question {i % 4}"}] for i in range(16)]
    expected = [host.chat(p, "a", temperature=0, max_tokens=40).text() for p in prompts[:4]]
    results: list[list[str] | None] = [None] * 16

    def run(i: int) -> None:
        results[i] = list(host.chat(prompts[i], "a", temperature=0, max_tokens=40))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None and len(r) == 40 for r in results)
    assert ["".join(r) for r in results] == [expected[i % 4] for i in range(16)]
    assert len(host.ps()) == 1 and len(_new_children(before)) == 1


def test_waiting_requests_run_in_arrival_order(make_host):
    host = make_host(parallel=1)  # one slot: the others wait in the queue
    first = host.generate("Once", "a", temperature=0, max_tokens=300)
    waiting = [host.generate(f"Then {i}", "a", temperature=0, max_tokens=200) for i in range(4)]
    assert host.ps()[0]["active"] == 1 and host.ps()[0]["queue_depth"] == 4
    order: list[int] = []
    lock = threading.Lock()

    def read(i: int) -> None:
        for _ in waiting[i]:
            with lock:
                if i not in order:
                    order.append(i)

    threads = [threading.Thread(target=read, args=(i,)) for i in reversed(range(4))]
    for t in threads:  # readers start in reverse order; the queue still serves by arrival
        t.start()
    time.sleep(0.2)
    assert order == [] and len(first.text()) > 0
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3]


def test_full_queue_answers_busy_with_retry_after(make_host):
    host = make_host(queue_size=1, parallel=1)
    running = host.generate("One", "a", **LONG)
    waiting = host.generate("Two", "a", temperature=0, max_tokens=3)
    with pytest.raises(Busy) as info:
        host.generate("Three", "a", temperature=0, max_tokens=3)
    assert info.value.retry_after >= 1
    body = info.value.to_dict()["error"]
    assert body["type"] == "busy" and "queue_size" in body["message"]
    json.dumps(body)
    running.cancel()
    assert len(waiting.text()) > 0
    assert host.generate("Four", "a", temperature=0, max_tokens=3).text()


# -- cancellation ------------------------------------------------------------------------
def test_cancel_from_another_thread_stops_within_a_token_and_frees_the_slot(make_host):
    host = make_host()
    response = host.generate("Tell me everything", "a", **LONG)
    queued = host.generate("Next", "a", temperature=0, max_tokens=8)
    pieces: list[str] = []
    seen = threading.Event()
    thread, errors = _start_reading(response, pieces, seen, after=5)
    assert seen.wait(30)
    worker_stream = response._stream._inner  # the WorkerStream: what came over the pipe
    at_cancel = worker_stream.received
    response.cancel()
    thread.join(30)
    assert not errors and response.finish_reason == "cancelled"
    # The worker's own count: it stopped soon after the cancel, long before the 2048-token
    # context ran out. This tiny model makes ~2000 tokens/s, so a busy CI machine's thread
    # scheduling alone is worth tens of tokens; benchmarks/host_concurrency.py measures the
    # overshoot on a model of realistic speed.
    assert response.usage.completion_tokens <= at_cancel + 64
    assert response.text() == "".join(pieces)
    assert queued.usage is None and len(list(queued)) == 8
    assert host.ps()[0]["active"] == 0


def test_cancel_of_a_queued_request_leaves_the_queue(make_host):
    host = make_host(parallel=1)
    running = host.generate("One", "a", **LONG)
    queued = host.generate("Two", "a", temperature=0, max_tokens=3)
    assert host.ps()[0]["queue_depth"] == 1
    queued.cancel()
    assert host.ps()[0]["queue_depth"] == 0
    assert queued.text() == "" and queued.finish_reason == "cancelled"
    running.cancel()
    assert running.finish_reason == "cancelled"


def test_abandoning_a_stream_frees_the_model(make_host):
    host = make_host()
    response = host.generate("Abandon", "a", **LONG)
    for i, _ in enumerate(response):
        if i == 3:
            break
    del response
    assert len(host.generate("Next", "a", temperature=0, max_tokens=4).text()) > 0


def test_cancel_works_for_in_process_models_too(make_host):
    host = make_host()
    host.use_workers = False
    response = host.generate("In process", "a", **LONG)
    pieces: list[str] = []
    seen = threading.Event()
    thread, errors = _start_reading(response, pieces, seen, after=3)
    assert seen.wait(30)
    response.cancel()
    thread.join(30)
    assert not errors and response.finish_reason == "cancelled" and len(pieces) < 1000
    assert host.ps()[0]["pid"] is None


# -- crashes and load failures ------------------------------------------------------------
def test_a_gguf_that_aborts_llama_cpp_fails_its_load_and_the_host_keeps_serving(make_host):
    host = make_host()
    served = host.generate("Before", "a", temperature=0, max_tokens=4).text()
    with pytest.raises(ModelLoadError) as info:
        host.generate("Crash", "abort", max_tokens=4)
    message = info.value.message
    assert "abort.gguf" in message and "SIGABRT" in message and "re-create or re-download the file" in message
    assert host.generate("Before", "a", temperature=0, max_tokens=4).text() == served
    assert [p["id"] for p in host.ps()] == ["a"]
    with pytest.raises(ModelLoadError):  # and again: nothing was left half-loaded
        host.load("abort")


def test_a_worker_that_aborts_while_decoding_fails_only_that_request(make_host):
    host = make_host()
    with pytest.raises(WorkerCrashed) as info:
        host.generate("Boom", "nan", max_tokens=4).text()
    assert "SIGABRT" in info.value.message and info.value.details["file"].endswith("nan.gguf")
    assert "nan" not in host.loaded_ids()
    assert host.generate("Fine", "a", max_tokens=3).text()


def test_killing_a_worker_mid_stream_fails_the_request_and_the_next_one_reloads(make_host):
    host = make_host()
    response = host.chat(HI, "a", **LONG)
    queued = host.chat(HI, "a", temperature=0, max_tokens=5)
    old_pid = _pid(host, "a")
    stream = iter(response)
    for _ in range(3):
        next(stream)
    os.kill(old_pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed) as info:
        for _ in stream:
            pass
    assert response.error is info.value
    body = json.loads(json.dumps(info.value.to_dict()))["error"]
    assert body["type"] == "worker_crashed" and "SIGKILL" in body["message"]
    assert wait_for(lambda: "a" not in host.loaded_ids())
    assert len(list(queued)) == 5  # the queued request loads the model again
    new_pid = _pid(host, "a")
    assert new_pid != old_pid and psutil.pid_exists(new_pid)


def test_a_bad_file_raises_a_clear_load_error(make_host, tmp_path):
    before = _children()
    host = make_host()
    truncated = write_broken_gguf(tmp_path / "cut.gguf", "truncated")
    host.registry.add(_spec("cut", truncated))
    with pytest.raises(ModelLoadError) as info:
        host.load("cut")
    assert "cut.gguf" in info.value.message
    assert host.ps() == [] and _new_children(before) == []


def test_a_gguf_path_that_does_not_exist_says_so(make_host, tmp_path):
    host = make_host()
    with pytest.raises(UnknownModel) as info:
        host.resolve(str(tmp_path / "missing.gguf"))
    assert "No GGUF file at" in info.value.message and "missing.gguf" in info.value.message
    assert host.resolve(str(write_tiny_gguf(tmp_path / "here.gguf"))).id == "here"


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children()}


def _new_children(before: set[int]) -> list[int]:
    """Child processes started since ``before`` (other tests' leftovers do not count)."""
    return sorted(_children() - before)


# -- loading and memory ------------------------------------------------------------------
def test_concurrent_first_requests_share_one_load(make_host):
    before = _children()
    host = make_host()
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(host.load("a"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len({r["pid"] for r in results}) == 1 and len(results) == 6
    assert len(_new_children(before)) == 1


def test_max_loaded_models_evicts_the_least_recently_used_idle_model(make_host):
    host = make_host(max_loaded_models=2)
    host.generate("x", "a", max_tokens=2).text()
    host.generate("x", "b", max_tokens=2).text()
    pid_b = _pid(host, "b")
    host.generate("x", "a", max_tokens=2).text()  # a is now more recent than b
    host.generate("x", "c", max_tokens=2).text()
    assert host.loaded_ids() == {"a", "c"}
    assert wait_for(lambda: _gone(pid_b))


def test_memory_budget_evicts_idle_models_and_never_busy_ones(make_host):
    host = make_host(ram_bytes=40 * MB, memory_budget_mb=64)
    host.generate("x", "a", max_tokens=2).text()
    host.generate("x", "b", max_tokens=2).text()
    assert host.loaded_ids() == {"b"}
    busy = host.generate("x", "b", **LONG)
    with pytest.raises(Busy) as info:
        host.load("a")
    assert "b" in info.value.message
    busy.cancel()
    host.load("a")
    assert host.loaded_ids() == {"a"}


def test_a_model_larger_than_the_budget_is_refused(make_host):
    host = make_host(ram_bytes=100 * MB, memory_budget_mb=64)
    with pytest.raises(ModelLoadError) as info:
        host.load("a")
    assert "memory_budget_mb" in info.value.message


def test_keep_alive_unloads_idle_models(make_host):
    host = make_host(keep_alive_s=0.3)
    host.generate("x", "a", max_tokens=2).text()
    pid = _pid(host, "a")
    assert host.ps()[0]["expires_at"] is not None
    assert wait_for(lambda: host.ps() == [], timeout=10)
    assert wait_for(lambda: _gone(pid))


def test_per_request_keep_alive_overrides_the_setting(make_host):
    host = make_host(keep_alive_s=300)
    host.generate("x", "a", max_tokens=2, keep_alive=-1).text()
    assert host.ps()[0]["expires_at"] is None  # negative: stay loaded
    host.generate("x", "a", max_tokens=2, keep_alive=0).text()
    assert wait_for(lambda: host.ps() == [], timeout=10)  # zero: unload when idle


def test_load_unload_and_auto_load_off(make_host):
    host = make_host(auto_load=False)
    with pytest.raises(ModelNotReady):
        host.generate("x", "a")
    with pytest.raises(InvalidRequest):
        host.load("a", temperature=1)
    entry = host.load("a", n_ctx=256)
    assert entry["n_ctx"] == 256 and entry["id"] == "a"
    assert host.generate("x", "a", max_tokens=2).text()
    assert host.unload("a") is True and host.unload("a") is False
    assert _gone(entry["pid"])


def test_ps_reports_worker_pid_memory_queue_and_context(make_host):
    host = make_host(n_ctx=512, parallel=1)
    running = host.generate("x", "a", **LONG)
    waiting = host.generate("y", "a", max_tokens=2)
    (entry,) = host.ps()
    assert {"id", "backend", "pid", "memory_bytes", "queue_depth", "active", "last_used",
            "expires_at", "n_ctx"} <= set(entry)
    assert entry["id"] == "a" and entry["backend"] == "llama_cpp" and entry["n_ctx"] == 512
    assert entry["pid"] != os.getpid() and psutil.Process(entry["pid"]).is_running()
    assert 0.5 * psutil.Process(entry["pid"]).memory_info().rss < entry["memory_bytes"]
    assert entry["active"] == 1 and entry["queue_depth"] == 1
    assert entry["expires_at"] is None  # busy models never expire
    assert entry["last_used"] <= time.time()
    json.dumps(host.ps())
    running.cancel()
    waiting.text()


def test_models_from_the_store_run_in_workers(tiny_registry):
    host = ModelHost(Settings.from_env(history=False))
    try:
        assert host.generate("Hi", None, max_tokens=3).text()
        assert host.ps()[0]["id"] == tiny_registry.chat_id
        states = {m["id"]: m["state"] for m in host.models()}
        assert states[tiny_registry.chat_id] == "loaded"
    finally:
        host.close()


# -- embeddings and history ----------------------------------------------------------------
def test_embeddings_through_a_worker_match_in_process_llama_cpp(make_host, files):
    host = make_host()
    vectors = host.embed(["alpha", "beta gamma"], "embed")
    direct = LlamaCppModel.from_path(files["embed"], embedding=True)
    try:
        expected = direct.embed(["alpha", "beta gamma"])
    finally:
        direct.close()
    assert len(vectors) == 2 and len(vectors[0]) == 64
    for got, want in zip(vectors, expected, strict=True):
        assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 1e-4
    assert _pid(host, "embed") != os.getpid()


class _Recorder:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def record(self, **fields) -> None:
        self.records.append(fields)


def test_finished_requests_are_recorded_unless_log_is_false(make_host):
    recorder = _Recorder()
    host = make_host(recorder=recorder)
    text = host.chat(HI, "a", temperature=0, max_tokens=6, user="ada", face="lab").text()
    host.generate("quiet", "a", max_tokens=2, log=False).text()
    host.generate("raw", "a", max_tokens=3).text()
    chat, raw = recorder.records
    assert chat["model"] == "a" and chat["face"] == "lab" and chat["user"] == "ada"
    assert chat["messages"] == HI and chat["response"] == text and chat["error"] is None
    assert chat["completion_tokens"] == 6 and chat["prompt_tokens"] > 3
    assert chat["options"] == {"temperature": 0, "max_tokens": 6}
    assert chat["ttft_s"] > 0 and chat["duration_s"] >= chat["ttft_s"]
    assert raw["prompt"] == "raw" and raw["face"] == "python" and "messages" not in raw


def test_a_failing_history_never_breaks_a_request(make_host):
    class Broken:
        def record(self, **fields):
            raise RuntimeError("disk full")

    host = make_host(recorder=Broken())
    assert host.generate("x", "a", max_tokens=3).text()


def test_crashed_requests_are_recorded_with_their_error(make_host):
    recorder = _Recorder()
    host = make_host(recorder=recorder)
    with pytest.raises(WorkerCrashed):
        host.generate("x", "nan", max_tokens=3).text()
    (entry,) = recorder.records
    assert "SIGABRT" in entry["error"] and entry["response"] == ""


def test_the_real_history_log_gets_each_request(make_host):
    from jupyter_llm.history import History

    host = make_host(history=True)
    host.chat(HI, "a", max_tokens=2).text()
    (entry,) = History().entries()
    assert entry["model"] == "a" and entry["face"] == "python"


def test_a_request_cancelled_before_anyone_reads_it_is_recorded_and_frees_the_queue(make_host):
    recorder = _Recorder()
    host = make_host(recorder=recorder)
    response = host.chat(HI, "a", max_tokens=50)
    response.cancel()  # e.g. the HTTP client hung up before the first token
    assert response.text() == "" and response.cancelled
    (entry,) = recorder.records
    assert entry["error"] == "cancelled" and entry["completion_tokens"] == 0
    assert host.chat(HI, "a", max_tokens=3).text()  # the model's queue is free
    assert all(p["queue_depth"] == 0 for p in host.ps())


def test_a_reader_that_abandons_a_stream_mid_way_frees_the_model_and_is_recorded(make_host):
    recorder = _Recorder()
    host = make_host(recorder=recorder)
    response = host.chat(HI, "a", max_tokens=1500)
    for i, _ in enumerate(response):
        if i == 2:
            break  # e.g. an exception in the reader's loop
    del response
    deadline = time.monotonic() + 10
    while not recorder.records and time.monotonic() < deadline:
        time.sleep(0.01)
    (entry,) = recorder.records
    assert entry["error"] == "cancelled" and entry["completion_tokens"] < 1500
    assert host.chat(HI, "a", max_tokens=3).text()
