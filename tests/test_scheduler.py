"""``ModelQueue``: fair (round-robin by user) and FIFO order, the bounds, places in line."""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_llm.errors import Busy, RateLimited
from jupyter_llm.host.scheduler import ModelQueue, Ticket


def _serve(queue: ModelQueue, arrivals: list[str], hold_s: float = 0.01) -> list[str]:
    """Every user in ``arrivals`` enters (in that order) while the first request runs; each
    waits in a thread of its own, holds its slot ``hold_s`` and releases. Returns the users in
    the order their requests were granted after the first."""
    tickets = [queue.enter(user) for user in arrivals]
    order: list[str] = []
    lock = threading.Lock()

    def run(ticket: Ticket) -> None:
        assert ticket.wait(timeout=10)
        with lock:
            order.append(ticket.user)
        time.sleep(hold_s)
        ticket.release()

    threads = [threading.Thread(target=run, args=(t,)) for t in reversed(tickets[1:])]
    for t in threads:  # threads start in reverse: the queue alone decides the order
        t.start()
    time.sleep(0.05)
    assert order == [] and tickets[0].active
    tickets[0].release()
    for t in threads:
        t.join(10)
    return order


GREEDY = ["greedy"] * 10 + ["ada", "bo", "cy", "di", "ed"]


def test_fair_scheduling_serves_every_other_user_before_the_greedy_users_second_request():
    order = _serve(ModelQueue("m", size=32), GREEDY)
    assert order == ["ada", "bo", "cy", "di", "ed"] + ["greedy"] * 9


def test_fifo_scheduling_serves_by_arrival_whoever_sent_it():
    order = _serve(ModelQueue("m", size=32, scheduling="fifo"), GREEDY)
    assert order == ["greedy"] * 9 + ["ada", "bo", "cy", "di", "ed"]


def test_users_with_several_waiting_requests_take_turns_in_arrival_order_each():
    order = _serve(ModelQueue("m", size=32), ["x", "x", "x", "y", "y", "z"])
    assert order == ["y", "z", "x", "y", "x"]


def test_with_several_slots_the_user_with_fewest_running_goes_next():
    queue = ModelQueue("m", size=32, concurrency=2)
    greedy = [queue.enter("greedy") for _ in range(4)]
    assert [t.active for t in greedy] == [True, True, False, False]
    newcomer = queue.enter("ada")
    assert newcomer.place()[0] == 1 and greedy[2].place()[0] == 2
    greedy[0].release()
    assert newcomer.active and not greedy[2].active


def test_places_follow_the_order_to_come_and_expected_waits_grow_with_them():
    queue = ModelQueue("m", size=32)
    running = queue.enter("greedy")
    greedy = [queue.enter("greedy") for _ in range(3)]
    assert [t.place()[0] for t in greedy] == [1, 2, 3]
    others = [queue.enter(u) for u in ("ada", "bo")]
    assert [t.place()[0] for t in others] == [1, 2]
    assert [t.place()[0] for t in greedy] == [3, 4, 5]
    waits = [t.place()[1] for t in others + greedy]
    assert waits == sorted(waits) and waits[0] > 0
    assert running.place() is None  # running: no place in line
    others[0].release()  # a waiting request that leaves moves everyone behind it up
    assert others[1].place()[0] == 1 and greedy[0].place()[0] == 2


def test_wait_change_wakes_when_the_place_in_line_changes():
    queue = ModelQueue("m", size=8)
    running = queue.enter("a")
    ahead, mine = queue.enter("b"), queue.enter("c")
    first = mine.place()
    assert first is not None and first[0] == 2
    threading.Timer(0.1, ahead.release).start()
    started = time.monotonic()
    assert mine.wait_change(first, timeout=5)[0] == 1
    assert time.monotonic() - started < 2
    assert mine.wait_change((1, mine.place()[1]), timeout=0.05)[0] == 1  # unchanged: times out
    threading.Timer(0.1, running.release).start()
    assert mine.wait_change(mine.place(), timeout=5) is None and mine.active


def test_a_full_queue_answers_busy_whoever_asks():
    queue = ModelQueue("m", size=2)
    queue.enter("a"), queue.enter("a"), queue.enter("b")
    with pytest.raises(Busy) as info:
        queue.enter("c")
    assert info.value.retry_after >= 1 and "queue_size=2" in info.value.message
    assert queue.depth == 2


def test_a_per_user_cap_refuses_only_that_users_extra_requests():
    queue = ModelQueue("m", size=16, per_user=2)
    running = queue.enter("greedy")  # running requests do not count against the cap
    queue.enter("greedy"), queue.enter("greedy")
    with pytest.raises(RateLimited) as info:
        queue.enter("greedy")
    error = info.value.to_dict()["error"]
    assert error["type"] == "rate_limited" and "queue_per_user=2" in error["message"]
    assert info.value.retry_after >= 1
    assert queue.enter("ada").place()[0] == 1  # others still get in, ahead of greedy's
    running.release()
    assert queue.depth == 2


def test_an_unknown_scheduling_is_refused():
    with pytest.raises(ValueError, match="fair"):
        ModelQueue("m", size=1, scheduling="lottery")


def test_the_queue_is_idle_again_once_everyone_left():
    queue = ModelQueue("m", size=4)
    a, b = queue.enter("x"), queue.enter("y")
    b.release()
    a.release()
    a.release()  # idempotent
    assert queue.idle and queue.depth == 0 and queue.active == 0 and queue.waiting_users == 0


def test_with_one_reader_a_slot_is_granted_only_once_the_last_request_read_its_prompt():
    queue = ModelQueue("m", size=32, concurrency=8, readers=1)
    greedy = [queue.enter("greedy") for _ in range(10)]
    assert [t.active for t in greedy] == [True] + [False] * 9  # eight slots, one reader
    others = [queue.enter(name) for name in ("ada", "bo", "cy")]
    assert [t.place()[0] for t in others] == [1, 2, 3]
    greedy[0].first_output()  # its first token: the next one may read
    assert others[0].active and not greedy[1].active and not others[1].active
    others[0].release()  # ended without output (an error): its reading slot is free too
    assert others[1].active
    others[1].first_output()
    others[1].first_output()  # a second call changes nothing
    assert others[2].active and not greedy[1].active
    others[2].first_output()
    assert greedy[1].active  # everyone else reads before the greedy user's second request
    assert queue.active == 4


def test_short_prompts_that_fit_the_reading_budget_start_together_long_ones_one_by_one():
    queue = ModelQueue("m", size=32, concurrency=8, readers=512)
    chats = [queue.enter(name, weight=40) for name in ("ada", "bo", "cy", "di")]
    assert all(t.active for t in chats)  # 160 prompt tokens: read in one chunk together
    grounded = [queue.enter(name, weight=900) for name in ("ed", "flo")]
    assert not any(t.active for t in grounded)  # 160 + 900 > 512: after those being read
    for t in chats:
        t.first_output()
    assert grounded[0].active and not grounded[1].active  # alone it may exceed the budget
    late = queue.enter("gus", weight=30)
    assert not late.active and late.place()[0] == 2  # the fair order holds: flo reads first
    grounded[0].first_output()
    assert grounded[1].active and not late.active
    grounded[1].release()  # ended before its first output: its reading weight is freed
    assert late.active and queue.active == 6


def test_without_readers_every_free_slot_is_granted_at_once():
    queue = ModelQueue("m", size=32, concurrency=3)
    tickets = [queue.enter("x") for _ in range(4)]
    assert [t.active for t in tickets] == [True, True, True, False]
