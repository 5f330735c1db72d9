"""Output of the magics: a streamed answer rendered as it arrives (one display handle,
updated at most every ``interval`` seconds), errors as one clear line, progress bars."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any

from ..display import EvalBar, ProgressBar, error_text, human_bytes
from ..errors import JupyterLLMError
from .arguments import FORMATS

if TYPE_CHECKING:
    from ..models import Queued, Response

__all__ = ["StreamDisplay", "FORMATS", "cell_error", "extract_code", "footer",
           "ingest_progress", "markdown_table", "progress_callback"]

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n```|\Z)", re.S)


def cell_error(err: JupyterLLMError) -> JupyterLLMError:
    """Make IPython show ``err`` as one line (its class, message and hint as `%llm …`),
    never a traceback."""
    message = f"{type(err).__name__}: {error_text(err, 'notebook')}"
    err._render_traceback_ = lambda: [message]  # type: ignore[attr-defined]
    return err


def extract_code(text: str) -> str:
    """The first fenced code block of ``text`` (a python block preferred), else the text."""
    blocks = _FENCE.findall(text)
    for lang, body in blocks:
        if lang.lower() in ("python", "py", "python3", "ipython"):
            return body.strip("\n")
    if blocks:
        return blocks[0][1].strip("\n")
    return text.strip("\n")


def footer(response: Response) -> str:
    """``model · 32 tokens · 0.41 s · 78 tok/s``."""
    parts = [response.model_id or "?"]
    if response.usage is not None:
        parts.append(f"{response.usage.completion_tokens} tokens")
    t = response.timings
    parts.append(f"{t['duration_s']:.2f} s")
    if t.get("tokens_per_s"):
        parts.append(f"{t['tokens_per_s']:.0f} tok/s")
    if response.finish_reason not in (None, "stop"):
        parts.append(str(response.finish_reason))
    return " · ".join(parts)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of ``rows`` (pipes escaped)."""
    def cell(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


class StreamDisplay:
    """Streams a ``Response`` into one output, rendered in the chosen format.

    ``live=True`` keeps one ``display_id`` handle and updates it as chunks arrive (a kernel
    with a frontend); ``live=False`` prints the chunks (a terminal).
    """

    def __init__(self, fmt: str = "markdown", *, live: bool = True, interval: float = 0.1,
                 show_footer: bool = True) -> None:
        self.fmt = fmt
        self.live = live
        self.interval = interval
        self.show_footer = show_footer
        self.updates = 0
        self.handle: Any = None

    def _streaming_bundle(self, text: str) -> dict[str, Any]:
        if self.fmt in ("markdown", "code"):
            return {"text/markdown": text or "…", "text/plain": text}
        return {"text/plain": text}

    def _show_queued(self, queued: Queued, text: str) -> None:
        """A status line while the request waits: ``Waiting: 3rd in line, about 12 s``."""
        if not queued.position:
            if self.live:
                self.handle.update(self._streaming_bundle(text), raw=True)
            return
        line = queued.describe()
        if self.live:
            self.handle.update({"text/markdown": f"*{line}…*", "text/plain": line + "…"},
                               raw=True)
        else:
            sys.stderr.write(line + "…\n")
            sys.stderr.flush()
        self.updates += 1

    def final_bundle(self, response: Response) -> dict[str, Any]:
        """What the output shows once the stream has ended."""
        text = response.text()
        note = footer(response) if self.show_footer else ""
        if self.fmt == "text":
            return {"text/plain": text}
        if self.fmt == "html":
            return {"text/html": text, "text/plain": text}
        if self.fmt == "json":
            try:
                data = json.loads(extract_code(text))
            except ValueError:
                return {"text/plain": text + "\n\n(the answer is not valid JSON)"}
            return {"application/json": data, "text/plain": json.dumps(data, indent=2)}
        if self.fmt == "code":
            code = extract_code(text)
            md = f"```python\n{code}\n```"
            return {"text/markdown": md + (f"\n\n<sub>{note} · code placed in the next cell</sub>"
                                           if note else ""), "text/plain": code}
        md = response._repr_markdown_()
        return {"text/markdown": md + (f"\n\n<sub>{note}</sub>" if note else ""),
                "text/plain": md}

    def run(self, response: Response) -> Response:
        """Consume ``response``, showing it as it arrives; Ctrl-C cancels and keeps the text."""
        from IPython.display import display

        if self.live:
            self.handle = display(self._streaming_bundle(""), raw=True, display_id=True)
        text, last = "", time.monotonic()
        try:
            for chunk in response.events():
                if not isinstance(chunk, str):  # waiting for the model: its place in line
                    self._show_queued(chunk, text)
                    continue
                text += chunk
                if not self.live:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                    continue
                now = time.monotonic()
                if now - last >= self.interval:
                    self.handle.update(self._streaming_bundle(text), raw=True)
                    self.updates += 1
                    last = now
        except KeyboardInterrupt:
            response.cancel()
        if self.live:
            self.handle.update(self.final_bundle(response), raw=True)
        else:
            sys.stdout.write("\n")
            answer = response.answer
            if answer is not None and answer.text != text:  # replaced after its check
                sys.stdout.write(f"\n({answer.note})\n\n{answer.text}\n")
            if self.fmt not in ("markdown", "text"):
                display(self.final_bundle(response), raw=True)
        return response

    def show(self, response: Response) -> Response:
        """Show a finished (non-streamed) response once."""
        from IPython.display import display

        response.text()
        self.handle = display(self.final_bundle(response), raw=True, display_id=True)
        return response


def progress_callback(label: str) -> tuple[Any, Any]:
    """A progress bar for downloads: ipywidgets ``IntProgress`` when available, else a text
    bar. Returns ``(callback, close)``; the callback takes progress dicts."""
    from IPython.display import display

    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover - ipywidgets is in the notebook extra
        w = None
    if w is not None:
        bar = w.IntProgress(value=0, min=0, max=100, description=label[:20],
                            layout=w.Layout(width="60%"))
        info = w.Label("")
        display(w.HBox([bar, info]))

        def update(event: dict[str, Any]) -> None:
            done, total = event.get("done_bytes") or 0, event.get("total_bytes")
            if total:
                bar.value = min(100, int(100 * done / total))
            status = event.get("status", "")
            info.value = f"{human_bytes(done)} / {human_bytes(total)} {status}".strip()
            if status == "done":
                bar.value, bar.bar_style = 100, "success"
            elif status in ("error", "cancelled"):
                bar.bar_style = "danger"

        return update, lambda: None
    text_bar = ProgressBar(label, stream=sys.stdout)
    return text_bar, lambda: None


def ingest_progress(label: str) -> tuple[Any, Any]:
    """A progress bar over the files of an ingest (ipywidgets, else a text line per file).
    Returns ``(callback, close)``; the callback takes the client's progress dicts."""
    from IPython.display import display

    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover - ipywidgets is in the notebook extra
        w = None
    if w is None:
        def line(event: dict[str, Any]) -> None:
            print(f"{event.get('done')}/{event.get('total')} {event.get('status')} "
                  f"{event.get('path')}")

        return line, lambda: None
    bar = w.IntProgress(value=0, min=0, max=1, description=label[:20],
                        layout=w.Layout(width="60%"))
    info = w.Label("")
    display(w.HBox([bar, info]))

    def update(event: dict[str, Any]) -> None:
        bar.max = max(1, event.get("total") or 1)
        bar.value = min(bar.max, event.get("done") or 0)
        info.value = f"{bar.value}/{bar.max} {event.get('status', '')} {event.get('path', '')}"

    def close() -> None:
        bar.bar_style = "success" if bar.value >= bar.max else "warning"

    return update, close



def eval_progress(total_label: str) -> tuple[Any, Any]:
    """A progress bar over an evaluation's steps (ipywidgets, else a text line per tenth).
    Returns ``(callback, close)``; the callback takes ``EvalProgress`` steps."""
    from IPython.display import display

    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover - ipywidgets is in the notebook extra
        w = None
    if w is None:
        text_bar = EvalBar(stream=sys.stdout)
        return text_bar, text_bar.close
    bar = w.IntProgress(value=0, min=0, max=1, description=total_label[:20],
                        layout=w.Layout(width="60%"))
    info = w.Label("")
    display(w.HBox([bar, info]))

    def update(step: Any) -> None:
        bar.max = max(1, step.total)
        bar.value = min(bar.max, step.done)
        info.value = f"{step.done}/{step.total} {step.model}"

    def close() -> None:
        bar.bar_style = "success" if bar.value >= bar.max else "warning"

    return update, close
