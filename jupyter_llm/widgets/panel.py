"""``ModelPanel``: an ipywidgets panel over any ``Client`` (a server's or the in-process host).

The registry as a table filtered by tag and text; each model's state (available,
downloading with a live progress bar, installed, loaded); actions on the selected model
(download, cancel, delete, load, unload, set as default); and a small streaming chat box.
Slow actions run in background threads so the kernel stays responsive; ``wait()`` joins them.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from traitlets import Unicode

from ..client.base import Client
from ..display import state_label, warning_lines
from ..errors import JupyterLLMError

__all__ = ["ModelPanel", "ACTIONS"]

ACTIONS = ("download", "cancel", "delete", "load", "unload", "default")
_STATE_ICON = {"available": "○", "downloading": "↓", "installed": "●", "loaded": "▶"}


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)) or n <= 0:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _message(err: BaseException) -> str:
    if isinstance(err, JupyterLLMError):
        from ..display import error_text

        return error_text(err, "notebook")
    return f"{type(err).__name__}: {err}"


class ModelPanel(w.VBox):
    """Browse, download, load and chat with models through a ``Client``."""

    default_model = Unicode("", help="The default model (id, alias or tags: query); '' = host default.")
    error = Unicode("", help="The message of the last failed action ('' when it succeeded).")

    def __init__(self, client: Client | None = None, *, default_model: str = "",
                 on_default: Callable[[str | None], None] | None = None,
                 interval: float = 0.1, **kwargs: Any) -> None:
        if client is None:
            from ..client import connect

            client = connect()
        self.client = client
        self.on_default = on_default
        self.interval = interval
        self.models: list[dict[str, Any]] = []
        self.messages: list[dict[str, str]] = []
        self.last_response: Any = None
        self.warnings: list[str] = []  # the last answer's warnings, shown in the status line
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

        self.text = w.Text(placeholder="filter: id, name, description", description="Search")
        self.tag = w.Dropdown(options=[("all tags", "")], value="", description="Tag")
        self.table = w.HTML()
        self.select = w.Select(options=[], rows=6, description="Model",
                               layout=w.Layout(width="60%"))
        self.buttons = {
            "download": w.Button(description="Download", icon="download"),
            "cancel": w.Button(description="Cancel", icon="stop"),
            "delete": w.Button(description="Delete", icon="trash", button_style="danger"),
            "load": w.Button(description="Load", icon="play"),
            "unload": w.Button(description="Unload", icon="eject"),
            "default": w.Button(description="Set default", icon="star"),
        }
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.status = w.HTML()
        self.progress: dict[str, w.IntProgress] = {}
        self.downloads = w.VBox()
        self.prompt = w.Textarea(placeholder="Ask the default model…", layout=w.Layout(width="80%"))
        self.max_tokens = w.BoundedIntText(value=256, min=1, max=32768, description="Max tokens")
        self.send = w.Button(description="Send", icon="paper-plane", button_style="primary")
        self.stop = w.Button(description="Stop", icon="stop")
        self.clear = w.Button(description="New chat", icon="eraser")
        self.answer = w.HTML()
        self.chat_log = w.HTML()
        self.thumbs_up = w.Button(description="Helpful", icon="thumbs-up", disabled=True,
                                  tooltip="Rate the last answer as helpful")
        self.thumbs_down = w.Button(description="Not helpful", icon="thumbs-down",
                                    disabled=True, tooltip="Rate the last answer as not helpful")
        self.feedback_comment = w.Text(placeholder="Optional comment on the last answer",
                                       disabled=True)

        self.text.observe(lambda _: self._render(), "value")
        self.tag.observe(lambda _: self._render(), "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        for name, button in self.buttons.items():
            button.on_click(lambda _, name=name: self.act(name))
        self.send.on_click(lambda _: self.ask())
        self.stop.on_click(lambda _: self._stop_chat())
        self.clear.on_click(lambda _: self._new_chat())
        self.thumbs_up.on_click(lambda _: self.rate(1))
        self.thumbs_down.on_click(lambda _: self.rate(-1))

        chat = w.VBox([w.HTML("<b>Chat</b>"), self.chat_log, self.answer,
                       w.HBox([self.thumbs_up, self.thumbs_down, self.feedback_comment]),
                       w.HBox([self.prompt, w.VBox([self.send, self.stop, self.clear])]),
                       self.max_tokens])
        super().__init__([
            w.HBox([self.text, self.tag, self.refresh_button]), self.table,
            w.HBox([self.select, w.VBox(list(self.buttons.values()))]),
            self.downloads, self.status, chat], **kwargs)
        self.default_model = default_model or ""
        self.observe(lambda _: self._render(), "default_model")
        self.refresh()

    # -- the table -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the models and their states from the client again."""
        try:
            self.models = self.client.models()
        except Exception as e:  # noqa: BLE001 - shown in the panel, never raised into a click
            self._fail(e)
            return
        tags = sorted({t for m in self.models for t in m.get("tags") or []})
        current = self.tag.value
        self.tag.options = [("all tags", "")] + [(t, t) for t in tags]
        self.tag.value = current if current in tags else ""
        self._render()

    def visible(self) -> list[dict[str, Any]]:
        """The models that pass the tag and text filters."""
        words = self.text.value.lower().split()
        out = []
        for m in self.models:
            if self.tag.value and self.tag.value not in (m.get("tags") or []):
                continue
            hay = " ".join(str(m.get(k, "")) for k in ("id", "name", "description", "family",
                                                       "aliases")).lower()
            if all(word in hay for word in words):
                out.append(m)
        return out

    def state_of(self, model_id: str) -> str | None:
        """The state of a model as last read (None if unknown)."""
        for m in self.models:
            if m.get("id") == model_id:
                return m.get("state")
        return None

    def _render(self) -> None:
        rows = self.visible()
        default = self.default_model
        body = "".join(
            "<tr><td>{mark}{id}</td><td>{icon} {state}</td><td>{tags}</td><td>{size}</td>"
            "<td>{desc}</td></tr>".format(
                mark="★ " if default and default in (m.get("id"), *(m.get("aliases") or [])) else "",
                id=html.escape(str(m.get("id"))), icon=_STATE_ICON.get(m.get("state", ""), ""),
                state=html.escape(state_label(m)),
                tags=html.escape(", ".join(m.get("tags") or [])), size=_size(m.get("size_bytes")),
                desc=html.escape(str(m.get("description", ""))[:80]))
            for m in rows)
        self.table.value = ("<table class='jupyter-llm-models'><thead><tr><th>model</th>"
                            "<th>state</th><th>tags</th><th>size</th><th>description</th></tr>"
                            f"</thead><tbody>{body}</tbody></table>")
        ids = [str(m.get("id")) for m in rows]
        selected = self.select.value
        self.select.options = ids
        self.select.value = selected if selected in ids else (ids[0] if ids else None)

    # -- actions ---------------------------------------------------------------------------
    def act(self, action: str, model_id: str | None = None) -> None:
        """Run an action (one of ``ACTIONS``) on ``model_id`` or the selected model."""
        model_id = model_id or self.select.value
        if not model_id:
            self._fail(ValueError("Select a model first."))
            return
        self.error = ""
        if action == "default":
            self.default_model = model_id
            if self.on_default is not None:
                self.on_default(model_id)
            self._say(f"Default model: <code>{html.escape(model_id)}</code>")
            self._render()
        elif action == "cancel":
            cancelled = self.client.cancel_pull(model_id)
            self._say("Cancelling the download…" if cancelled else "No download is running.")
        elif action == "download":
            self._background(f"Downloading {model_id}", lambda: self._pull(model_id))
        elif action == "delete":
            self._background(f"Deleting {model_id}", lambda: self.client.remove(model_id))
        elif action == "load":
            self._background(f"Loading {model_id}", lambda: self.client.load(model_id))
        elif action == "unload":
            self._background(f"Unloading {model_id}", lambda: self.client.unload(model_id))
        else:
            raise ValueError(f"Unknown action {action!r}; use one of {', '.join(ACTIONS)}.")

    def _pull(self, model_id: str) -> None:
        bar = w.IntProgress(value=0, min=0, max=100, description=model_id[:18])
        label = w.Label("starting…")
        self.progress[model_id] = bar
        row = w.HBox([bar, label])
        self.downloads.children = (*self.downloads.children, row)
        self.refresh()

        def update(event: dict[str, Any]) -> None:
            done, total = event.get("done_bytes") or 0, event.get("total_bytes")
            if total:
                bar.value = min(100, int(100 * done / total))
            label.value = f"{_size(done) or '0 B'} / {_size(total) or '?'} {event.get('status', '')}"

        try:
            self.client.pull(model_id, progress=update)
        except BaseException:
            bar.bar_style = "danger"
            raise
        bar.value, bar.bar_style = 100, "success"

    def _background(self, label: str, work: Callable[[], Any]) -> None:
        self._say(html.escape(label) + "…")

        def run() -> None:
            try:
                work()
            except Exception as e:  # noqa: BLE001 - shown in the panel
                self._fail(e)
            else:
                notes = "".join(f"<br>⚠ {html.escape(w)}" for w in self.warnings)
                self._say(html.escape(label) + ": done." + notes)
                self.warnings = []
            self.refresh()

        thread = threading.Thread(target=run, daemon=True, name="jupyter-llm-panel")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float | None = 60.0) -> None:
        """Wait for the panel's background actions (downloads, loads, chats) to finish."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                threads = list(self._threads)
            if not threads:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("The panel's actions did not finish in time.")
            threads[0].join(left)

    def _say(self, text: str) -> None:
        self.status.value = text

    def _fail(self, err: BaseException) -> None:
        self.error = _message(err)
        self.status.value = f"<span style='color:#c62828'>{html.escape(self.error)}</span>"

    # -- the chat box ----------------------------------------------------------------------
    def ask(self, text: str | None = None) -> None:
        """Send the prompt box (or ``text``) to the default model; the answer streams in."""
        text = (self.prompt.value if text is None else text).strip()
        if not text:
            self._fail(ValueError("Write a question in the chat box first."))
            return
        self.prompt.value = ""
        self.error = ""
        self.messages.append({"role": "user", "content": text})
        self._render_log()
        self.send.disabled = True
        self._background("Answering", lambda: self._stream(list(self.messages)))

    def _stream(self, messages: list[dict[str, str]]) -> None:
        try:
            response = self.client.chat(messages, self.default_model or None,
                                        max_tokens=self.max_tokens.value, trim_history=True)
            self.last_response = response
            text, last = "", 0.0
            for chunk in response.events():
                if not isinstance(chunk, str):  # waiting for the model: show the place in line
                    self._say(html.escape(chunk.describe() if chunk.position else "Answering")
                              + "…")
                    continue
                text += chunk
                if time.monotonic() - last >= self.interval:
                    self.answer.value = self._bubble("assistant", text)
                    last = time.monotonic()
            self.answer.value = ""
            self.warnings = warning_lines(response.warnings, "notebook")
            self.messages.append({"role": "assistant", "content": response.text()})
            self._render_log()
            rateable = response.request_id is not None
            for control in (self.thumbs_up, self.thumbs_down, self.feedback_comment):
                control.disabled = not rateable
        except BaseException:
            self.messages.pop()  # the question stays unanswered; it can be sent again
            self._render_log()
            raise
        finally:
            self.send.disabled = False

    def rate(self, rating: int) -> None:
        """Rate the last answer (1 helpful, -1 not), with the comment box's text."""
        response = self.last_response
        if response is None or response.request_id is None:
            self._fail(ValueError("There is no logged answer to rate yet."))
            return
        try:
            self.client.feedback(response.request_id, rating=rating,
                                 comment=self.feedback_comment.value.strip() or None)
        except Exception as e:  # noqa: BLE001 - shown in the status line
            self._fail(e)
            return
        self.feedback_comment.value = ""
        for control in (self.thumbs_up, self.thumbs_down, self.feedback_comment):
            control.disabled = True
        self._say("Thank you: your feedback was saved." if rating > 0 else
                  "Thank you: your feedback was saved and your teacher can see it.")

    def _stop_chat(self) -> None:
        if self.last_response is not None:
            self.last_response.cancel()

    def _new_chat(self) -> None:
        self.messages = []
        self._render_log()

    @staticmethod
    def _bubble(role: str, text: str) -> str:
        who = "You" if role == "user" else "Model"
        return (f"<div class='jupyter-llm-{role}'><b>{who}:</b> "
                f"<span style='white-space:pre-wrap'>{html.escape(text)}</span></div>")

    def _render_log(self) -> None:
        self.chat_log.value = "".join(self._bubble(m["role"], m["content"]) for m in self.messages)
