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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_llm.testing.tiny_gguf import sha256_file, write_tiny_gguf
from tests.fixtures.http_server import LocalHTTPServer
from tests.lab.server import (
    LAUNCH_ARGS,
    LabServer,
    chromium_path,
    labextension_installed,
    start_lab,
)

CHROMIUM = chromium_path()
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-results" / "lab"
PANEL = ".jp-llm-Panel"
TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jupyter-llm-panel"]'
TIMEOUT_MS = 60_000

COURSE = {
    "shell.md": """# The Unix shell

## Listing files

The `ls` command lists the files in the current directory.
Use `ls -l` to see sizes and dates, and `ls -a` to show hidden files.

## Moving around

The `cd` command changes the working directory.
`pwd` prints the working directory.
""",
    "git.md": """# Version control with git

## Recording changes

`git add` stages a change and `git commit` records the staged changes in the history.
Write a short commit message that says why the change was made.
""",
}


def model_row(model_id: str) -> str:
    """The selector of a model's row in the Models section."""
    return f'.jp-llm-model[data-model-id="{model_id}"]'


def shot(page: Any, name: str) -> Path:
    """Save a screenshot of the whole page as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


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


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local HTTP server with a ~5 MB tiny model (big enough for several progress events);
    ``/slow.gguf`` trickles the same bytes slowly, for cancelling."""
    folder = tmp_path_factory.mktemp("model")
    gguf = write_tiny_gguf(folder / "tiny.gguf", n_embd=256, n_layer=4)
    server = LocalHTTPServer()
    server.serve("/tiny.gguf", file=gguf, chunk_size=64 * 1024, chunk_delay=0.02)
    server.serve("/slow.gguf", file=gguf, chunk_size=64 * 1024, chunk_delay=0.25)
    entry = {"backend": "llama_cpp", "sha256": sha256_file(gguf),
             "size_bytes": gguf.stat().st_size, "tags": ["CONVERSATIONAL"]}
    yield {"server": server, "models": [
        {"id": "tiny-chat", "name": "Tiny chat", "url": server.url("/tiny.gguf"), **entry},
        {"id": "tiny-slow", "name": "Tiny slow", "url": server.url("/slow.gguf"), **entry},
    ]}
    server.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, model_server: dict[str, Any]) -> Iterator[LabServer]:
    """A running ``jupyter lab`` with the panel installed and a course folder to ingest."""
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium; `make "
                    "install` does it): the lab panel browser tests need it")
    if labextension_installed() is None:
        pytest.fail("The jupyter-llm labextension is not installed: run `pip install -e .` "
                    "(or `make install`), which builds it with node.")
    base = tmp_path_factory.mktemp("lab")
    course = base / "root" / "course"
    course.mkdir(parents=True)
    for name, text in COURSE.items():
        (course / name).write_text(text)
    server = start_lab(base, model_server["models"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab_page(lab: LabServer) -> Iterator[Any]:
    """One Chromium page on JupyterLab, with the LLM panel open."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        pg = context.new_page()
        open_lab(pg, lab)
        yield pg
        context.close()
        browser.close()


def open_lab(page: Any, lab: LabServer) -> None:
    """Load JupyterLab, wait for it to start, and open the LLM panel on its Models section."""
    page.goto(lab.lab_url)
    page.wait_for_function("() => !!window.jupyterapp")
    page.evaluate("window.jupyterapp.restored.then(() => true)")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    if not page.is_visible(PANEL):  # the restored layout may have it open already
        page.click(TAB)
    show_section(page, "models")
    page.wait_for_selector(f"{PANEL} {model_row('tiny-chat')}")


def show_section(page: Any, name: str) -> None:
    """Click a section's tab in the panel."""
    page.click(f"#jp-llm-tab-{name}")
    page.wait_for_selector(f"#jp-llm-section-{name}:not(.lm-mod-hidden)")


def ensure_installed(lab: LabServer, page: Any, model_id: str) -> None:
    """Make sure the model is installed (through the REST API), and refresh the panel."""
    result = lab.api("POST", "llm/api/pull", {"model": model_id, "stream": False}, timeout=120)
    assert result.get("status") == "done", result
    show_section(page, "models")
    page.click('button[aria-label="Refresh models"]')
    page.wait_for_selector(f"{model_row(model_id)}:not([data-state='available'])")


def record(page: Any, selector: str, attribute: str | None, key: str) -> None:
    """Start recording, in the page, each value of ``selector``'s attribute (or text length)."""
    page.evaluate(
        """([selector, attribute, key]) => {
          window[key] = [];
          const note = () => {
            const el = document.querySelector(selector);
            if (!el) return;
            const v = attribute ? el.getAttribute(attribute) : el.textContent.length;
            const values = window[key];
            if (v !== null && values[values.length - 1] !== v) values.push(v);
          };
          new MutationObserver(note).observe(document.body,
            {subtree: true, childList: true, attributes: true, characterData: true});
        }""",
        [selector, attribute, key],
    )


def test_panel_opens_with_three_sections_keyboard_tabs_labels_and_both_themes(lab_page, lab):
    page = lab_page
    """One sidebar tab holds Models, Chat and Collections; arrow keys move between the tabs;
    every control has an accessible name; the theme variables follow light and dark."""
    tabs = page.locator(f"{PANEL} [role=tab]")
    assert tabs.all_inner_texts() == ["Models", "Chat", "Collections"]
    row = page.locator(model_row("tiny-chat"))
    assert row.get_attribute("data-state") == "available"
    assert "CONVERSATIONAL" in row.inner_text()

    page.fill('input[aria-label="Search models"]', "tiny")
    assert page.locator(f"{PANEL} .jp-llm-model").count() == 2
    page.select_option('select[aria-label="Filter models by tag"]', "EMBEDDING")
    assert page.locator(f"{PANEL} .jp-llm-model").count() == 0
    page.select_option('select[aria-label="Filter models by tag"]', "")
    page.fill('input[aria-label="Search models"]', "")

    page.focus("#jp-llm-tab-models")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#jp-llm-tab-chat", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "jp-llm-tab-chat"
    page.keyboard.press("End")
    assert page.get_attribute("#jp-llm-tab-collections", "aria-selected") == "true"
    page.keyboard.press("Home")
    assert page.get_attribute("#jp-llm-tab-models", "aria-selected") == "true"

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
    show_section(page, "models")
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


def close_all_documents(page) -> None:
    """Close every open document, answering a "save changes?" dialog by discarding."""
    page.evaluate("window.jupyterapp.commands.execute('application:close-all')")
    for _ in range(60):
        if page.query_selector(".jp-NotebookPanel") is None:
            return
        discard = page.query_selector(".jp-Dialog .jp-Dialog-button.jp-mod-warn")
        if discard is not None:
            discard.click()
        page.wait_for_timeout(500)
    page.wait_for_selector(".jp-NotebookPanel", state="detached", timeout=5000)


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
