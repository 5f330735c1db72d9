"""End-to-end tests of the JupyterLab side panel: Playwright drives Debian Chromium against a
real ``jupyter lab`` whose registry serves a tiny generated model from a local HTTP server.

Screenshots land in ``test-results/lab/*.png``. Chromium comes from the system
(``apt-get install -y chromium``); the browser tests skip only when it is absent. The
packaging and docs checks at the top need no browser.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.fixtures import COURSE
from tests.lab.helpers import (
    PANEL,
    REPO,
    TAB,
    close_all_documents,
    ensure_installed,
    ensure_not_installed,
    model_row,
    open_lab,
    record,
    shot,
    show_section,
)
from tests.lab.server import LabServer, labextension_installed


def test_the_labextension_is_installed_and_enabled_with_the_package_version():
    """`pip install -e .` builds the extension and `jupyter labextension list` shows it OK."""
    import jupyter_llm

    assert labextension_installed() is not None, "run `pip install -e .` to build it"
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                         capture_output=True, text=True, timeout=120)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    line = next((ln for ln in listing.splitlines() if ln.strip().startswith("jupyter-llm ")), "")
    assert line.split()[:4] == ["jupyter-llm", f"v{jupyter_llm.__version__}", "enabled", "OK"], \
        listing
    package = json.loads((REPO / "labextension" / "package.json").read_text())
    assert package["version"] == jupyter_llm.__version__


def test_every_command_and_setting_is_documented():
    """docs/lab.md names every command id the plugin registers and every setting."""
    docs = (REPO / "docs" / "lab.md").read_text()
    source = (REPO / "labextension" / "src" / "index.ts").read_text()
    commands = re.findall(r"= '(jupyter-llm:[a-z-]+)';", source)
    assert len(commands) >= 7
    settings = json.loads((REPO / "labextension" / "schema" / "plugin.json").read_text())
    names = [f"`{c}`" for c in commands] + [f"`{k}`" for k in settings["properties"]]
    assert [n for n in names if n not in docs] == []


def test_panel_opens_with_three_sections_keyboard_tabs_labels_and_both_themes(lab_page, lab):
    page = lab_page
    """One sidebar tab holds Models, Chat and Collections; arrow keys move between the tabs;
    every control has an accessible name; the theme variables follow light and dark."""
    ensure_not_installed(lab, page, "tiny-chat")
    tabs = page.locator(f"{PANEL} [role=tab]")
    assert tabs.all_inner_texts() == ["Models", "Chat", "Collections", "Class"]
    row = page.locator(model_row("tiny-chat"))
    assert row.get_attribute("data-state") == "available"
    assert "CONVERSATIONAL" in row.inner_text()

    page.fill('input[aria-label="Search models"]', "tiny")
    assert page.locator(f"{PANEL} .jp-llm-model").count() == 3
    page.select_option('select[aria-label="Filter models by tag"]', "EMBEDDING")
    assert page.locator(f"{PANEL} .jp-llm-model").count() == 0
    page.select_option('select[aria-label="Filter models by tag"]', "")
    page.fill('input[aria-label="Search models"]', "")

    from playwright.sync_api import expect  # the lab_page fixture skips without Playwright

    # Locator.press focuses the tab and sends the key in one step, so JupyterLab moving focus
    # elsewhere in between (a late layout restore) cannot swallow the key.
    page.locator("#jp-llm-tab-models").press("ArrowRight")
    expect(page.locator("#jp-llm-tab-chat")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#jp-llm-tab-chat")).to_be_focused()
    page.locator("#jp-llm-tab-chat").press("End")
    expect(page.locator("#jp-llm-tab-class")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#jp-llm-tab-class")).to_be_focused()
    page.locator("#jp-llm-tab-class").press("Home")
    expect(page.locator("#jp-llm-tab-models")).to_have_attribute("aria-selected", "true")

    unlabeled = page.evaluate(
        """(panel) => [...document.querySelectorAll(panel + ' button, ' + panel + ' input, '
              + panel + ' select, ' + panel + ' textarea')]
            .filter(el => !(el.getAttribute('aria-label') || el.textContent.trim()
                            || (el.id && document.querySelector(`label[for="${el.id}"]`))))
            .map(el => el.outerHTML.slice(0, 80))""", PANEL)
    assert unlabeled == []
    light = page.evaluate(f"getComputedStyle(document.querySelector('{PANEL}')).backgroundColor")
    shot(page, "01-panel-models-light")

    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Dark'})")
    page.wait_for_function(
        f"getComputedStyle(document.querySelector('{PANEL}')).backgroundColor !== '{light}'")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    shot(page, "02-panel-models-dark")
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Light'})")
    page.wait_for_function(
        f"getComputedStyle(document.querySelector('{PANEL}')).backgroundColor === '{light}'")


def test_download_shows_live_progress_to_100_percent_then_load_shows_memory(lab_page, lab):
    page = lab_page
    """Download streams progress into the row's bar up to 100%; Load then shows the memory."""
    ensure_not_installed(lab, page, "tiny-chat")
    row = model_row("tiny-chat")
    bar = f"{row} [role=progressbar]"
    record(page, bar, "aria-valuenow", "__pullProgress")
    page.click(f'{row} button[aria-label="Download tiny-chat"]')
    page.wait_for_selector(f"{row} .jp-llm-progress-label:has-text('100%')")
    page.wait_for_selector(f"{row}[data-state='installed']")
    values = [int(v) for v in page.evaluate("window.__pullProgress")]
    assert values[-1] == 100
    assert any(0 < v < 100 for v in values), values  # live progress, not a jump
    assert values == sorted(values)
    shot(page, "03-downloaded")

    page.click(f'{row} button[aria-label="Load tiny-chat"]')
    page.wait_for_selector(f"{row}[data-state='loaded']")
    memory = page.inner_text(f"{row} .jp-llm-memory")
    assert memory.startswith("In memory: ") and "?" not in memory
    assert "1 loaded" in page.inner_text(f"{PANEL} .jp-llm-summary")
    shot(page, "04-loaded")


def test_cancel_stops_a_download_and_the_partial_file_resumes(lab_page, lab):
    page = lab_page
    """Cancel stops a running download; the model is available again and no error is shown."""
    show_section(page, "models")
    row = model_row("tiny-slow")
    page.click(f'{row} button[aria-label="Download tiny-slow"]')
    page.wait_for_selector(f"{row}[data-state='downloading'] button[aria-label='Cancel tiny-slow']")
    page.wait_for_function(
        "(bar) => Number(document.querySelector(bar)?.getAttribute('aria-valuenow')) > 0",
        arg=f"{row} [role=progressbar]")
    page.click(f'{row} button[aria-label="Cancel tiny-slow"]')
    page.wait_for_selector(f"{row} .jp-llm-progress-label:has-text('Cancelled')")
    page.wait_for_selector(f"{row}[data-state='available']")
    assert page.is_hidden("#jp-llm-section-models .jp-llm-error")
    assert lab.api("GET", "llm/api/downloads")["downloads"] == []
    shot(page, "05-cancelled")


def test_chat_streams_the_answer_as_markdown(lab_page, lab):
    page = lab_page
    """A question streams its answer into a rendered markdown message, with stats and the
    copy and insert buttons once done."""
    ensure_installed(lab, page, "tiny-chat")
    show_section(page, "chat")
    page.select_option('select[aria-label="Model"]', "tiny-chat")
    answer = "#jp-llm-section-chat .jp-llm-assistant:last-of-type"
    record(page, f"{answer}[aria-busy='true'] .jp-llm-message-body", None, "__chatLengths")
    page.fill('textarea[aria-label="Message"]', "What does ls do?")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{answer}[aria-busy='false']")
    lengths = page.evaluate("window.__chatLengths")
    assert len([n for n in lengths if n > 0]) >= 2, lengths  # it grew while streaming
    assert page.locator(f"{answer} .jp-RenderedMarkdown").count() == 1
    assert page.inner_text(f"{answer} .jp-llm-message-body").strip()
    assert "tokens" in page.inner_text(f"{answer} .jp-llm-stats")
    assert page.is_visible(f'{answer} button[aria-label="Copy answer"]')
    assert page.is_visible(f'{answer} button[aria-label="Insert answer into notebook"]')
    assert page.is_hidden("#jp-llm-section-chat .jp-llm-error")
    shot(page, "06-chat")


def test_insert_into_notebook_adds_the_answer_as_a_markdown_cell(lab_page, lab):
    """Without a notebook the panel says to open one; with one, the answer becomes a
    markdown cell below the active cell."""
    page = lab_page
    ensure_installed(lab, page, "tiny-chat")
    show_section(page, "chat")
    page.select_option('select[aria-label="Model"]', "tiny-chat")
    page.fill('textarea[aria-label="Message"]', "Say something.")
    page.keyboard.press("Enter")
    answer = "#jp-llm-section-chat .jp-llm-assistant:last-of-type"
    page.wait_for_selector(f"{answer}[aria-busy='false']")
    page.click(f'{answer} button[aria-label="Insert answer into notebook"]')
    error = page.wait_for_selector("#jp-llm-section-chat .jp-llm-error", state="visible")
    assert "Open a notebook first" in error.inner_text()
    page.click('#jp-llm-section-chat button[aria-label="Dismiss error"]')

    notebook = {"type": "notebook", "format": "json", "content": {
        "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [],
                   "execution_count": None}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}}
    assert lab.api("PUT", "api/contents/scratch.ipynb", notebook)["name"] == "scratch.ipynb"
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', "
                  "{path: 'scratch.ipynb', kernel: {name: null}}).then(() => true)")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    page.click(f'{answer} button[aria-label="Insert answer into notebook"]')
    cell = ".jp-NotebookPanel .jp-MarkdownCell .jp-RenderedMarkdown"
    page.wait_for_function("(c) => document.querySelector(c)?.innerText.trim()", arg=cell)
    assert page.is_hidden("#jp-llm-section-chat .jp-llm-error")
    shot(page, "07-inserted-into-notebook")
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save').then(() => true)")
    saved = lab.api("GET", "api/contents/scratch.ipynb")["content"]["cells"]
    assert [c["cell_type"] for c in saved] == ["code", "markdown"]
    # The cell's source is exactly the answer (compared as text: the notebook typesets
    # `$...$` as math, so the random tiny model's rendered output may differ).
    last = lab.api("GET", "llm/api/history?limit=1")["entries"][0]
    assert "".join(saved[1]["source"]) == last["response"] != ""
    close_all_documents(page)


def test_unknown_model_error_is_shown_in_the_panel(lab_page, lab):
    page = lab_page
    """A default model that the server does not know ends in the server's own message."""
    route = "lab/api/settings/jupyter-llm:plugin"
    assert lab.api("PUT", route, {"raw": json.dumps({"defaultModel": "no-such-model"})}) == {}
    try:
        open_lab(page, lab)
        show_section(page, "chat")
        assert page.input_value('select[aria-label="Model"]') == "no-such-model"
        page.fill('textarea[aria-label="Message"]', "Hello?")
        page.click('button[aria-label="Send message"]')
        error = page.wait_for_selector("#jp-llm-section-chat .jp-llm-error[role=alert]",
                                       state="visible")
        assert error.get_attribute("data-type") == "unknown_model"
        assert "no-such-model" in error.inner_text()
        shot(page, "08-unknown-model-error")
    finally:
        lab.api("PUT", route, {"raw": "{}"})
    page.click('#jp-llm-section-chat button[aria-label="Dismiss error"]')
    assert page.is_hidden("#jp-llm-section-chat .jp-llm-error")


def collections_missing(lab: LabServer) -> str | None:
    """Why grounding cannot be tested against this server (None when it can)."""
    answer = lab.api("GET", "llm/api/collections")
    if isinstance(answer, dict) and "collections" in answer:
        return None
    message = answer.get("error", {}).get("message", answer) if isinstance(answer, dict) else answer
    return f"the server does not serve llm/api/collections yet ({message})"


def test_grounded_chat_citation_opens_the_source_at_the_cited_lines(lab_page, lab):
    page = lab_page
    """Add a folder through the file browser's "Add to collection", watch the ingest, ground
    the chat on it, and click a citation: the source opens with the cited lines selected."""
    reason = collections_missing(lab)
    if reason:
        pytest.skip(reason)
    ensure_installed(lab, page, "tiny-chat")
    page.click('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="filebrowser"]')
    item = page.locator('.jp-DirListing-item[data-isdir="true"]:has-text("course")')
    item.click(button="right")
    page.click('.lm-Menu-item:has-text("Add to Collection")')
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("course")
    dialog.locator(".jp-mod-accept").click()
    if not page.is_visible(PANEL):
        page.click(TAB)
    ingest = '.jp-llm-ingest[data-collection="course"]'
    page.wait_for_selector(f"{ingest}[data-status]", timeout=180_000)
    assert page.get_attribute(ingest, "data-status") == "done", page.inner_text(
        "#jp-llm-section-collections")
    page.wait_for_selector('#jp-llm-section-collections li[data-collection="course"]')
    shot(page, "09-collection-ingested")

    page.fill('input[aria-label="Search query"]', "list files")
    page.click('button[aria-label="Search collection"]')
    page.wait_for_selector("#jp-llm-section-collections .jp-llm-result")
    assert "shell.md" in page.inner_text("#jp-llm-section-collections .jp-llm-results")

    page.click('#jp-llm-section-collections li[data-collection="course"] '
               'button[aria-label="Chat with course"]')
    assert page.input_value('select[aria-label="Ground answers on a collection"]') == "course"
    page.select_option('select[aria-label="Model"]', "tiny-chat")
    page.fill('textarea[aria-label="Message"]', "How do I list the files in a folder?")
    page.keyboard.press("Enter")
    answer = "#jp-llm-section-chat .jp-llm-assistant:last-of-type"
    page.wait_for_selector(f"{answer}[aria-busy='false']", timeout=120_000)
    assert page.is_hidden("#jp-llm-section-chat .jp-llm-error"), page.inner_text(
        "#jp-llm-section-chat .jp-llm-error")
    citation = page.locator(f"{answer} .jp-llm-citation").first
    label = citation.inner_text()
    assert ".md" in label
    shot(page, "10-grounded-answer")

    name = Path(citation.get_attribute("data-path")).name
    start = int(citation.get_attribute("data-start-line"))
    citation.click()
    page.wait_for_selector(f".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:has-text('{name}')")
    page.wait_for_selector(".jp-FileEditor .cm-content")
    selection = page.evaluate("""() => {
        const editor = window.jupyterapp.shell.currentWidget.content.editor;
        const s = editor.getSelection();
        return {start: s.start.line, end: s.end.line, text: editor.getLine(s.start.line)};
    }""")
    assert selection["start"] == start - 1  # the cited lines are selected
    assert selection["text"] == COURSE[name].splitlines()[start - 1]
    shot(page, "11-citation-opened")
