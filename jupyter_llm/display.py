"""Rendering shared by the faces (CLI, magics, widgets), which never import each other:
terminal progress bars for downloads and ingests, and each face's words for an error's
structured hint (``details["action"]``, see ``errors.ACTIONS``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .errors import JupyterLLMError, hint_of

__all__ = ["ProgressBar", "IngestBar", "EvalBar", "human_bytes", "human_when", "ps_rows", "print_listing",
           "render_hint", "error_text", "warning_lines", "state_label", "FACES"]


def human_bytes(n: float | None) -> str:
    """Format a byte count as ``12.3 MB``."""
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_when(at: float | None, now: float | None = None) -> str:
    """An epoch time relative to now, as a person says it: ``in 4 min``, ``12 s ago``,
    ``just now``; ``never`` for None."""
    if at is None:
        return "never"
    delta = float(at) - (time.time() if now is None else now)
    seconds = abs(delta)
    if seconds < 1:
        return "just now"
    if seconds < 60:
        amount = f"{seconds:.0f} s"
    elif seconds < 3600:
        amount = f"{seconds / 60:.0f} min"
    elif seconds < 86400:
        amount = f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    else:
        amount = f"{seconds / 86400:.1f} days".replace(".0 days", " days")
    return f"in {amount}" if delta > 0 else f"{amount} ago"


_PS_BYTES = ("memory_bytes", "estimated_bytes", "kv_cache_bytes")
_PS_TIMES = ("last_used", "loaded_at", "expires_at")


def ps_rows(rows: list[dict[str, Any]], now: float | None = None) -> list[dict[str, str]]:
    """``ps`` entries as people read them: sizes in MB/GB, times relative to now (``expires``
    ``never`` when a model stays loaded), keep-alive in seconds, nested dicts as ``k=v``."""
    shown = []
    for row in rows:
        out: dict[str, str] = {}
        for key, value in row.items():
            if key in _PS_BYTES:
                out[key.removesuffix("_bytes")] = "-" if value is None else human_bytes(value)
            elif key == "expires_at" and value is None:
                out["expires"] = "never" if row.get("keep_alive") is None else "not while busy"
            elif key in _PS_TIMES:
                out[key.removesuffix("_at")] = "-" if value is None else human_when(value, now)
            elif key == "keep_alive":
                out[key] = "forever" if value is None else f"{value:g} s"
            elif isinstance(value, dict):
                out[key] = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
            elif value is not None:
                out[key] = str(value)
        shown.append(out)
    return shown


class ProgressBar:
    """Draws ``label [#####.....] 45% 12.3 MB/27.0 MB 5.1 MB/s ETA 3s``."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, event: Any) -> None:
        """Draw one progress event (a dict or an object with ``to_dict``)."""
        data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
        done, total = data.get("done_bytes", 0) or 0, data.get("total_bytes")
        status = data.get("status", "")
        now = time.monotonic()
        final = status in ("done", "error", "cancelled")
        if not final and now - self._last < 0.1:
            return
        self._last = now
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
            text = f"{self.label} [{bar}] {frac * 100:5.1f}% {human_bytes(done)}/{human_bytes(total)}"
        else:
            text = f"{self.label} {human_bytes(done)}"
        rate, eta = data.get("rate_bytes_per_s"), data.get("eta_s")
        if rate:
            text += f" {human_bytes(rate)}/s"
        if eta is not None and not final:
            text += f" ETA {eta:.0f}s"
        if status and status not in ("downloading",):
            text += f" {status}"
        if self.stream.isatty():
            self.stream.write("\r" + text.ljust(100)[:120])
            if final:
                self.stream.write("\n")
        elif final or not self._drawn:
            self.stream.write(text + "\n")
        self._drawn = True
        self.stream.flush()


class IngestBar:
    """A one-line file progress bar for an ingest's progress dicts (redrawn on a terminal;
    elsewhere only skipped files are printed)."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()

    def __call__(self, event: dict[str, Any]) -> None:
        """Draw one progress dict: ``done``, ``total``, ``path``, ``status``, ``error``."""
        path, status = str(event.get("path") or ""), str(event.get("status") or "")
        done, total = event.get("done") or 0, event.get("total") or 0
        if status == "skipped":
            self._clear()
            print(f"jupyter llm: skipped {path}: {event.get('error')}", file=self.stream)
        if not self.tty or not total:
            return
        filled = int(min(1.0, done / total) * self.width)
        name = path if len(path) < 50 else "…" + path[-49:]
        self.stream.write(f"\ringest [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{total} {status:<9} {name}".ljust(110))
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")

    def close(self) -> None:
        """End the bar's line."""
        self._clear()


class EvalBar:
    """A one-line progress bar over an evaluation's ``EvalProgress`` steps (redrawn on a
    terminal; elsewhere one line per tenth of the run)."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._printed = -1

    def __call__(self, step: Any) -> None:
        """Draw one step: ``done`` of ``total``, the ``model`` and the question just measured."""
        done, total = step.done, max(1, step.total)
        filled = int(min(1.0, done / total) * self.width)
        question = " ".join(step.item.question.split())
        text = (f"eval [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
                f"{step.model}: {question[:40]}")
        if self.tty:
            self.stream.write("\r" + text.ljust(110)[:110])
        elif done * 10 // total != self._printed:
            self._printed = done * 10 // total
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


# -- hints: each face's words for ``details["action"]`` ------------------------------------
_CLI = {
    "pull": "jupyter llm pull {model}",
    "load": "jupyter llm load {model}",
    "remove": "jupyter llm rm {model}",
    "cancel_pull": "jupyter llm pull {model} (Ctrl-C stops a running download)",
    "list_models": "jupyter llm models",
    "set_key": "export {env}=YOUR_KEY",
    "ingest": "jupyter llm ingest {collection} PATH...",
    "create_collection": "jupyter llm ingest {collection} PATH...",
    "completion": "jupyter llm prompt --completion -m {model} TEXT",
}
_NOTEBOOK = {
    "pull": "%llm pull {model}",
    "load": "%llm load {model}",
    "remove": "%llm rm {model}",
    "cancel_pull": "jupyter_llm.connect().cancel_pull('{model}')",
    "list_models": "%llm models",
    "set_key": "%env {env}=YOUR_KEY",
    "ingest": "%llm ingest {collection} PATH",
    "create_collection": "%llm ingest {collection} PATH",
    "completion": "jupyter_llm.connect().generate(TEXT, '{model}')",
    "list_templates": "%llm templates",
}
FACES = {"cli": _CLI, "notebook": _NOTEBOOK}
"""Per face, the command for each action (``retry`` is said in words by every face;
``install``'s pip command is in the message already, the same for every face)."""


def render_hint(details: Any, face: str) -> str:
    """The next step of an error's hint in ``face``'s words (``cli`` or ``notebook``); ''."""
    found = hint_of(details)
    if found is None:
        return ""
    action = found.pop("action")
    if action == "retry":
        return f"Try again in {found.get('retry_after') or 1} s."
    template = FACES[face].get(action)
    if template is None:
        return ""
    command = template.format(**{k: "" if v is None else v for k, v in found.items()})
    return f"Run: {command}" if face == "cli" else f"Run `{command}`."


def error_text(err: JupyterLLMError, face: str) -> str:
    """An error's message followed by its hint in ``face``'s words."""
    rendered = render_hint(err.details, face)
    return f"{err.message} {rendered}" if rendered else err.message


def warning_lines(warnings: Any, face: str) -> list[str]:
    """A response's warnings (no chat template, oldest turns left out, ...) as lines, each
    with its hint in ``face``'s words."""
    lines = []
    for warning in warnings or ():
        rendered = render_hint(warning.get("details"), face)
        message = str(warning.get("message") or warning.get("type") or "")
        lines.append(f"{message} {rendered}" if rendered else message)
    return lines


def state_label(model: dict[str, Any]) -> str:
    """A model's state for a picker: ``installed``, or ``available (needs OPENAI_API_KEY)``
    for a model that cannot answer yet (``usable`` false, with its hint)."""
    state = str(model.get("state") or "")
    if model.get("usable", True) is not False:
        return state
    env = (model.get("hint") or {}).get("env")
    return f"{state} (needs {env})" if env else f"{state} (not usable)"


def print_listing(items: list[Any], *, as_json: bool, empty: str,
                  line: Callable[[Any], str]) -> None:
    """Print a command's list: as JSON, the ``empty`` advice, or one ``line`` per item."""
    if as_json:
        print(json.dumps(items, indent=2))
    elif not items:
        print(empty)
    else:
        for item in items:
            print(line(item))
