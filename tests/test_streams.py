"""``CallbackStream``: the one bridge from callback-driven work to a stream."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from jupyter_llm.errors import Cancelled, ModelNotReady
from jupyter_llm.host.streams import END, CallbackStream

from .fixtures.waiting import wait_for


def test_iterating_yields_what_the_work_emits_in_order():
    def work(emit):
        for i in range(5):
            emit(i)
        return "done"

    stream = CallbackStream(work)
    assert list(stream) == [0, 1, 2, 3, 4] and stream.result == "done"


def test_the_works_error_is_raised_in_the_reader_after_its_items():
    def work(emit):
        emit("first")
        raise ModelNotReady("not installed")

    seen = []
    with pytest.raises(ModelNotReady, match="not installed"):
        for item in CallbackStream(work):
            seen.append(item)
    assert seen == ["first"]


def test_delivering_hands_items_from_the_working_thread_then_the_error_then_end():
    delivered: list[tuple[object, str]] = []
    ended = threading.Event()

    def deliver(item):
        delivered.append((item, threading.current_thread().name))
        if item is END:
            ended.set()

    def work(emit):
        emit("a")
        emit("b")
        raise ValueError("boom")

    CallbackStream(work, name="the-worker").start(deliver)
    assert ended.wait(10)
    items = [item for item, _ in delivered]
    assert items[:2] == ["a", "b"] and isinstance(items[2], ValueError) and items[3] is END
    assert {thread for _, thread in delivered} == {"the-worker"}  # one hand-over, no relay


def test_a_reader_that_stops_early_stops_the_work_at_its_next_step():
    stopped = threading.Event()
    cancelled_calls = []

    def work(emit):  # endless: only the reader's cancel can stop it (a finite loop could end
        try:           # before the reader breaks, on a loaded machine)
            for i in itertools.count():
                emit(i)
                time.sleep(0.001)
        except Cancelled:
            stopped.set()
            raise

    stream = CallbackStream(work, on_cancel=lambda: cancelled_calls.append(1))
    for item in stream:
        if item == 3:
            break
    assert stopped.wait(10) and cancelled_calls == [1]


def test_a_detached_stream_ends_at_once_and_lets_shared_work_finish():
    release, finished = threading.Event(), threading.Event()
    delivered: list[object] = []
    ended = threading.Event()

    def deliver(item):
        delivered.append(item)
        if item is END:
            ended.set()

    def work(emit):
        emit("progress")
        release.wait(10)
        emit("dropped")  # nobody listens any more: dropped, no error
        finished.set()
        return "manifest"

    stream = CallbackStream(work, detach=True)
    stream.start(deliver)
    stream.cancel()
    assert ended.wait(10) and delivered[-1] is END
    release.set()
    assert finished.wait(10) and "dropped" not in delivered
    assert wait_for(lambda: stream.result == "manifest")
