"""The tutoring guard: steer a guarded role's answers away from complete solutions.

Two parts, applied by the host to requests of a role with ``tutoring_guard``:

- ``guard_messages`` puts the policy's tutoring instructions first in the conversation;
- ``CodeGuard`` filters the streamed answer: text passes through at once, but a fenced code
  block is held until it closes, and one longer than ``max_code_lines`` is replaced by a short
  note. The full answer is kept (``full_text``) for the history, where an instructor sees it
  with a note that the guard acted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["CodeGuard", "GuardedExecution", "guard_messages", "COLLAPSED_NOTE"]

COLLAPSED_NOTE = ("\n*[The tutoring guard held back a {lines}-line code solution. Try writing "
                  "it yourself; ask for a hint about the next step if you are stuck.]*\n")
_FENCE = "```"


def guard_messages(messages: list[dict[str, Any]], instructions: str) -> list[dict[str, Any]]:
    """The conversation with the tutoring instructions first (merged into a system message)."""
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{instructions}\n\n{first.get('content') or ''}".strip()
        return [first, *messages[1:]]
    return [{"role": "system", "content": instructions}, *messages]


class CodeGuard:
    """Passes text through and collapses fenced code blocks longer than ``max_lines``."""

    def __init__(self, max_lines: int) -> None:
        self.max_lines = max_lines
        self.full_text = ""
        self.collapsed: list[int] = []  # line counts of the blocks held back
        self._pending = ""  # text not yet released: a possible fence start or an open block
        self._in_block = False

    @property
    def acted(self) -> bool:
        """Whether any code block was held back."""
        return bool(self.collapsed)

    def note(self) -> str | None:
        """A note for the history when the guard acted."""
        if not self.collapsed:
            return None
        blocks = ", ".join(f"{n} lines" for n in self.collapsed)
        return f"tutoring guard collapsed {len(self.collapsed)} code block(s) ({blocks})"

    def feed(self, piece: str) -> str:
        """Take one streamed piece; return the text that may be shown now."""
        self.full_text += piece
        self._pending += piece
        out = []
        while True:
            if not self._in_block:
                start = self._pending.find(_FENCE)
                if start < 0:
                    # keep a trailing partial fence ("`" or "``") until the next piece
                    keep = len(self._pending) - len(self._pending.rstrip("`"))
                    out.append(self._pending[:len(self._pending) - keep])
                    self._pending = self._pending[len(self._pending) - keep:]
                    break
                out.append(self._pending[:start])
                self._pending = self._pending[start:]
                self._in_block = True
            end = self._pending.find(_FENCE, len(_FENCE))
            if end < 0:
                break
            close = self._pending.find("\n", end)
            close = len(self._pending) if close < 0 else close + 1
            block, self._pending = self._pending[:close], self._pending[close:]
            self._in_block = False
            out.append(self._judge(block))
        return "".join(out)

    def flush(self) -> str:
        """The end of the answer: release (or collapse) whatever is still held."""
        pending, self._pending = self._pending, ""
        if self._in_block:
            self._in_block = False
            return self._judge(pending)
        return pending

    def _judge(self, block: str) -> str:
        body = block.split("\n", 1)[1] if "\n" in block else ""
        lines = [line for line in body.rsplit(_FENCE, 1)[0].splitlines() if line.strip()]
        if len(lines) <= self.max_lines:
            return block
        self.collapsed.append(len(lines))
        return COLLAPSED_NOTE.format(lines=len(lines))

    def filter(self, events: Iterable[Any]) -> Iterator[Any]:
        """Filter a stream of text pieces and other events (passed through after a flush)."""
        for event in events:
            if isinstance(event, str):
                text = self.feed(event)
                if text:
                    yield text
            else:
                rest = self.flush()
                if rest:
                    yield rest
                yield event
        rest = self.flush()
        if rest:
            yield rest


class GuardedExecution:
    """A model execution seen through a ``CodeGuard``; ``cancel`` and ``close`` reach the model."""

    def __init__(self, guard: CodeGuard, inner: Any) -> None:
        self._inner = inner
        self._events = guard.filter(inner)

    def __iter__(self) -> GuardedExecution:
        return self

    def __next__(self) -> Any:
        return next(self._events)

    def cancel(self) -> None:
        """Stop the model's execution."""
        stop = getattr(self._inner, "cancel", None)
        if callable(stop):
            stop()

    def close(self) -> None:
        """Release the model's execution."""
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()
