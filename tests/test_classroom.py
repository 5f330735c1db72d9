"""A class on one ``jupyter llm serve``: named tokens, roles, limits (429 + Retry-After),
allowlists, history visibility, export, feedback and a policy reloaded without a restart."""

from __future__ import annotations

import csv
import io
import json
import os
import time

import httpx
import pytest

from jupyter_llm.errors import JupyterLLMError
from jupyter_llm.host.tokens import TokenStore

from .fixtures.server import _free_port, start_serve

POLICY = """\
default_role: student
roles:
  student:
    limits: {requests: 2, window: 1h}
    models: [tiny-chat]
users:
  ada: instructor
"""


@pytest.fixture
def classroom(tmp_path, tiny_registry):
    """A served host with a class policy and tokens for two students and an instructor."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    store = TokenStore()
    tokens = {name: store.add(name, role) for name, role in
              (("alice", "student"), ("bob", "student"), ("ada", "instructor"))}
    served = start_serve(tmp_path, "--port", str(_free_port()), "--ip", "127.0.0.1",
                         env={"JUPYTER_LLM_POLICY_FILE": str(policy)})
    yield served, tokens, policy
    served.stop()


def _client(served, token: str) -> httpx.Client:
    return httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=60)


def _chat(client: httpx.Client, text: str = "hi", model: str = "tiny-chat") -> httpx.Response:
    return client.post("llm/api/chat", json={
        "model": model, "messages": [{"role": "user", "content": text}], "stream": False,
        "options": {"max_tokens": 4, "temperature": 0}})


def test_each_student_is_recorded_by_name_and_limited_alone(classroom):
    served, tokens, _ = classroom
    alice, bob, ada = (_client(served, tokens[n]) for n in ("alice", "bob", "ada"))
    assert _chat(alice, "one").status_code == 200
    assert _chat(alice, "two").status_code == 200
    refused = _chat(alice, "three")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 3000
    error = refused.json()["error"]
    assert error["type"] == "rate_limited"
    assert "2 requests per hour" in error["message"] and "resets at" in error["message"]
    assert error["details"]["action"] == "retry"
    assert _chat(bob, "bob's turn").status_code == 200  # alice's limit is hers alone
    assert ada.get("llm/api/me").json()["role"] == "instructor"

    mine = alice.get("llm/api/history").json()["entries"]
    assert {e["user"] for e in mine} == {"alice"}
    assert any(e["error"] and e["error"].startswith("refused:") for e in mine)
    assert alice.get("llm/api/history", params={"user": "bob"}).status_code == 403
    everyone = ada.get("llm/api/history").json()["entries"]
    assert {e["user"] for e in everyone} == {"alice", "bob"}
    stats = ada.get("llm/api/history/stats", params={"by": "user"}).json()
    assert stats["users"]["alice"]["refusals"] == 1
    assert stats["users"]["alice"]["requests"] == 3 and stats["users"]["bob"]["requests"] == 1

    log = served.log_path.read_text(errors="replace")
    for secret in tokens.values():
        assert secret not in log


def test_the_allowlist_hides_nothing_silently_and_refuses_other_models(classroom):
    served, tokens, _ = classroom
    alice = _client(served, tokens["alice"])
    models = {m["id"]: m for m in alice.get("llm/api/models").json()["models"]}
    assert models["tiny-chat"]["allowed"] is True
    assert models["tiny-embed"]["allowed"] is False
    refused = alice.post("llm/api/embed", json={"model": "tiny-embed", "input": "x"})
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "model_not_allowed"
    assert "tiny-chat" in refused.json()["error"]["message"]
    v1 = alice.get("llm/v1/models").json()["data"]
    assert "tiny-embed" not in {m["id"] for m in v1}
    ada = _client(served, tokens["ada"])
    assert ada.post("llm/api/embed", json={"model": "tiny-embed", "input": "x"}).status_code == 200


def test_feedback_is_stored_and_exported_and_only_instructors_export(classroom):
    served, tokens, _ = classroom
    alice, bob, ada = (_client(served, tokens[n]) for n in ("alice", "bob", "ada"))
    assert _chat(alice, "explain loops").status_code == 200
    assert _chat(bob, "explain lists").status_code == 200
    alice_entry = alice.get("llm/api/history").json()["entries"][0]["id"]
    bob_entry = bob.get("llm/api/history").json()["entries"][0]["id"]
    r = alice.post(f"llm/api/history/{alice_entry}/feedback",
                   json={"rating": -1, "score": 3, "comment": "too vague"})
    assert r.status_code == 200 and r.json()["rating"] == -1
    assert alice.post(f"llm/api/history/{bob_entry}/feedback",
                      json={"rating": 1}).status_code == 404
    assert alice.post(f"llm/api/history/{alice_entry}/feedback",
                      json={"rating": 5}).status_code == 400
    assert alice.get("llm/api/history/export").status_code == 403

    exported = ada.get("llm/api/history/export", params={"format": "csv"})
    assert exported.status_code == 200
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["user"] for r in rows} == {"alice", "bob"}
    assert [r["comment"] for r in rows if r["user"] == "alice"] == ["too vague"]
    lines = ada.get("llm/api/history/export", params={"user": "bob"}).text.splitlines()
    assert [json.loads(line)["user"] for line in lines] == ["bob"]
    stats = ada.get("llm/api/history/stats", params={"by": "user"}).json()["users"]
    assert stats["alice"]["thumbs_down"] == 1 and stats["alice"]["mean_score"] == 3


def test_tokens_are_managed_by_admins_only_and_work_at_once(classroom):
    served, tokens, _ = classroom
    admin = _client(served, served.token)
    assert admin.get("llm/api/me").json()["role"] == "admin"
    created = admin.post("llm/api/tokens", json={"name": "carol", "role": "student"})
    assert created.status_code == 201, created.text
    carol = _client(served, created.json()["token"])
    assert carol.get("llm/api/me").json() | {} and carol.get("llm/api/me").json()["name"] == "carol"
    names = [t["name"] for t in admin.get("llm/api/tokens").json()["tokens"]]
    assert names == ["ada", "alice", "bob", "carol"]
    assert all("token" not in t for t in admin.get("llm/api/tokens").json()["tokens"])
    assert admin.post("llm/api/tokens", json={"name": "x", "role": "wizard"}).status_code == 400
    student = _client(served, tokens["alice"])
    assert student.get("llm/api/tokens").status_code == 403
    assert student.post("llm/api/tokens", json={"name": "mallory"}).status_code == 403
    assert admin.delete("llm/api/tokens/carol").status_code == 200
    assert carol.get("llm/api/me").status_code in (401, 403)


def test_a_policy_edit_applies_without_restart_and_a_bad_edit_keeps_the_last_good(classroom):
    served, tokens, policy = classroom
    bob, admin = _client(served, tokens["bob"]), _client(served, served.token)
    assert _chat(bob).status_code == 200
    assert _chat(bob).status_code == 200
    assert _chat(bob).status_code == 429
    policy.write_text(POLICY.replace("requests: 2", "requests: 5"))
    os.utime(policy, (time.time() + 5, time.time() + 5))
    time.sleep(1.2)  # the file is checked at most once a second
    assert _chat(bob).status_code == 200
    policy.write_text(POLICY.replace("requests: 2", "requests: many"))
    os.utime(policy, (time.time() + 10, time.time() + 10))
    time.sleep(1.2)
    assert _chat(bob).status_code == 200  # requests: 5 still in force
    me = admin.get("llm/api/me").json()
    assert "line 4" in me["policy_error"] and "requests" in me["policy_error"]


def test_the_cli_and_client_manage_tokens_rate_answers_and_export(classroom, monkeypatch, capsys):
    from jupyter_llm.cli import main
    from jupyter_llm.client.remote import RemoteClient

    served, tokens, _ = classroom
    monkeypatch.setenv("JUPYTER_LLM_URL", served.url)
    monkeypatch.setenv("JUPYTER_LLM_TOKEN", served.token)  # the admin
    assert main(["tokens", "add", "dora", "--role", "student"]) == 0
    issued = capsys.readouterr().out
    secret = next(w for w in issued.split() if w.startswith("jllm-"))
    assert main(["tokens", "list"]) == 0
    assert "dora" in capsys.readouterr().out
    assert main(["tokens", "add", "eve", "--role", "wizard"]) == 1
    assert "Unknown role 'wizard'" in capsys.readouterr().err

    dora = RemoteClient(served.url, secret)
    assert dora.me()["name"] == "dora"
    response = dora.chat([{"role": "user", "content": "hello"}], "tiny-chat", max_tokens=3)
    response.text()
    assert response.request_id
    rated = dora.feedback(response.request_id, rating=1, comment="helpful")
    assert rated["rating"] == 1 and rated["user"] == "dora"
    exported = RemoteClient(served.url, tokens["ada"]).export_history("jsonl", user="dora")
    assert json.loads(exported.splitlines()[0])["comment"] == "helpful"
    with pytest.raises(Exception, match="cannot export"):
        dora.export_history()
    assert main(["tokens", "revoke", "dora"]) == 0
    with pytest.raises(JupyterLLMError) as refused:
        dora.me()
    assert refused.value.status in (401, 403)


def test_only_an_instructor_sets_a_collection_s_tutoring_guard(classroom):
    from jupyter_llm.client.remote import RemoteClient

    served, tokens, _ = classroom
    alice, ada = _client(served, tokens["alice"]), _client(served, tokens["ada"])
    created = ada.post("llm/api/collections", json={"name": "course"})
    assert created.status_code == 201 and created.json()["tutoring_guard"] is False
    refused = alice.patch("llm/api/collections/course", json={"tutoring_guard": True})
    assert refused.status_code == 403
    assert "student role cannot change the tutoring guard" in refused.json()["error"]["message"]
    bad = ada.patch("llm/api/collections/course", json={"tutoring_guard": "maybe"})
    assert bad.status_code in (400, 422) and "tutoring_guard" in bad.text
    teacher = RemoteClient(served.url, token=tokens["ada"])
    assert teacher.configure_collection("course", tutoring_guard=True)["tutoring_guard"] is True
    assert alice.get("llm/api/collections/course").json()["tutoring_guard"] is True
