"""What the browser tests of the lab panel share: selectors, screenshots, themes, and
measurements made in the page (text contrast, where a line sits in an editor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.lab.server import LabServer

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-results" / "lab"
PANEL = ".jp-llm-Panel"
TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jupyter-llm-panel"]'
TIMEOUT_MS = 60_000
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
ANSWER = "#jp-llm-section-chat .jp-llm-assistant:last-of-type"

__all__ = ["ANSWER", "ARTIFACTS", "PANEL", "REPO", "TAB", "THEMES", "TIMEOUT_MS",
           "close_all_documents", "contrast", "ensure_installed", "ensure_not_installed",
           "line_in_view", "model_row",
           "open_lab", "record", "set_theme", "shot", "show_section"]


def model_row(model_id: str) -> str:
    """The selector of a model's row in the Models section."""
    return f'.jp-llm-model[data-model-id="{model_id}"]'


def shot(page: Any, name: str) -> Path:
    """Save screenshots as test artifacts: the whole page (``NAME.png``) and, when the panel
    is open, the left sidebar with the panel (``NAME-panel.png``, small enough for docs)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    box = page.locator(PANEL).bounding_box() if page.is_visible(PANEL) else None
    if box:
        page.screenshot(path=str(ARTIFACTS / f"{name}-panel.png"), clip={
            "x": 0, "y": 0, "width": box["x"] + box["width"] + 2,
            "height": box["y"] + box["height"]})
    return path


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
    if not page.is_visible(PANEL):
        page.click(TAB)
    page.click(f"#jp-llm-tab-{name}")
    page.wait_for_selector(f"#jp-llm-section-{name}:not(.lm-mod-hidden)")


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab to the ``light`` or ``dark`` theme and wait until it is applied."""
    name = THEMES[theme]
    page.evaluate("(name) => window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: name}).then(() => true)", name)
    want = "false" if theme == "dark" else "true"
    page.wait_for_function(
        "(want) => document.body.dataset.jpThemeLight === want && "
        "!document.querySelector('#jupyterlab-splash')", arg=want)
    page.wait_for_timeout(300)  # the theme's stylesheet is applied in the next frame


def ensure_installed(lab: LabServer, page: Any, model_id: str) -> None:
    """Make sure the model is installed (through the REST API), and refresh the panel."""
    result = lab.api("POST", "llm/api/pull", {"model": model_id, "stream": False}, timeout=120)
    assert result.get("status") == "done", result
    show_section(page, "models")
    page.click('button[aria-label="Refresh models"]')
    page.wait_for_selector(f"{model_row(model_id)}:not([data-state='available'])")


def ensure_not_installed(lab: LabServer, page: Any, model_id: str) -> None:
    """Delete the model if an earlier test installed it (the lab server is shared by every
    browser test), and refresh the panel."""
    if lab.api("GET", f"llm/api/models/{model_id}").get("state") not in (None, "available"):
        lab.api("DELETE", f"llm/api/models/{model_id}")
    show_section(page, "models")
    page.click('button[aria-label="Refresh models"]')
    page.wait_for_selector(f"{model_row(model_id)}[data-state='available']")


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


_CONTRAST_JS = """(selector) => {
  const el = document.querySelector(selector);
  if (!el) return null;
  // Any CSS colour (rgb(), color(srgb …), color-mix() results) through a canvas, as RGBA.
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = '#000';
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, bottom) => top.slice(0, 3).map((c, i) => c * top[3] + bottom[i] * (1 - top[3]));
  // The backdrop: the element's and its ancestors' backgrounds, composed from the page up.
  const layers = [];
  for (let n = el; n; n = n.parentElement) {
    const bg = rgba(getComputedStyle(n).backgroundColor);
    if (bg[3] > 0) layers.push(bg);
    if (bg[3] >= 1) break;
  }
  let back = [255, 255, 255];
  for (const layer of layers.reverse()) back = over(layer, back);
  const fore = over(rgba(getComputedStyle(el).color), back);
  const lum = (c) => {
    const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [a, b] = [lum(fore), lum(back)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), fore, back};
}"""


def contrast(page: Any, selector: str) -> float:
    """The WCAG contrast ratio of the text of ``selector`` against its actual backdrop."""
    result = page.evaluate(_CONTRAST_JS, selector)
    assert result is not None, f"{selector} is not in the page"
    return float(result["ratio"])


def line_in_view(page: Any, line: int) -> dict[str, float]:
    """Where 0-based ``line`` of the current file editor sits in its visible part: ``top``
    and ``bottom`` as fractions of the editor's visible height (0 = top edge, 1 = bottom)."""
    return page.evaluate(
        """(line) => {
          const widget = window.jupyterapp.shell.currentWidget;
          const editor = widget.content.editor;
          const scroller = widget.node.querySelector('.cm-scroller');
          const view = scroller.getBoundingClientRect();
          const at = editor.getCoordinateForPosition({line, column: 0});
          if (!at) return {top: -1, bottom: -1};
          return {top: (at.top - view.top) / view.height,
                  bottom: (at.bottom - view.top) / view.height};
        }""", line)


def close_all_documents(page: Any) -> None:
    """Close every open document, answering a "save changes?" dialog by discarding."""
    page.evaluate("window.jupyterapp.commands.execute('application:close-all')")
    for _ in range(60):
        if page.query_selector(".jp-NotebookPanel, .jp-FileEditor") is None:
            return
        discard = page.query_selector(".jp-Dialog .jp-Dialog-button.jp-mod-warn")
        if discard is not None:
            discard.click()
        page.wait_for_timeout(500)
    page.wait_for_selector(".jp-NotebookPanel", state="detached", timeout=5000)
