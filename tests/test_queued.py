"""Fair scheduling and the "queued" event through the host, the native API, the ``Client``
and ``/v1`` (real llama.cpp workers on tiny GGUF files; the real ``openai`` client)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from jupyter_llm.client import RemoteClient
from jupyter_llm.host import ModelHost
from jupyter_llm.models import Queued
from jupyter_llm.registry import ModelSpec
from jupyter_llm.testing.tiny_gguf import write_tiny_gguf

from .fixtures.models import hosts_on

pytest.importorskip("llama_cpp")

LONG_CTX = 32768


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny chat model with a long context, so one answer can hold the model for seconds."""
    return write_tiny_gguf(tmp_path_factory.mktemp("queued") / "long.gguf", seed=0,
                           context_length=LONG_CTX)


@pytest.fixture
def make_host(chat_file):
    # one slot: a second request waits in the queue
    with hosts_on([ModelSpec(id="a", backend="llama_cpp", tags=["CONVERSATIONAL"],
                             path=str(chat_file))], history=False, n_ctx=2048,
                  parallel=1) as make:
        yield make


def _first_piece_order(host: ModelHost, users: list[str]) -> list[str]:
    """Every user in ``users`` sends a request (in that order) before any is read; all are
    then read at once. Returns the users in the order their first pieces arrived."""
    responses = [host.generate(f"Question {i}", "a", user=u, temperature=0, max_tokens=24)
                 for i, u in enumerate(users)]
    order: list[str] = []
    lock = threading.Lock()

    def read(i: int) -> None:
        pieces = iter(responses[i])
        next(pieces)
        with lock:
            order.append(users[i])
        for _ in pieces:
            pass

    threads = [threading.Thread(target=read, args=(i,)) for i in reversed(range(len(users)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return order


GREEDY = ["greedy"] * 4 + ["ada", "bo"]


def test_through_the_host_a_greedy_user_waits_behind_everyone_elses_first_answer(make_host):
    order = _first_piece_order(make_host(), GREEDY)
    assert order == ["greedy", "ada", "bo", "greedy", "greedy", "greedy"]


def test_fifo_scheduling_keeps_arrival_order_through_the_host(make_host):
    order = _first_piece_order(make_host(scheduling="fifo"), GREEDY)
    assert order == ["greedy"] * 4 + ["ada", "bo"]


def test_a_waiting_stream_tells_its_place_then_its_turn_then_answers(make_host):
    host = make_host()
    running = host.generate("One", "a", user="x", temperature=0, max_tokens=16)
    waiting = host.generate("Two", "a", user="x", temperature=0, max_tokens=16)
    seen: list[object] = []
    places = threading.Event()

    def read() -> None:
        for event in waiting.events():
            seen.append(event)
            places.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert places.wait(10)
    assert seen[0] == Queued(1, seen[0].expected_wait_s) and seen[0].expected_wait_s > 0
    assert waiting.queued == seen[0]
    newcomer = host.generate("Three", "a", user="y", temperature=0, max_tokens=4)
    deadline = time.monotonic() + 10  # y has nothing running: it goes ahead of x's second
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(seen[1], Queued) and seen[1].position == 2
    running.text()
    deadline = time.monotonic() + 10  # the newcomer runs: x's second is next again
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    newcomer.text()
    reader.join(30)
    queued = [e for e in seen if isinstance(e, Queued)]
    assert [q.position for q in queued] == [1, 2, 1, 0]
    assert queued[-1] == Queued(0, 0.0) and seen.index(queued[-1]) == len(queued) - 1
    assert "".join(e for e in seen if isinstance(e, str)) == waiting.text() != ""
    assert waiting.queued is None  # cleared by the first piece


def test_a_request_that_never_waits_gets_no_queued_event(make_host):
    response = make_host().generate("Hi", "a", temperature=0, max_tokens=4)
    events = list(response.events())
    assert events and all(isinstance(e, str) for e in events)


def test_on_queued_gets_every_event_and_plain_iteration_gets_only_text(make_host):
    host = make_host()
    running = host.generate("One", "a", temperature=0, max_tokens=8)
    waiting = host.generate("Two", "a", temperature=0, max_tokens=8)
    calls: list[Queued] = []
    waiting.on_queued = calls.append
    threading.Timer(0.2, running.text).start()
    pieces = list(waiting)
    assert all(isinstance(p, str) for p in pieces) and len(pieces) == 8
    assert [q.position for q in calls] == [1, 0]


def test_cancelling_a_waiting_stream_ends_it_and_frees_its_place(make_host):
    host = make_host()
    running = host.generate("One", "a", temperature=0, max_tokens=8)
    waiting = host.generate("Two", "a", temperature=0, max_tokens=8)
    events = waiting.events()
    assert next(events).position == 1
    threading.Timer(0.1, waiting.cancel).start()
    assert list(events) == [] and waiting.finish_reason == "cancelled"
    assert host.ps()[0]["queue_depth"] == 0
    assert running.text()


def test_queued_describes_itself_for_people():
    assert Queued(3, 12.4).describe() == "Waiting: 3rd in line, about 12 s"
    assert Queued(1, 0.2).describe() == "Waiting: 1st in line, about 1 s"
    assert Queued(12, 40).describe().startswith("Waiting: 12th")
    assert Queued(22, 40).describe().startswith("Waiting: 22nd")
    assert Queued(0, 0).describe() == "Your turn: starting"
    assert Queued(2, 6.0).to_dict() == {"position": 2, "expected_wait_s": 6.0}


# -- through the server -----------------------------------------------------------------------
@pytest.fixture
def long_registry(tiny_registry, chat_file, monkeypatch):
    """The tiny registry plus ``long-chat``, whose answers can run for seconds."""
    from jupyter_llm.store import Store
    from jupyter_llm.testing.tiny_gguf import sha256_file

    data = json.loads(tiny_registry.path.read_text())
    entry = {**data["models"][0], "id": "long-chat", "aliases": [], "url":
             "http://127.0.0.1:9/long.gguf", "sha256": sha256_file(chat_file),
             "size_bytes": chat_file.stat().st_size, "context_length": LONG_CTX}
    data["models"].append(entry)
    tiny_registry.path.write_text(json.dumps(data))
    monkeypatch.setenv("JUPYTER_LLM_PARALLEL", "1")  # one slot: a second request waits
    Store().install_file(ModelSpec.model_validate(entry), chat_file)
    return tiny_registry


class Occupier:
    """A long streamed answer on ``long-chat`` that holds the model until ``stop()``."""

    def __init__(self, url: str, token: str) -> None:
        self.started, self._stop = threading.Event(), threading.Event()
        self._args = (url, token)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        url, token = self._args
        body = {"model": "long-chat", "prompt": "Go", "options": {
            "n_ctx": LONG_CTX, "max_tokens": LONG_CTX - 64, "temperature": 0}}
        with httpx.stream("POST", url + "llm/api/generate", json=body, timeout=120,
                          headers={"Authorization": f"token {token}"}) as r:
            for _ in r.iter_lines():
                self.started.set()
                if self._stop.is_set():
                    return  # closing the connection cancels the answer on the server

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)


def _occupy(url: str, token: str) -> Occupier:
    occupier = Occupier(url, token)
    assert occupier.started.wait(60), "the occupying answer did not start"
    return occupier


async def test_the_native_stream_sends_queued_lines_while_waiting(long_registry, llm_url,
                                                                  llm_token):
    def run() -> list[dict]:
        occupier = _occupy(llm_url, llm_token)
        lines: list[dict] = []
        body = {"model": "long-chat", "prompt": "Next", "options": {"max_tokens": 5,
                                                                    "temperature": 0}}
        with httpx.stream("POST", llm_url + "llm/api/generate", json=body, timeout=60,
                          headers={"Authorization": f"token {llm_token}"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                lines.append(json.loads(line))
                if len(lines) == 1:
                    occupier.stop()
        return lines

    lines = await asyncio.to_thread(run)
    assert lines[0]["queued"]["position"] == 1 and lines[0]["queued"]["expected_wait_s"] > 0
    assert set(lines[0]) == {"queued"}
    assert lines[1] == {"queued": {"position": 0, "expected_wait_s": 0.0}}
    assert [line["delta"] for line in lines if "delta" in line] and lines[-1]["done"] is True


async def test_the_remote_client_passes_queued_events_to_the_response(long_registry, llm_url,
                                                                      llm_token):
    def run() -> tuple[list[object], list[Queued], str]:
        occupier = _occupy(llm_url, llm_token)
        client = RemoteClient(llm_url, llm_token)
        try:
            response = client.generate("Next", "long-chat", temperature=0, max_tokens=5)
            calls: list[Queued] = []
            response.on_queued = calls.append
            events: list[object] = []
            for event in response.events():
                events.append(event)
                if len(events) == 1:
                    occupier.stop()
            return events, calls, response.text()
        finally:
            client.close()

    events, calls, text = await asyncio.to_thread(run)
    assert isinstance(events[0], Queued) and events[0].position == 1
    assert calls == [e for e in events if isinstance(e, Queued)] and calls[-1].position == 0
    assert text and text == "".join(e for e in events if isinstance(e, str))


class _Tee(httpx.HTTPTransport):
    """A transport that keeps a copy of every response body it streams."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = bytearray()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        inner, seen = response.stream, self.seen

        class Stream(httpx.SyncByteStream):
            def __iter__(self):
                for chunk in inner:
                    seen.extend(chunk)
                    yield chunk

            def close(self) -> None:
                inner.close()

        return httpx.Response(response.status_code, headers=response.headers,
                              stream=Stream(), extensions=response.extensions,
                              request=request)


async def test_openai_clients_skip_the_queued_comment_of_a_v1_stream(long_registry, llm_url,
                                                                     llm_token):
    kwargs = {"model": "long-chat", "max_tokens": 6, "temperature": 0, "seed": 1,
              "messages": [{"role": "user", "content": "Tell me"}]}

    def run() -> tuple[str, str, bytes]:
        tee = _Tee()
        oai = openai.OpenAI(base_url=llm_url + "llm/v1", api_key=llm_token, max_retries=0,
                            timeout=60, http_client=httpx.Client(transport=tee))
        try:
            alone = oai.chat.completions.create(**kwargs).choices[0].message.content
            occupier = _occupy(llm_url, llm_token)
            stream = oai.chat.completions.create(stream=True, **kwargs)
            texts: list[str] = []
            for chunk in stream:  # the first chunk arrives while the request waits
                if occupier.thread.is_alive():
                    occupier.stop()
                texts.extend(c.delta.content or "" for c in chunk.choices)
            return alone, "".join(texts), bytes(tee.seen)
        finally:
            oai.close()

    alone, streamed, raw = await asyncio.to_thread(run)
    assert b': queued {"position": 1, ' in raw  # it was really sent, as an SSE comment
    assert streamed == alone and streamed
