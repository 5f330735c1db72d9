"""``ModelPanel`` driven like a user would: set filter values, click buttons, read traits.

Runs against the in-process host and against a ``jupyter llm serve`` server (RemoteClient),
with real downloads from a local HTTP server and real llama.cpp workers."""

from __future__ import annotations

import json
import threading

import pytest

from jupyter_llm.client.local import LocalClient
from jupyter_llm.client.remote import RemoteClient
from jupyter_llm.testing.tiny_gguf import sha256_file
from jupyter_llm.widgets import ModelPanel

from .fixtures.waiting import wait_for


@pytest.fixture
def local(tiny_registry):
    """An in-process client over the tiny registry (its workers are stopped after)."""
    client = LocalClient()
    yield client
    client.host.close()


def states(panel: ModelPanel) -> dict[str, str]:
    return {m["id"]: m["state"] for m in panel.models}


def test_table_lists_the_registry_and_filters_by_tag_and_text(local):
    panel = ModelPanel(local)
    assert {m["id"]: m["state"] for m in local.models()} == states(panel)
    assert {"tiny-chat": "installed", "tiny-embed": "installed",
            "tiny-remote-only": "available"}.items() <= states(panel).items()
    assert len(panel.select.options) == len(panel.models) > 3  # built-in registry too
    assert "<td>tiny-chat</td>" in panel.table.value and "installed" in panel.table.value
    panel.text.value = "tiny-"
    assert list(panel.select.options) == ["tiny-chat", "tiny-embed", "tiny-remote-only"]
    assert "EMBEDDING" in [value for _, value in panel.tag.options]
    panel.tag.value = "EMBEDDING"
    assert list(panel.select.options) == ["tiny-embed"]
    assert "tiny-chat" not in panel.table.value
    panel.tag.value = ""
    panel.text.value = "never installed"
    assert list(panel.select.options) == ["tiny-remote-only"]
    panel.text.value = "TINY- chat"
    assert list(panel.select.options) == ["tiny-chat"]
    panel.text.value = "no such model"
    assert list(panel.select.options) == [] and panel.select.value is None


def test_load_unload_and_delete_buttons_change_the_state(local):
    panel = ModelPanel(local)
    panel.select.value = "tiny-chat"
    panel.buttons["load"].click()
    panel.wait()
    assert panel.error == "" and states(panel)["tiny-chat"] == "loaded"
    assert [m["id"] for m in local.ps()] == ["tiny-chat"]
    assert "loaded" in panel.table.value and "done" in panel.status.value
    panel.buttons["unload"].click()
    panel.wait()
    assert states(panel)["tiny-chat"] == "installed" and local.ps() == []
    panel.select.value = "tiny-embed"
    panel.buttons["delete"].click()
    panel.wait()
    assert states(panel)["tiny-embed"] == "available"


def test_a_failed_action_shows_what_to_run_next(local):
    panel = ModelPanel(local)
    panel.select.value = "tiny-remote-only"
    panel.buttons["load"].click()
    panel.wait()
    assert "not installed" in panel.error and "`%llm pull tiny-remote-only`" in panel.error
    assert "tiny-remote-only" in panel.status.value
    panel.buttons["cancel"].click()
    assert panel.status.value == "No download is running."


def test_download_shows_live_progress_can_be_cancelled_and_resumed(
        tiny_registry, tiny_gguf, http_server, tmp_path, monkeypatch):
    gate = threading.Event()
    http_server.serve("/pulled.gguf", file=tiny_gguf, gate=gate, chunk_size=4096)
    registry = tmp_path / "pull.json"
    registry.write_text(json.dumps({"models": [{
        "id": "pulled", "name": "p", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
        "url": http_server.url("/pulled.gguf"), "sha256": sha256_file(tiny_gguf),
        "size_bytes": tiny_gguf.stat().st_size}]}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(registry))
    client = LocalClient()
    try:
        panel = ModelPanel(client)
        panel.select.value = "pulled"
        panel.buttons["download"].click()
        bar = wait_for(lambda: panel.progress.get("pulled"), timeout=20)
        assert bar
        assert wait_for(lambda: (panel.refresh(), states(panel)["pulled"] == "downloading")[1],
                        timeout=20)
        assert "downloading" in panel.table.value
        panel.buttons["cancel"].click()
        gate.set()
        panel.wait()
        assert "ancel" in panel.error and bar.bar_style == "danger"
        assert states(panel)["pulled"] == "available"
        panel.buttons["download"].click()
        panel.wait()
        bar = panel.progress["pulled"]
        assert panel.error == "" and (bar.value, bar.bar_style) == (100, "success")
        assert states(panel)["pulled"] == "installed"
    finally:
        client.host.close()


def test_set_default_and_chat_streams_from_the_default_model(local):
    chosen = []
    panel = ModelPanel(local, on_default=chosen.append)
    panel.select.value = "tiny-chat"
    panel.buttons["default"].click()
    assert panel.default_model == "tiny-chat" and chosen == ["tiny-chat"]
    assert "★ tiny-chat" in panel.table.value
    panel.max_tokens.value = 6
    panel.prompt.value = "What is a variable?"
    panel.send.click()
    assert panel.send.disabled or panel.messages  # sending
    panel.wait()
    assert panel.error == "" and not panel.send.disabled and panel.prompt.value == ""
    response = panel.last_response
    assert response.model_id == "tiny-chat" and response.usage.completion_tokens == 6
    assert panel.messages == [{"role": "user", "content": "What is a variable?"},
                              {"role": "assistant", "content": response.text()}]
    assert "What is a variable?" in panel.chat_log.value and "Model:" in panel.chat_log.value
    panel.prompt.value = "And a loop?"
    panel.send.click()
    panel.wait()
    assert len(panel.last_response.request.messages) == 3  # the chat continues
    panel.clear.click()
    assert panel.messages == [] and panel.chat_log.value == ""
    panel.send.click()  # empty prompt
    assert "Write a question" in panel.error


def test_the_last_answer_can_be_rated_with_a_comment(local):
    panel = ModelPanel(local, default_model="tiny-chat")
    assert panel.thumbs_up.disabled and panel.thumbs_down.disabled  # nothing to rate yet
    panel.max_tokens.value = 4
    panel.prompt.value = "What is a loop?"
    panel.send.click()
    panel.wait()
    assert not panel.thumbs_down.disabled
    panel.feedback_comment.value = "did not answer"
    panel.thumbs_down.click()
    assert panel.error == "" and "feedback was saved" in panel.status.value
    assert panel.thumbs_down.disabled and panel.feedback_comment.value == ""
    entry = local.history(1)[0]
    assert entry["request_id"] == panel.last_response.request_id
    assert (entry["rating"], entry["comment"]) == (-1, "did not answer")


def test_chat_error_is_shown_and_the_question_can_be_resent(local):
    panel = ModelPanel(local, default_model="tiny-remote-only")
    panel.prompt.value = "hi"
    panel.send.click()
    panel.wait()
    assert "%llm pull tiny-remote-only" in panel.error and panel.messages == []


def test_panel_works_against_a_remote_server(llm_serve):
    client = RemoteClient(llm_serve.url, llm_serve.token)
    try:
        panel = ModelPanel(client)
        assert states(panel)["tiny-chat"] == "installed"
        panel.select.value = "tiny-chat"
        panel.buttons["load"].click()
        panel.wait()
        assert panel.error == "" and states(panel)["tiny-chat"] == "loaded"
        panel.buttons["default"].click()
        panel.max_tokens.value = 4
        panel.ask("hello")
        panel.wait()
        assert panel.error == "" and panel.messages[-1]["role"] == "assistant"
        assert panel.last_response.usage.completion_tokens == 4
        panel.buttons["unload"].click()
        panel.wait()
        assert states(panel)["tiny-chat"] == "installed"
    finally:
        client.close()


def test_llm_panel_magic_shares_the_default_with_use(tiny_registry):
    from IPython.testing.globalipapp import get_ipython, start_ipython

    from jupyter_llm.magics import magics_of
    from jupyter_llm.magics.session import Session

    ip = start_ipython() or get_ipython()  # started once per process
    ip.run_line_magic("load_ext", "jupyter_llm")
    client = LocalClient()
    session = magics_of(ip).session = Session(client_=client, live=True)
    try:
        panel = ip.run_line_magic("llm", "panel")
        assert isinstance(panel, ModelPanel) and session.panel is panel
        ip.run_line_magic("llm", "use tiny")
        assert panel.default_model == "tiny" and "★ tiny-chat" in panel.table.value
        panel.select.value = "tiny-chat"
        panel.buttons["default"].click()
        assert session.default_model == "tiny-chat"
    finally:
        client.host.close()


