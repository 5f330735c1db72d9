"""Saved conversations: per-user storage in SQLite (concurrent writers), export to a notebook,
the REST routes (each user sees only their own) and both clients."""

from __future__ import annotations

import json
import threading

import httpx
import nbformat
import pytest

from jupyter_llm.client.local import LocalClient
from jupyter_llm.client.remote import RemoteClient
from jupyter_llm.errors import Forbidden, InvalidRequest, NotFound
from jupyter_llm.host.conversations import Conversations, to_notebook, write_notebook
from jupyter_llm.host.tokens import TokenStore

from .fixtures.server import _free_port, start_serve

ANSWER = ("Use a for loop:\n\n```python\nfor x in [1, 2]:\n    print(x)\n```\n\n"
          "Run it from a shell:\n\n```bash\npython loop.py\n```\n\nThat prints 1 and 2.")
TURNS = [{"role": "user", "content": "How do I loop over a list?"},
         {"role": "assistant", "content": ANSWER, "model": "tiny-chat",
          "citations": [{"n": 1, "source": "lists.md", "path": "/x/lists.md"}]}]


def test_each_user_lists_reads_updates_and_deletes_only_their_own(tmp_path):
    store = Conversations(tmp_path / "c.sqlite")
    saved = store.save("alice", TURNS, model="tiny-chat")
    assert saved["title"] == "How do I loop over a list?" and saved["messages"] == TURNS
    assert [c["id"] for c in store.list("alice")] == [saved["id"]]
    assert store.list("alice")[0]["message_count"] == 2
    assert store.list("bob") == []
    with pytest.raises(NotFound):
        store.get("bob", saved["id"])
    with pytest.raises(NotFound):  # bob cannot overwrite it either
        store.save("bob", TURNS, conversation_id=saved["id"])
    assert store.delete("bob", saved["id"]) is False
    more = [*TURNS, {"role": "user", "content": "And a dict?"}]
    updated = store.save("alice", more, conversation_id=saved["id"], title="Loops")
    assert updated["title"] == "Loops" and len(updated["messages"]) == 3
    assert updated["created_at"] == saved["created_at"] <= updated["updated_at"]
    second = store.save("alice", [{"role": "user", "content": "x" * 100}])
    assert second["title"].endswith("…") and len(second["title"]) == 60
    assert [c["id"] for c in store.list("alice")] == [second["id"], saved["id"]]  # newest first
    assert store.delete("alice", saved["id"]) is True
    with pytest.raises(NotFound):
        store.get("alice", saved["id"])


@pytest.mark.parametrize("messages, field", [
    ([], "messages"), ("hi", "messages"), ([{"role": "robot", "content": "x"}], "messages[0]"),
    ([{"role": "user"}], "messages[0]"), ([{"role": "user", "content": 3}], "messages[0]")])
def test_bad_messages_are_a_clear_error_and_nothing_is_stored(tmp_path, messages, field):
    store = Conversations(tmp_path / "c.sqlite")
    with pytest.raises(InvalidRequest) as info:
        store.save("alice", messages)
    assert info.value.details["field"] == field and "role" in info.value.message + "list"
    assert store.list("alice") == []


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    errors: list[BaseException] = []

    def write(user: str) -> None:
        store = Conversations(path)  # a connection of its own, as another process has
        try:
            for i in range(15):
                saved = store.save(user, [{"role": "user", "content": f"{user} {i}"}])
                store.save(user, [*saved["messages"], {"role": "assistant", "content": "ok"}],
                           conversation_id=saved["id"])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(f"u{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = Conversations(path)
    for n in range(6):
        listed = store.list(f"u{n}")
        assert len(listed) == 15 and {c["message_count"] for c in listed} == {2}


def test_the_notebook_has_questions_and_answers_as_markdown_and_python_as_code(tmp_path):
    store = Conversations(tmp_path / "c.sqlite")
    saved = store.save("alice", TURNS, model="tiny-chat")
    nb = nbformat.from_dict(to_notebook(saved))
    nbformat.validate(nb)
    kinds = [(c.cell_type, c.source.splitlines()[0]) for c in nb.cells]
    assert kinds == [("markdown", "# How do I loop over a list?"),
                     ("markdown", "**You:** How do I loop over a list?"),
                     ("markdown", "**tiny-chat:**"),
                     ("code", "for x in [1, 2]:"),
                     ("markdown", "Run it from a shell:")]
    assert nb.cells[3].source == "for x in [1, 2]:\n    print(x)"
    assert "```bash\npython loop.py\n```" in nb.cells[4].source  # not Python: stays in markdown
    assert "[1] lists.md" in nb.cells[4].source
    assert nb.cells[3].metadata["jupyter_llm"]["model"] == "tiny-chat"
    first = write_notebook(saved, tmp_path)
    second = write_notebook(saved, tmp_path)
    assert first.name == "how-do-i-loop-over-a-list.ipynb" and second.name.endswith("-2.ipynb")
    nbformat.validate(nbformat.read(first, as_version=4))
    with pytest.raises(InvalidRequest, match="exists already"):
        write_notebook(saved, tmp_path, first.name)
    with pytest.raises(Forbidden):
        write_notebook(saved, tmp_path / "sub", "../../escape.ipynb")
    with pytest.raises(InvalidRequest, match=".ipynb"):
        write_notebook(saved, tmp_path, "notes.txt")


def test_the_local_client_saves_as_the_os_user_and_exports_to_the_working_directory(
        tiny_registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = LocalClient()
    try:
        saved = client.save_conversation(TURNS, model="tiny-chat")
        assert [c["id"] for c in client.conversations()] == [saved["id"]]
        assert client.conversation(saved["id"])["messages"] == TURNS
        path = client.export_conversation(saved["id"], "loops.ipynb")
        assert path == "loops.ipynb" and (tmp_path / path).is_file()
        assert client.delete_conversation(saved["id"]) is True
        assert client.conversations() == []
    finally:
        client.close()


@pytest.fixture
def served(tmp_path, tiny_registry):
    """A served host with tokens for two students."""
    store = TokenStore()
    tokens = {name: store.add(name, "student") for name in ("alice", "bob")}
    served = start_serve(tmp_path, "--port", str(_free_port()), "--ip", "127.0.0.1")
    yield served, tokens, tmp_path
    served.stop()


def test_rest_a_student_cannot_read_change_delete_or_export_anothers(served):
    server, tokens, _ = served
    alice, bob = (httpx.Client(base_url=server.url + "llm/api/", timeout=60,
                               headers={"Authorization": f"token {tokens[n]}"})
                  for n in ("alice", "bob"))
    created = alice.post("conversations", json={"messages": TURNS, "model": "tiny-chat"})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert [c["id"] for c in alice.get("conversations").json()["conversations"]] == [cid]
    assert bob.get("conversations").json() == {"conversations": []}
    for method, path, body in (("GET", f"conversations/{cid}", None),
                               ("PUT", f"conversations/{cid}", {"messages": TURNS}),
                               ("POST", f"conversations/{cid}/export", {})):
        r = bob.request(method, path, json=body)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found", r.text
    assert bob.delete(f"conversations/{cid}").json() == {"deleted": False}
    assert alice.get(f"conversations/{cid}").json()["messages"] == TURNS
    bad = alice.post("conversations", json={"messages": [{"role": "robot", "content": "x"}]})
    assert bad.status_code == 400 and "messages[0]" in bad.json()["error"]["message"]
    extra = alice.post("conversations", json={"messages": TURNS, "colour": "red"})
    assert extra.status_code == 400 and "colour" in extra.json()["error"]["message"]
    outside = alice.post(f"conversations/{cid}/export", json={"path": "../x.ipynb"})
    assert outside.status_code == 403
    assert alice.delete(f"conversations/{cid}").json() == {"deleted": True}
    assert alice.get(f"conversations/{cid}").status_code == 404


def test_the_remote_client_does_what_the_local_one_does(served):
    server, tokens, root = served
    client = RemoteClient(server.url, tokens["alice"])
    try:
        saved = client.save_conversation(TURNS[:1], title="Loops")
        saved = client.save_conversation(TURNS, conversation_id=saved["id"], model="tiny-chat")
        assert saved["title"] == "Loops" and saved["model"] == "tiny-chat"
        assert [c["title"] for c in client.conversations()] == ["Loops"]
        assert client.conversation(saved["id"])["messages"] == TURNS
        path = client.export_conversation(saved["id"])
        assert path == "loops.ipynb"
        cells = json.loads((root / path).read_text())["cells"]
        assert [c["cell_type"] for c in cells].count("code") == 1
        assert client.delete_conversation(saved["id"]) is True
        with pytest.raises(NotFound):
            client.conversation(saved["id"])
        assert RemoteClient(server.url, tokens["bob"]).conversations() == []
    finally:
        client.close()
