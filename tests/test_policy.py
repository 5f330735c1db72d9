"""The classroom policy: roles, windows, allowlists, named tokens, and bad policy files."""

from __future__ import annotations

import os
import time

import pytest

from jupyter_llm.errors import InvalidOptions, ModelNotAllowed, RateLimited
from jupyter_llm.host.limits import Gate
from jupyter_llm.host.policy import Identity, PolicySource, load_policy, parse_window
from jupyter_llm.host.tokens import TokenStore

CLASS_POLICY = """\
default_role: student
roles:
  student:
    limits: {requests: 3, tokens: 100, window: 1h, concurrent: 1}
    models: [smollm2*, tiny-*]
    tutoring_guard: true
users:
  ada: instructor
  bob: {role: student, limits: {requests: 5}}
groups:
  teachers: instructor
"""


class Clock:
    """A hand-driven clock for window tests."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_windows_are_parsed_from_numbers_and_units():
    assert parse_window(90) == 90
    assert parse_window("30m") == 1800
    assert parse_window("1h") == 3600
    assert parse_window("2 days") == 172800
    with pytest.raises(ValueError, match="not a duration"):
        parse_window("soon")
    with pytest.raises(ValueError):
        parse_window(0)


def test_roles_come_from_users_groups_tokens_and_the_default(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(CLASS_POLICY)
    policy = load_policy(path)
    assert policy.role_name("ada") == "instructor"
    assert policy.role_name("bob") == "student"
    assert policy.role_name("carol") == "student"
    assert policy.role_name("dan", groups=("teachers",)) == "instructor"
    assert policy.role_name("bob", given="admin") == "admin"
    bob = Identity(name="bob", role="student")
    assert policy.limits_for(bob).requests == 5
    assert policy.limits_for(bob).tokens == 100  # the role's, not replaced
    assert policy.limits_for(Identity(name="carol", role="student")).requests == 3


def test_without_a_policy_everyone_is_admin_with_no_limits():
    source = PolicySource()
    gate = Gate(source)
    me = Identity(name="me", role=source.policy.role_name("me"))
    assert me.role == "admin"
    for _ in range(50):
        gate.admit(me, "any-model").finish(tokens=10_000)


def test_request_limit_refuses_with_retry_after_and_resets_when_the_window_moves(tmp_path):
    clock = Clock()
    gate = Gate(PolicySource(inline={"default_role": "student",
                                     "roles": {"student": {"limits": {"requests": 2,
                                                                      "window": "1h"}}}}),
                clock=clock)
    carol = Identity(name="carol", role="student")
    gate.admit(carol).finish()
    clock.now += 600
    gate.admit(carol).finish()
    with pytest.raises(RateLimited) as refused:
        gate.admit(carol)
    err = refused.value
    assert err.status == 429
    assert err.retry_after == 3000  # the first request leaves the window 50 minutes from now
    assert "2 requests per hour" in err.message and "resets at" in err.message
    assert err.details["limit"] == "requests" and err.details["action"] == "retry"
    # another student is not affected by carol's limit
    gate.admit(Identity(name="dave", role="student")).finish()
    clock.now += 3001
    gate.admit(carol).finish()
    assert gate.refusals == {"carol": 1}


def test_token_limit_counts_finished_requests():
    clock = Clock()
    gate = Gate(PolicySource(inline={"default_role": "student", "roles": {
        "student": {"limits": {"tokens": 100, "window": 60}}}}), clock=clock)
    eve = Identity(name="eve", role="student")
    gate.admit(eve).finish(tokens=60)
    gate.admit(eve).finish(tokens=50)
    with pytest.raises(RateLimited, match="100 tokens per minute") as refused:
        gate.admit(eve)
    assert refused.value.details["used"] == 110
    assert gate.usage(eve)["tokens"] == 110


@pytest.mark.parametrize("kind", ["requests", "tokens"])
def test_a_zero_limit_refuses_at_once_with_a_plain_message(kind):
    gate = Gate(PolicySource(inline={"default_role": "guest", "roles": {
        "guest": {"limits": {kind: 0, "window": "1h"}}}}))
    with pytest.raises(RateLimited, match=f"limit is 0 {kind} per hour") as refused:
        gate.admit(Identity(name="gus", role="guest"))
    assert refused.value.retry_after == 3600 and "instructor" in refused.value.message


def test_concurrent_limit_frees_when_a_request_finishes():
    gate = Gate(PolicySource(inline={"default_role": "student", "roles": {
        "student": {"limits": {"concurrent": 1}}}}))
    fay = Identity(name="fay", role="student")
    first = gate.admit(fay)
    with pytest.raises(RateLimited, match="1 at a time"):
        gate.admit(fay)
    first.finish()
    first.finish()  # idempotent
    gate.admit(fay).finish()


def test_allowlist_refuses_other_models_and_names_the_allowed_ones(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(CLASS_POLICY)
    gate = Gate(PolicySource(path))
    student = Identity(name="carol", role="student")
    assert gate.allowed(student, "smollm2-135m")
    assert not gate.allowed(student, "gpt-4o-mini")
    with pytest.raises(ModelNotAllowed, match="smollm2\\*") as refused:
        gate.admit(student, "gpt-4o-mini")
    assert refused.value.status == 403
    assert gate.allowed(Identity(name="ada", role="instructor"), "gpt-4o-mini")


@pytest.mark.parametrize("text, line, words", [
    ("roles:\n  student:\n    limits: {requests: -1}\n", 3, "roles.student.limits.requests"),
    ("default_role: teacher\n", 1, "unknown role 'teacher'"),
    ("users:\n  ada: wizard\n", None, "unknown role 'wizard'"),
    ("roles:\n  student:\n    limits: {window: soon}\n", 3, "not a duration"),
    ("roles:\n  student:\n    colour: blue\n", 3, "colour"),
    ("roles: [\n", 2, "not valid YAML"),
])
def test_a_malformed_policy_file_names_the_line_and_the_problem(tmp_path, text, line, words):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(InvalidOptions) as refused:
        load_policy(path)
    assert words in refused.value.message
    assert str(path) in refused.value.message
    if line is not None:
        assert f"line {line}" in refused.value.message


def test_the_policy_file_is_reloaded_on_change_and_a_bad_edit_keeps_the_last_good(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(CLASS_POLICY)
    source = PolicySource(path, check_every_s=0)
    assert source.policy.roles["student"].limits.requests == 3
    path.write_text(CLASS_POLICY.replace("requests: 3", "requests: 7"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert source.policy.roles["student"].limits.requests == 7
    path.write_text("roles: {student: {limits: {requests: lots}}}\n")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert source.policy.roles["student"].limits.requests == 7
    assert source.error and "line 1" in source.error


def test_named_tokens_are_stored_hashed_and_identify_their_user(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    secret = store.add("ada", role="instructor")
    assert secret.startswith("jllm-") and len(secret) > 40
    assert secret not in (tmp_path / "tokens.json").read_text()
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
    assert store.identify(secret) == ("ada", "instructor")
    assert store.identify(secret + "x") is None
    assert store.identify("") is None
    assert [t["name"] for t in store.list()] == ["ada"]
    with pytest.raises(Exception, match="exists already"):
        store.add("ada")
    with pytest.raises(Exception, match="not a valid token name"):
        store.add("../evil")
    assert store.revoke("ada")
    assert store.identify(secret) is None


def test_the_tutoring_guard_collapses_long_code_blocks_and_keeps_the_full_answer():
    from jupyter_llm.host.tutoring import CodeGuard, guard_messages

    answer = ("Think about a loop.\n```python\nfor i in range(3):\n    print(i)\n```\n"
              "Here is everything:\n```python\n" + "".join(f"x{i} = {i}\n" for i in range(10))
              + "```\nGood luck!")
    guard = CodeGuard(max_lines=6)
    pieces = [answer[i:i + 7] for i in range(0, len(answer), 7)]  # split mid-fence too
    shown = "".join(guard.filter(pieces))
    assert "for i in range(3)" in shown  # a short example stays
    assert "x9 = 9" not in shown and "held back a 10-line code solution" in shown
    assert shown.endswith("Good luck!")
    assert guard.full_text == answer and guard.acted
    assert guard.note() == "tutoring guard collapsed 1 code block(s) (10 lines)"
    msgs = guard_messages([{"role": "user", "content": "solve it"}], "Be a tutor.")
    assert msgs[0] == {"role": "system", "content": "Be a tutor."}
    msgs = guard_messages([{"role": "system", "content": "Course: Python"},
                           {"role": "user", "content": "q"}], "Be a tutor.")
    assert msgs[0]["content"] == "Be a tutor.\n\nCourse: Python" and len(msgs) == 2
