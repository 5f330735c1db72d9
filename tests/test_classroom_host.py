"""The host applies the classroom policy to every request: the tutoring guard on a streamed
answer (full answer kept for the instructor), logging opt-out, request ids for feedback."""

from __future__ import annotations

import types

import pytest

from jupyter_llm import plugins
from jupyter_llm.config import Settings
from jupyter_llm.errors import RateLimited
from jupyter_llm.hookspecs import hookimpl
from jupyter_llm.host import ModelHost
from jupyter_llm.host.policy import Identity
from jupyter_llm.models import Finish, Model, Usage
from jupyter_llm.registry import ModelSpec

SOLUTION = ("Start with a loop.\n```python\n" + "".join(f"total += {i}\n" for i in range(12))
            + "```\nThat is all.")


class Echo(Model):
    """Answers with the last user message, a few characters at a time."""

    def execute(self, request):
        text = request.messages[-1]["content"]
        for i in range(0, len(text), 5):
            yield text[i:i + 5]
        yield Finish("stop", Usage(3, len(text)))


class Solver(Model):
    """Answers every question with a complete 12-line solution that cites source [1]."""

    def execute(self, request):
        yield "Keep a running total [1].\n```python\n"
        for i in range(12):
            yield f"total += {i}\n"
        yield "```\n"
        yield Finish("stop", Usage(3, 14))


@pytest.fixture
def echo_plugin():
    module = types.ModuleType("echo_plugin")

    @hookimpl
    def register_models(register):
        register(Echo("echo"), spec=ModelSpec(id="echo", name="Echo", backend="echo",
                                              tags=["CONVERSATIONAL"]))
        register(Solver("solver"), spec=ModelSpec(id="solver", name="Solver", backend="solver",
                                                  tags=["CONVERSATIONAL"]))

    module.register_models = register_models
    plugins.pm.register(module, name="echo")
    plugins.reset()
    yield
    plugins.pm.unregister(name="echo")
    plugins.reset()


POLICY = {"default_role": "student",
          "roles": {"student": {"tutoring_guard": True, "log_opt_out": False,
                                "limits": {"requests": 3}}},
          "users": {"ada": "instructor"}, "tutoring": {"max_code_lines": 5}}


@pytest.fixture
def host(echo_plugin, tmp_path):
    host = ModelHost(Settings(policy=POLICY))
    yield host
    host.close()


def test_a_guarded_student_gets_no_full_solution_and_the_history_keeps_it(host):
    response = host.chat([{"role": "user", "content": SOLUTION}], "echo", user="carol")
    shown = response.text()
    assert "total += 11" not in shown and "held back a 12-line code solution" in shown
    assert shown.startswith("Start with a loop.") and shown.endswith("That is all.")
    entry = host.history.get(response.request_id)
    assert entry["user"] == "carol" and entry["response"] == SOLUTION
    assert entry["guard"] == "tutoring guard collapsed 1 code block(s) (12 lines)"
    assert entry["messages"][0]["role"] == "system"  # the tutoring instructions came first
    assert "never write a complete solution" in entry["messages"][0]["content"]


def test_the_instructor_sees_the_full_answer(host):
    response = host.chat([{"role": "user", "content": SOLUTION}], "echo", user="ada")
    assert response.text() == SOLUTION
    assert host.history.get(response.request_id)["guard"] is None


def test_a_student_cannot_opt_out_of_logging_where_the_policy_says_so(host):
    response = host.chat([{"role": "user", "content": "hi"}], "echo", user="carol", log=False)
    response.text()
    assert host.history.get(response.request_id)["user"] == "carol"
    admin = host.chat([{"role": "user", "content": "hi"}], "echo",
                      user=Identity(name="root", role="admin"), log=False)
    admin.text()
    assert admin.request_id is None and not host.history.entries(user="root")


def test_feedback_by_request_id_and_the_limit_counts_every_face(host):
    first = host.chat([{"role": "user", "content": "one"}], "echo", user="dan")
    first.text()
    assert first.summary()["request_id"] == first.request_id
    host.history.feedback(first.request_id, rating=1, comment="clear")
    host.chat([{"role": "user", "content": "two"}], "echo", user="dan").text()
    host.chat([{"role": "user", "content": "three"}], "echo", user="dan").text()
    with pytest.raises(RateLimited):
        host.chat([{"role": "user", "content": "four"}], "echo", user="dan")
    stats = host.history.stats(by="user")["users"]["dan"]
    assert stats["thumbs_up"] == 1 and stats["refusals"] == 1 and stats["requests"] == 4


OPEN_POLICY = {"default_role": "student", "users": {"ada": "instructor"},
               "tutoring": {"max_code_lines": 5}}  # the policy itself guards nobody


@pytest.fixture
def open_host(echo_plugin, tmp_path):
    host = ModelHost(Settings(policy=OPEN_POLICY))
    yield host
    host.close()


def test_a_chat_that_asks_for_the_guard_is_guarded_for_students_only(open_host):
    plain = open_host.chat([{"role": "user", "content": SOLUTION}], "echo", user="bob")
    assert "total += 11" in plain.text()
    guarded = open_host.chat([{"role": "user", "content": SOLUTION}], "echo", user="bob",
                             tutoring=True)
    text = guarded.text()
    assert "total += 11" not in text and "tutoring guard held back a 12-line" in text
    teacher = open_host.chat([{"role": "user", "content": SOLUTION}], "echo", user="ada",
                             tutoring=True)
    assert "total += 11" in teacher.text()


def test_a_collection_set_for_tutoring_guards_students_and_only_an_instructor_sets_it(
        open_host, memo_minilm, tmp_path):
    from jupyter_llm.errors import Forbidden
    from jupyter_llm.host.collections import HostCollections
    from jupyter_llm.retrieval.collection import Collection

    doc = tmp_path / "loops.md"
    doc.write_text("# Summing numbers with a loop\n\nTo add up numbers, keep a running total: "
                   "start it at zero and add each number to it inside a for loop.\n",
                   encoding="utf-8")
    path = tmp_path / "course.sqlite"
    Collection.create(path, embedder=memo_minilm).ingest([doc])
    service = HostCollections(lambda: open_host)
    question = "How do I add up numbers with a loop?"

    def answer(user):
        return service.prepare_ask(str(path), question, model="solver", user=user).run().text

    assert "total += 11" in answer("bob")  # the guard is off: the student sees the code
    with pytest.raises(Forbidden, match="student role cannot change the tutoring guard"):
        service.configure(str(path), tutoring_guard=True, user="bob")
    assert service.configure(str(path), tutoring_guard=True, user="ada")["tutoring_guard"]
    assert Collection.open(path).meta.tutoring_guard  # recorded in the portable file

    student = answer("bob")  # the guarded text, or the cited passage where the check replaced it
    assert "total += 11" not in student and "total += 0" not in student
    assert "total += 11" in answer("ada")  # the instructor sees the full answer
    entry = open_host.history.entries(1, user="bob")[0]
    assert entry["guard"].startswith("tutoring guard collapsed 1 code block")
    assert "total += 11" in entry["response"]  # kept in full for the instructor's review
