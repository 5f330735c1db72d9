"""The lab panel in a classroom (issue 13): feedback on answers, the Class section (usage
against limits for everyone; history, per-student stats and export for instructors), a limit
shown as such, and models the policy does not allow marked and left out of the picker.

Real ``jupyter lab`` and Chromium; the roles come from the server's real policy file, which it
re-reads within a second of a change; other students' requests are real history entries.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_llm.history import History
from tests.lab.helpers import (
    ANSWER,
    PANEL,
    ensure_installed,
    model_row,
    open_lab,
    set_theme,
    shot,
    show_section,
)
from tests.lab.server import LabServer

CLASS = "#jp-llm-section-class"
INSTRUCTOR = "#jp-llm-class-instructor"


def use_policy(lab: LabServer, policy: dict[str, Any]) -> None:
    """Write the policy file and wait until the server answers with its role."""
    before = lab.api("GET", "llm/api/me")
    lab.policy_file.write_text(json.dumps(policy))
    owner = before["name"]
    want = policy.get("users", {}).get(owner, policy.get("default_role", "admin"))
    deadline = time.monotonic() + 10
    while lab.api("GET", "llm/api/me")["role"] != want:
        assert time.monotonic() < deadline, f"the server did not switch to the {want} role"
        time.sleep(0.3)


@pytest.fixture
def policy(lab: LabServer) -> Iterator[Any]:
    """Set a classroom policy for one test; everyone is admin again afterwards."""
    yield lambda p: use_policy(lab, p)
    use_policy(lab, {})


def open_class(page: Any) -> None:
    """Show the Class section and wait for its fresh answer from the server."""
    show_section(page, "models")  # showing the section again refreshes it
    show_section(page, "class")
    page.wait_for_selector(f"{CLASS} #jp-llm-class-who:has-text('Signed in as')")


def ask(page: Any, text: str) -> None:
    """Send a question to tiny-chat and wait for the answer to finish."""
    show_section(page, "chat")
    page.select_option('select[aria-label="Model"]', "tiny-chat")
    page.fill('textarea[aria-label="Message"]', text)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{ANSWER}[aria-busy='false']")


def entry(lab: LabServer, request_id: str) -> dict[str, Any]:
    """The history entry of an answer, through the REST API."""
    entries = lab.api("GET", "llm/api/history?limit=50")["entries"]
    found = [e for e in entries if e.get("request_id") == request_id]
    assert found, f"no history entry with request_id {request_id}: {entries[:3]}"
    return found[0]


def test_thumbs_and_a_comment_on_an_answer_are_stored_with_its_history_entry(lab_page, lab):
    page = lab_page
    ensure_installed(lab, page, "tiny-chat")
    ask(page, "What does pwd print?")
    request_id = page.get_attribute(ANSWER, "data-request-id")
    assert request_id, "the answer did not carry its request_id"
    assert entry(lab, request_id)["rating"] is None

    page.click(f'{ANSWER} button[aria-label="Good answer"]')
    page.wait_for_selector(f"{ANSWER} .jp-llm-feedback-status:has-text('saved')")
    assert page.get_attribute(f'{ANSWER} button[aria-label="Good answer"]', "aria-pressed") == "true"
    assert entry(lab, request_id)["rating"] == 1

    page.click(f'{ANSWER} button[aria-label="Bad answer"]')
    page.wait_for_selector(f'{ANSWER} button[aria-label="Bad answer"][aria-pressed="true"]')
    assert page.get_attribute(f'{ANSWER} button[aria-label="Good answer"]', "aria-pressed") == "false"
    assert entry(lab, request_id)["rating"] == -1

    page.click(f'{ANSWER} button[aria-label="Comment on this answer…"]')
    comment = page.locator(f'{ANSWER} textarea[aria-label="Comment on this answer"]')
    assert comment.evaluate("el => el === document.activeElement")
    comment.fill("It did not say that pwd prints the working directory.")
    page.click(f'{ANSWER} button[aria-label="Send the comment"]')
    page.wait_for_selector(f"{ANSWER} .jp-llm-feedback-status:has-text('comment is saved')")
    stored = entry(lab, request_id)
    assert stored["comment"] == "It did not say that pwd prints the working directory."
    assert stored["rating"] == -1  # the comment keeps the rating
    shot(page, "30-feedback-light")
    set_theme(page, "dark")
    shot(page, "30-feedback-dark")
    set_theme(page, "light")

    # the rating survives a reload of the page with the conversation
    open_lab(page, lab)
    show_section(page, "chat")
    restored = f'{PANEL} .jp-llm-assistant[data-request-id="{request_id}"]'
    assert page.get_attribute(f'{restored} button[aria-label="Bad answer"]', "aria-pressed") == "true"


def seed_students(lab: LabServer) -> None:
    """Two students' requests in the server's real history file: answers, a refusal, ratings."""
    history = History(lab.home / "history.sqlite")
    now = time.time()
    for i in range(3):
        rid = history.record(model="tiny-chat", face="lab", user="ada", prompt=f"q{i}",
                             response="a", prompt_tokens=10, completion_tokens=5,
                             created_at=now - 60 + i, collection="course" if i == 0 else None)
        if i == 0:
            history.feedback(rid, rating=1, comment="clear")
    history.record(model="tiny-chat", face="lab", user="bob", prompt="q", response="a",
                   prompt_tokens=7, completion_tokens=3, created_at=now - 30)
    history.record(model="tiny-chat", face="lab", user="bob",
                   error="refused: You have reached your limit of 1 requests per hour (1 used).",
                   created_at=now - 20)
    rid = history.record(model="tiny-other", face="lab", user="bob", prompt="q", response="a",
                         prompt_tokens=4, completion_tokens=2, created_at=now - 10)
    history.feedback(rid, rating=-1)


def stats_row(page: Any, user: str) -> list[str]:
    cells = page.locator(f"{CLASS} .jp-llm-class-stats-table tr:has(td:text-is('{user}')) td")
    return cells.all_inner_texts()


def test_the_instructor_sees_per_student_stats_filters_the_history_and_exports_it(
        lab_page, lab, policy):
    page = lab_page
    seed_students(lab)
    owner = lab.api("GET", "llm/api/me")["name"]
    policy({"default_role": "student", "users": {owner: "instructor"}})
    open_class(page)
    assert page.is_visible(INSTRUCTOR)
    assert "instructor" in page.inner_text(f"{CLASS} #jp-llm-class-who")
    page.wait_for_selector(f"{CLASS} .jp-llm-class-stats-table")
    # Student, Requests, Tokens, Refused, up, down, Score
    assert stats_row(page, "ada")[:6] == ["ada", "3", "45", "0", "1", "0"]
    assert stats_row(page, "bob")[:6] == ["bob", "3", "16", "1", "0", "1"]
    shot(page, "31-class-instructor-light")
    set_theme(page, "dark")
    shot(page, "31-class-instructor-dark")
    set_theme(page, "light")

    # filter by student and model: the table and the history follow
    page.fill("#jp-llm-class-user", "bob")
    page.fill("#jp-llm-class-model", "tiny-other")
    page.click(f'{CLASS} button[aria-label="Show the history with these filters"]')
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-llm-class-history tbody tr')]
                 .every(r => r.innerText.includes('tiny-other'))""")
    rows = page.locator(f"{CLASS} .jp-llm-class-history tbody tr").all_inner_texts()
    assert len(rows) == 1 and "bob" in rows[0] and "👎" in rows[0], rows
    assert stats_row(page, "bob")[0] == "bob"
    assert page.locator(f"{CLASS} .jp-llm-class-stats-table tr:has(td:text-is('ada'))").count() == 0

    # a date range before today holds nothing
    page.fill("#jp-llm-class-user", "")
    page.fill("#jp-llm-class-model", "")
    page.fill("#jp-llm-class-until", "2020-01-01")
    page.click(f'{CLASS} button[aria-label="Show the history with these filters"]')
    page.wait_for_selector(f"{CLASS} .jp-llm-class-stats:has-text('No requests match')")
    page.fill("#jp-llm-class-until", "")

    # export: a CSV of the filtered history, and JSONL
    page.fill("#jp-llm-class-user", "ada")
    with page.expect_download() as info:
        page.click(f'{CLASS} button[aria-label="Export the history as CSV"]')
    download = info.value
    assert download.suggested_filename.startswith("history-")
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert len(rows) == 3 and {r["user"] for r in rows} == {"ada"}
    assert [r["comment"] for r in rows if r["rating"] == "1"] == ["clear"]
    page.fill("#jp-llm-class-user", "")
    with page.expect_download() as info:
        page.click(f'{CLASS} button[aria-label="Export the history as JSONL"]')
    lines = [json.loads(line) for line in open(info.value.path(), encoding="utf-8")]
    assert {"ada", "bob"} <= {e["user"] for e in lines}
    assert info.value.suggested_filename.endswith(".jsonl")


def test_a_student_sees_their_usage_not_the_instructor_view_and_a_limit_is_named(
        lab_page, lab, policy):
    page = lab_page
    ensure_installed(lab, page, "tiny-chat")
    ensure_installed(lab, page, "tiny-other")
    used = lab.api("GET", "llm/api/me")["usage"]["requests"]
    policy({"default_role": "student", "roles": {"student": {
        "limits": {"requests": used + 1, "window": "1h"}, "models": ["tiny-chat", "tiny-slow"]}}})
    open_class(page)
    assert page.is_hidden(INSTRUCTOR)
    assert page.locator(f"{CLASS} .jp-llm-class-stats-table").count() == 0
    assert "student" in page.inner_text(f"{CLASS} #jp-llm-class-who")
    usage = page.inner_text(f"{CLASS} .jp-llm-usage")
    assert f"{used} of {used + 1} requests per hour" in usage, usage
    assert "Models you may use: tiny-chat, tiny-slow" in usage

    # a model the policy does not allow is marked in Models and left out of the chat picker
    show_section(page, "models")
    page.click('button[aria-label="Refresh models"]')
    page.wait_for_selector(f"{model_row('tiny-other')}[data-allowed='false']")
    other = page.locator(model_row("tiny-other"))
    assert "not allowed" in other.inner_text()
    assert other.locator("button[aria-label='Load tiny-other']").count() == 0
    assert other.locator("button[aria-label='Set as default tiny-other']").count() == 0
    show_section(page, "chat")
    options = page.locator('select[aria-label="Model"] option').evaluate_all(
        "os => os.map(o => o.value)")
    assert "tiny-chat" in options and "tiny-other" not in options, options

    # the last request the limit allows, then a refusal that names the limit and its reset
    ask(page, "What does cd do?")
    ask(page, "And ls?")
    error = "#jp-llm-section-chat .jp-llm-error"
    page.wait_for_selector(f"{error}[data-type='rate_limited']")
    text = page.inner_text(error)
    assert "Usage limit reached" in text
    assert f"limit of {used + 1} requests per hour" in text and "resets at" in text, text
    assert "Could not reach" not in text and "429" not in text
    assert page.is_visible(f"{error} button[data-action='retry']")
    shot(page, "32-limit-light")
    set_theme(page, "dark")
    shot(page, "32-limit-dark")
    set_theme(page, "light")
    open_class(page)
    usage = page.inner_text(f"{CLASS} .jp-llm-usage")
    assert f"{used + 1} of {used + 1} requests per hour" in usage, usage
    rows = page.locator(f"{CLASS} .jp-llm-class-history tbody tr").all_inner_texts()
    assert rows and all("ada" not in r and "bob" not in r for r in rows)
    shot(page, "32-class-student-light")
