"""The lab panel as a teacher meets it (issue 14): readable errors that offer their next step,
cited lines in the middle of the editor, Stop before the first word, stages of long waits,
the model list, confirmations, and the smaller gaps. Each check runs in the light and the
dark theme; screenshots of both land in ``test-results/lab/``.

Real ``jupyter lab``, real Chromium (Debian's), real tiny GGUF models and a real collection.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest

from tests.lab.fixtures import COURSE
from tests.lab.helpers import (
    ANSWER,
    PANEL,
    close_all_documents,
    contrast,
    ensure_installed,
    line_in_view,
    model_row,
    open_lab,
    set_theme,
    shot,
    show_section,
)
from tests.lab.server import LabServer

CHAT_ERROR = "#jp-llm-section-chat .jp-llm-error"
SETTINGS = "lab/api/settings/jupyter-llm:plugin"
KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


@pytest.fixture(autouse=True)
def light_theme_after(lab_page: Any) -> Any:
    """Every test starts and ends in the light theme."""
    yield
    if lab_page.evaluate("document.body.dataset.jpThemeLight") != "true":
        set_theme(lab_page, "light")


def ensure_course(lab: LabServer) -> None:
    """The ``course`` collection holds the course folder (created and ingested if needed)."""
    lab.api("POST", "llm/api/collections", {"name": "course"})
    result = lab.api("POST", "llm/api/collections/course/ingest",
                     {"paths": ["course"], "stream": False}, timeout=300)
    assert result.get("status") == "done", result


def chat(page: Any, text: str, model: str | None = None) -> None:
    """Type a question in the chat and send it."""
    show_section(page, "chat")
    if model is not None:
        page.select_option('select[aria-label="Model"]', model)
    page.fill('textarea[aria-label="Message"]', text)
    page.keyboard.press("Enter")


def test_error_text_is_readable_in_the_light_and_dark_themes(lab_page, lab):
    """The error box's text has a contrast of at least 4.5:1 against its actual background
    in both themes (it was white on light pink, 1.41:1, in the dark theme)."""
    page = lab_page
    show_section(page, "chat")
    page.evaluate("""() => { const s = document.querySelector('select[aria-label="Model"]');
        s.add(new Option('no-such-model', 'no-such-model')); s.value = 'no-such-model';
        s.dispatchEvent(new Event('change')); }""")
    page.fill('textarea[aria-label="Message"]', "Hello?")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{CHAT_ERROR}[data-type='unknown_model']", state="visible")
    ratios = {}
    for theme in ("light", "dark"):
        set_theme(page, theme)
        ratios[theme] = contrast(page, f"{CHAT_ERROR} .jp-llm-error-text")
        shot(page, f"20-error-{theme}")
    assert min(ratios.values()) >= 4.5, ratios
    assert "`" not in page.inner_text(f"{CHAT_ERROR} .jp-llm-error-text")  # code, not backticks
    page.click('#jp-llm-section-chat button[aria-label="Dismiss error"]')
    page.select_option('select[aria-label="Model"]', "")


def test_an_error_offers_its_next_step_as_a_button_and_clears_when_it_succeeds(lab_page, lab):
    """Chatting with a model not yet downloaded shows a Download button (not a command line);
    clicking it downloads the model and the error goes away."""
    page = lab_page
    assert lab.api("GET", "llm/api/models")["models"]  # the server answers
    if lab.api("GET", "llm/api/models/tiny-other").get("state") not in (None, "available"):
        lab.api("DELETE", "llm/api/models/tiny-other")
    answer = lab.api("POST", "llm/api/chat", {"model": "tiny-other", "stream": False,
                                              "messages": [{"role": "user", "content": "Hi"}]})
    if not isinstance(answer.get("error", {}).get("details"), dict) or \
            "action" not in answer["error"]["details"]:
        pytest.skip(f"this server's errors carry no next step (details.action) yet: {answer}")
    show_section(page, "models")
    page.click('button[aria-label="Refresh models"]')
    show_section(page, "chat")
    page.evaluate("""() => { const s = document.querySelector('select[aria-label="Model"]');
        s.add(new Option('tiny-other', 'tiny-other')); s.value = 'tiny-other';
        s.dispatchEvent(new Event('change')); }""")
    page.fill('textarea[aria-label="Message"]', "Hello?")
    page.keyboard.press("Enter")
    action = f"{CHAT_ERROR} button.jp-llm-error-action[data-action='pull']"
    page.wait_for_selector(action, state="visible")
    text = page.inner_text(f"{CHAT_ERROR} .jp-llm-error-text")
    assert "jupyter llm pull" not in text and "`" not in text, text
    assert page.inner_text(action) == "Download tiny-other"
    for theme in ("light", "dark"):
        set_theme(page, theme)
        assert contrast(page, f"{CHAT_ERROR} .jp-llm-error-text") >= 4.5
        shot(page, f"21-error-action-{theme}")
    set_theme(page, "light")
    page.click(action)
    page.wait_for_selector(f"{model_row('tiny-other')}[data-state='installed']", timeout=120_000)
    page.wait_for_selector(CHAT_ERROR, state="hidden")
    show_section(page, "chat")
    page.select_option('select[aria-label="Model"]', "")


def test_a_search_hit_and_a_citation_open_with_the_lines_in_the_middle_of_the_editor(
        lab_page, lab):
    """Line 201 of a 300-line lesson opens inside the editor's visible part, away from its
    edges (it used to land at the bottom edge)."""
    page = lab_page
    ensure_course(lab)
    start = COURSE["long.md"].splitlines().index("## Frobnication of widgets")
    for theme in ("light", "dark"):
        set_theme(page, theme)
        show_section(page, "collections")
        page.click('button[aria-label="Refresh collections"]')
        page.wait_for_selector('#jp-llm-section-collections li[data-collection="course"]')
        page.select_option('select[aria-label="Collection to search"]', "course")
        page.fill('input[aria-label="Search query"]', "frobnicate a widget")
        page.click('button[aria-label="Search collection"]')
        hit = page.locator("#jp-llm-section-collections .jp-llm-result .jp-llm-citation").first
        hit.wait_for()
        assert "long.md" in hit.inner_text()
        words = page.inner_text("#jp-llm-section-collections .jp-llm-match >> nth=0")
        assert words == "Best match"  # words, not a bare score like 0.030
        hit.click()
        page.wait_for_selector(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:has-text('long.md')")
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget?.content?.editor?.getSelection()"
            ".start.line > 0")
        selected = page.evaluate(
            "window.jupyterapp.shell.currentWidget.content.editor.getSelection().start.line")
        page.wait_for_timeout(300)  # let the scroll settle
        where = line_in_view(page, selected)
        assert abs(selected - start) <= 3, (selected, start)
        assert 0.15 <= where["top"] and where["bottom"] <= 0.85, where
        shot(page, f"22-search-hit-centered-{theme}")
        close_all_documents(page)


def _occupy(lab: LabServer, model: str, started: threading.Event, stop: threading.Event) -> None:
    """Keep ``model`` busy with one long streamed answer until ``stop`` (then disconnect)."""
    body = json.dumps({"model": model, "stream": True, "messages": [
        {"role": "user", "content": "Talk for a long time."}],
        "options": {"max_tokens": 30000, "n_ctx": 32768, "temperature": 0}}).encode()
    request = urllib.request.Request(
        lab.url + "llm/api/chat", data=body, method="POST",
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        for _ in response:
            started.set()
            if stop.is_set():
                return


def test_stop_before_the_first_word_is_not_an_error_and_frees_the_queue(lab_page, lab):
    """A question queued behind another answer shows its place in line, Stop takes it out of the
    queue at once (no "Could not reach the Jupyter server"), and focus stays in the chat."""
    page = lab_page
    ensure_installed(lab, page, "tiny-chat")
    # one slot: with batching a second request would run beside the first, not wait for it
    lab.api("POST", "llm/api/load", {"model": "tiny-chat",
                                      "options": {"n_ctx": 32768, "parallel": 1}})
    started, stop = threading.Event(), threading.Event()
    worker = threading.Thread(target=_occupy, args=(lab, "tiny-chat", started, stop),
                              daemon=True)
    worker.start()
    try:
        assert started.wait(60), "the occupying answer did not start"
        chat(page, "Are you there?", model="tiny-chat")
        page.wait_for_selector(f"{ANSWER}[data-stage='queued']")
        assert "in line" in page.inner_text(f"{ANSWER} .jp-llm-stage")
        shot(page, "23-queued-light")
        page.click('button[aria-label="Stop answering"]')
        page.wait_for_selector(f"{ANSWER}[aria-busy='false']")
        assert worker.is_alive(), "the other answer ended first: the test proves nothing"
        assert page.is_hidden(CHAT_ERROR), page.inner_text(CHAT_ERROR)
        assert "Stopped" in page.inner_text(f"{ANSWER} .jp-llm-stats")
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Message"
        # the server let go of the stopped request: nothing waits for the model any more
        page.wait_for_function(
            """(url) => fetch(url).then(r => r.json()).then(j =>
                 j.models.every(m => !m.queue_depth))""",
            arg=f"{lab.url}llm/api/ps?token={lab.token}", timeout=15_000)
        assert worker.is_alive()
    finally:
        stop.set()
        worker.join(60)
    set_theme(page, "dark")
    shot(page, "23-stopped-dark")


def test_llm_chat_from_the_palette_puts_the_keyboard_in_the_message_box(lab_page, lab):
    """After "LLM: Chat" from the command palette, typing goes into the message box, not into
    the notebook's command-mode shortcuts."""
    page = lab_page
    notebook = {"type": "notebook", "format": "json", "content": {
        "cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [],
                   "execution_count": None}],
        "metadata": KERNELSPEC, "nbformat": 4, "nbformat_minor": 5}}
    lab.api("PUT", "api/contents/palette.ipynb", notebook)
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', "
                  "{path: 'palette.ipynb', kernel: {name: null}}).then(() => true)")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    for theme in ("light", "dark"):
        set_theme(page, theme)
        page.click(".jp-NotebookPanel .jp-InputPrompt")  # command mode in the notebook
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Shift+c")
        page.wait_for_selector(".lm-CommandPalette input", state="visible")
        page.keyboard.type("LLM: Chat")
        page.wait_for_selector(".lm-CommandPalette-item.lm-mod-active:has-text('LLM: Chat')")
        page.keyboard.press("Enter")
        page.wait_for_function("document.activeElement?.getAttribute('aria-label') === 'Message'")
        page.keyboard.type("ab")  # in command mode, "a" and "b" would insert cells
        assert page.input_value('textarea[aria-label="Message"]') == "ab"
        assert page.locator(".jp-NotebookPanel .jp-Cell").count() == 1
        page.fill('textarea[aria-label="Message"]', "")
        shot(page, f"24-palette-chat-{theme}")
    close_all_documents(page)


def test_the_launcher_has_an_ai_tutor_card_that_opens_the_chat(lab_page, lab):
    """The Launcher shows an "AI Tutor Chat" card under "AI Tutor (LLM)"; it opens the chat
    with the keyboard in the message box."""
    page = lab_page
    for theme in ("light", "dark"):
        set_theme(page, theme)
        page.evaluate("window.jupyterapp.commands.execute('launcher:create').then(() => true)")
        section = page.locator(".jp-Launcher-section:has(.jp-Launcher-sectionTitle"
                               ":text-is('AI Tutor (LLM)'))").last
        card = section.locator(".jp-LauncherCard:has-text('AI Tutor Chat')")
        card.wait_for(state="visible")
        card.scroll_into_view_if_needed()
        shot(page, f"25-launcher-{theme}")
        card.click()
        page.wait_for_function("document.activeElement?.getAttribute('aria-label') === 'Message'")
        assert page.locator("#jupyter-llm-panel").is_visible()
        close_all_documents(page)


def test_ingest_shows_its_stage_at_once_and_names_the_files_it_could_not_add(lab_page, lab):
    """An ingest shows a ticking stage from the start and its summary names the skipped file;
    the collection lists its documents (one opens), and can be deleted (after a confirmation)."""
    page = lab_page
    unit = lab.root / "unit2"
    unit.mkdir(exist_ok=True)
    (unit / "loops.md").write_text("# Loops\n\nA `for` loop repeats commands.\n")
    (unit / "broken.ipynb").write_text("{ this is not a notebook")
    show_section(page, "collections")
    page.evaluate("window.__labels = []; new MutationObserver(() => { const l = "
                  "document.querySelector('.jp-llm-ingest[data-collection=\"unit2\"] "
                  ".jp-llm-progress-label'); if (l) window.__labels.push(l.textContent); })"
                  ".observe(document.body, {subtree: true, childList: true, characterData: true})")
    page.evaluate("window.jupyterapp.commands.execute('filebrowser:go-to-path', {path: '/'})"
                  ".then(() => true)")
    if not page.is_visible(".jp-FileBrowser"):
        page.click('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="filebrowser"]')
    page.evaluate("window.jupyterapp.commands.execute('filebrowser:refresh').then(() => true)")
    item = page.locator('.jp-DirListing-item[data-isdir="true"]:has-text("unit2")')
    item.click(button="right")
    page.click('.lm-Menu-item:has-text("Add to Collection")')
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("unit2")
    dialog.locator(".jp-mod-accept").click()
    ingest = '.jp-llm-ingest[data-collection="unit2"]'
    page.wait_for_selector(ingest, timeout=3000)  # at once, not after the first file
    page.wait_for_selector(f"{ingest}[data-status]", timeout=180_000)
    labels = page.evaluate("window.__labels")
    assert labels and labels[0].split(" · ")[0].endswith("…"), labels  # a stage, from the start
    assert any(label.endswith(" s") for label in labels[:3]), labels  # with the time waited
    summary = page.inner_text(f"{ingest} .jp-llm-progress-label")
    assert page.get_attribute(ingest, "data-status") == "done", summary
    assert "broken.ipynb" in summary, summary
    for theme in ("light", "dark"):
        set_theme(page, theme)
        shot(page, f"25-ingest-summary-{theme}")
    set_theme(page, "light")

    row = '#jp-llm-section-collections li[data-collection="unit2"]'
    # its documents are listed, and one opens in the editor
    page.click(f'{row} button[aria-label="Documents of unit2"]')
    docs = page.locator(f'{row} ul[aria-label="Documents of unit2"] button')
    docs.first.wait_for()
    assert docs.all_inner_texts() == ["unit2/loops.md"]
    assert page.get_attribute(f'{row} button[aria-label="Documents of unit2"]', "aria-expanded") == "true"
    shot(page, "25-collection-documents-light")
    docs.first.click()
    page.wait_for_function("() => (window.jupyterapp.shell.currentWidget?.title.label || '')"
                           " === 'loops.md'")
    close_all_documents(page)
    show_section(page, "collections")
    page.click(f'{row} button[aria-label="Delete collection unit2"]')
    page.click(".jp-Dialog .jp-mod-reject")  # Cancel keeps it
    assert page.is_visible(row)
    page.click(f'{row} button[aria-label="Delete collection unit2"]')
    page.click(".jp-Dialog .jp-mod-warn")
    page.wait_for_selector(row, state="detached")
    names = [c["name"] for c in lab.api("GET", "llm/api/collections")["collections"]]
    assert "unit2" not in names


def test_the_model_list_puts_the_teachers_models_first_and_offers_only_what_works(lab_page, lab):
    """The teacher's own registry models come first with their description and licence;
    "Set as default" only on installed chat models; remote models without a key are marked
    and left out of the chat picker; a new default reaches a chat picker already touched;
    deleting a model asks first."""
    page = lab_page
    ensure_installed(lab, page, "tiny-chat")
    show_section(page, "models")
    rows = page.locator(f"{PANEL} .jp-llm-model")
    shown = [(rows.nth(i).get_attribute("data-model-id"), rows.nth(i).get_attribute("data-state"))
             for i in range(rows.count())]
    own = {"tiny-chat", "tiny-slow", "tiny-other"}
    last_own = max(i for i, (m, _) in enumerate(shown) if m in own)
    ahead = [m for m, state in shown[:last_own] if m not in own]
    assert all(dict(shown)[m] in ("installed", "loaded") for m in ahead), shown
    first = page.locator(model_row("tiny-chat"))
    assert "A tiny random model" in first.inner_text()
    assert "licence: Apache-2.0" in first.inner_text()
    models = lab.api("GET", "llm/api/models")["models"]
    for m in models:
        buttons = page.locator(f'{model_row(m["id"])} button[data-action="default:{m["id"]}"]')
        chat_ready = (m["state"] in ("installed", "loaded") if m["backend"] == "llama_cpp"
                      else m.get("usable", True))
        wants = chat_ready and "EMBEDDING" not in m.get("tags", [])
        if buttons.count() != int(wants):
            raise AssertionError(f"{m['id']} ({m['state']}): Set as default shown "
                                 f"{buttons.count()} time(s)")
    keyless = [m for m in models if m["backend"] != "llama_cpp" and m.get("usable") is False]
    if keyless:
        row = page.locator(model_row(keyless[0]["id"]))
        assert "no API key" in row.inner_text() and row.locator("[data-key-missing]").count()
        options = page.eval_on_selector_all('select[aria-label="Model"] option',
                                            "os => os.map(o => o.value)")
        assert keyless[0]["id"] not in options
    for theme in ("light", "dark"):
        set_theme(page, theme)
        shot(page, f"26-models-{theme}")
    set_theme(page, "light")

    show_section(page, "chat")
    page.select_option('select[aria-label="Model"]', "")  # the teacher touched the picker
    show_section(page, "models")
    try:
        page.click(f'{model_row("tiny-chat")} button[data-action="default:tiny-chat"]')
        page.wait_for_selector(f"{model_row('tiny-chat')} .jp-llm-default")
        assert page.input_value('select[aria-label="Model"]') == "tiny-chat"
    finally:
        lab.api("PUT", SETTINGS, {"raw": "{}"})

    ensure_installed(lab, page, "tiny-other")
    delete = f'{model_row("tiny-other")} button[aria-label="Delete tiny-other"]'
    page.click(delete)
    page.click(".jp-Dialog .jp-mod-reject")
    assert lab.api("GET", "llm/api/models/tiny-other")["state"] == "installed"
    page.click(delete)
    page.click(".jp-Dialog .jp-mod-warn")
    page.wait_for_selector(f"{model_row('tiny-other')}[data-state='available']")


SEEDED = [{
    "question": "How do I add an item to a list?",
    "label": "tiny-chat", "model": "tiny-chat", "note": "tiny-chat · 20 tokens",
    "citations": [],
    "answer": "Call `numbers.append(value)` to add one item at the end of the list:\n\n"
              "```python\nnumbers = [1, 2]\nnumbers.append(3)\n```\n",
}]


def conversation_key(page: Any) -> str:
    """The browser storage key of the open conversation's id (the chat's ``storageKey``)."""
    return page.evaluate("""() => 'jupyter-llm:conversation:' + new URL(JSON.parse(
        document.getElementById('jupyter-config-data').textContent).baseUrl, location.href).href""")


def test_the_conversation_survives_a_reload_and_code_blocks_copy_insert_and_replace(
        lab_page, lab):
    """A reload shows the saved conversation again; a code block's buttons copy it (with feedback)
    and insert it below or in place of the active cell, with provenance metadata; code is
    never broken mid-identifier; the message box comes before the answers in Tab order."""
    page = lab_page
    messages = [m for t in SEEDED for m in (
        {"role": "user", "content": t["question"]},
        {"role": "assistant", "content": t["answer"], "model": t["model"], "label": t["label"],
         "note": t["note"], "citations": t["citations"]})]
    saved = lab.api("POST", "llm/api/conversations", {"messages": messages})
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [conversation_key(page), saved["id"]])
    notebook = {"type": "notebook", "format": "json", "content": {
        "cells": [{"cell_type": "code", "source": "old = True", "metadata": {}, "outputs": [],
                   "execution_count": None}],
        "metadata": KERNELSPEC, "nbformat": 4, "nbformat_minor": 5}}
    lab.api("PUT", "api/contents/code.ipynb", notebook)
    open_lab(page, lab)  # a reload
    show_section(page, "chat")
    answer = "#jp-llm-section-chat .jp-llm-assistant:last-of-type"
    page.wait_for_selector(f"{answer} pre")
    assert "numbers.append(3)" in page.inner_text(f"{answer} pre")
    code = page.locator(f"{answer} .jp-RenderedMarkdown p code").first
    assert code.evaluate("c => c.getClientRects().length") == 1  # not split mid-identifier

    order = page.evaluate("""() => [...document.querySelectorAll(
        '#jp-llm-section-chat button, #jp-llm-section-chat textarea')]
        .map(e => e.getAttribute('aria-label'))""")
    assert order.index("Message") < order.index("Copy answer")

    page.click(f'{answer} button[aria-label="Copy answer"]')
    assert page.inner_text(f'{answer} button[aria-label="Copy answer"]') == "Copied"
    page.click(f'{answer} button[aria-label="Copy code"]')
    assert page.inner_text(f'{answer} button[aria-label="Copy code"]') == "Copied"
    assert "numbers.append(3)" in page.evaluate("navigator.clipboard.readText()")

    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', "
                  "{path: 'code.ipynb', kernel: {name: null}}).then(() => true)")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    page.click(f'{answer} button[aria-label="Insert code in a new cell below"]')
    page.click(f'{answer} button[aria-label="Replace the active cell with code"]')
    for theme in ("light", "dark"):
        set_theme(page, theme)
        shot(page, f"27-code-block-{theme}")
    set_theme(page, "light")
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save').then(() => true)")
    cells = lab.api("GET", "api/contents/code.ipynb")["content"]["cells"]
    assert ["".join(c["source"]) for c in cells] == [
        "old = True", "numbers = [1, 2]\nnumbers.append(3)"]
    provenance = cells[1]["metadata"]["jupyter_llm"]
    assert provenance["model"] == "tiny-chat" and provenance["created"]
    assert provenance["question"] == SEEDED[0]["question"]
    close_all_documents(page)


def test_ask_about_this_cell_drafts_a_question_with_its_error(lab_page, lab):
    """"LLM: Ask About This Cell" puts the active cell's code and its error in the message
    box, ready to send."""
    page = lab_page
    notebook = {"type": "notebook", "format": "json", "content": {
        "cells": [{"cell_type": "code", "source": "numbers.apend(3)", "metadata": {},
                   "execution_count": 1, "outputs": [{
                       "output_type": "error", "ename": "AttributeError",
                       "evalue": "'list' object has no attribute 'apend'", "traceback": []}]}],
        "metadata": KERNELSPEC, "nbformat": 4, "nbformat_minor": 5}}
    lab.api("PUT", "api/contents/broken.ipynb", notebook)
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', "
                  "{path: 'broken.ipynb', kernel: {name: null}}).then(() => true)")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    page.evaluate("window.jupyterapp.commands.execute('jupyter-llm:ask-about-cell')")
    page.wait_for_function("document.activeElement?.getAttribute('aria-label') === 'Message'")
    draft = page.input_value('textarea[aria-label="Message"]')
    assert draft.startswith("Why does this cell fail")
    assert "numbers.apend(3)" in draft and "AttributeError" in draft
    for theme in ("light", "dark"):
        set_theme(page, theme)
        shot(page, f"28-ask-about-cell-{theme}")
    page.fill('textarea[aria-label="Message"]', "")
    close_all_documents(page)


def test_saved_conversations_survive_a_reload_reopen_export_to_a_notebook_and_delete(
        lab_page, lab):
    """Each answer is saved on the server: a reload reopens the conversation, the list shows
    it, New chat starts another, Open brings it back, Export writes a notebook (questions and
    answers as markdown, code as code cells) and opens it, Delete asks first."""
    page = lab_page
    ensure_installed(lab, page, "tiny-chat")
    for old in lab.api("GET", "llm/api/conversations")["conversations"]:
        lab.api("DELETE", f"llm/api/conversations/{old['id']}")
    show_section(page, "chat")
    page.click('#jp-llm-section-chat button[aria-label="Start a new chat"]')
    chat(page, "What is a list in Python?", model="tiny-chat")
    page.wait_for_selector(f"{ANSWER}[aria-busy='false']")
    page.wait_for_function("document.querySelector('#jp-llm-section-chat')"
                           ".dataset.conversation")
    cid = page.evaluate("document.querySelector('#jp-llm-section-chat').dataset.conversation")
    saved = lab.api("GET", f"llm/api/conversations/{cid}")
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][0]["content"] == "What is a list in Python?"
    answer_text = saved["messages"][1]["content"]

    open_lab(page, lab)  # a reload: the server's copy comes back
    show_section(page, "chat")
    page.wait_for_selector(f"#jp-llm-section-chat[data-conversation='{cid}'] {ANSWER.split()[-1]}")
    assert "What is a list in Python?" in page.inner_text("#jp-llm-section-chat .jp-llm-user")

    # a second conversation, then the list shows both, newest first
    page.click('#jp-llm-section-chat button[aria-label="Start a new chat"]')
    assert page.locator("#jp-llm-section-chat .jp-llm-message").count() == 0
    chat(page, "How do I print?", model="tiny-chat")
    page.wait_for_selector(f"{ANSWER}[aria-busy='false']")
    page.wait_for_function(f"""document.querySelector('#jp-llm-section-chat').dataset
        .conversation && document.querySelector('#jp-llm-section-chat').dataset
        .conversation !== '{cid}'""")
    page.click('button[aria-label="Show saved conversations"]')
    items = "#jp-llm-section-chat .jp-llm-conversation"
    page.wait_for_function(f"document.querySelectorAll('{items}').length === 2")
    titles = page.locator(f"{items} .jp-llm-conversation-title").all_inner_texts()
    assert titles == ["How do I print?", "What is a list in Python?"]
    for theme in ("light", "dark"):
        set_theme(page, theme)
        shot(page, f"29-saved-conversations-{theme}")
    set_theme(page, "light")

    page.click('button[aria-label="Open conversation: What is a list in Python?"]')
    page.wait_for_selector(f"#jp-llm-section-chat[data-conversation='{cid}']")
    assert page.locator("#jp-llm-section-chat .jp-llm-user").count() == 1
    assert "What is a list in Python?" in page.inner_text("#jp-llm-section-chat .jp-llm-user")

    page.click('button[aria-label="Export conversation to a notebook: What is a list in Python?"]')
    page.wait_for_selector("#jp-llm-section-chat .jp-llm-conversations-status:has-text('Exported')")
    path = page.inner_text("#jp-llm-section-chat .jp-llm-conversations-status").split(" to ")[-1]
    assert path.endswith(".ipynb") and (lab.root / path).is_file()
    nb = json.loads((lab.root / path).read_text())
    assert nb["cells"][1]["cell_type"] == "markdown"
    assert nb["cells"][1]["source"] == "**You:** What is a list in Python?"
    assert answer_text.strip()[:20] in "".join(c["source"] for c in nb["cells"][2:])
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell:has-text('What is a list in Python?')")
    close_all_documents(page)

    page.click('button[aria-label="Delete conversation: How do I print?"]')
    page.click(".jp-Dialog button:has-text('Delete')")
    page.wait_for_function(f"document.querySelectorAll('{items}').length === 1")
    remaining = lab.api("GET", "llm/api/conversations")["conversations"]
    assert [c["id"] for c in remaining] == [cid]
