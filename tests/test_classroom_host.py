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


@pytest.fixture
def echo_plugin():
    module = types.ModuleType("echo_plugin")

    @hookimpl
    def register_models(register):
        register(Echo("echo"), spec=ModelSpec(id="echo", name="Echo", backend="echo",
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
