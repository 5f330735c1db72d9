"""Question files for evaluating a collection: JSONL, one question per line, validated.

Each line is a JSON object::

    {"question": "How do I undo a commit?", "sources": ["git-novice/episodes/05-history.md"],
     "contains": ["git revert"]}
    {"question": "How do I rebase onto main?", "unanswerable": true}

``sources`` are the files that hold the answer (a retrieved source matches when it is the
file or ends with ``/`` + the file); ``contains`` lists strings a correct passage or answer
must all contain (case-insensitive, whitespace collapsed; a nested list gives alternatives,
any one of which is enough); ``unanswerable: true`` marks a question the materials do not
cover. Blank lines and lines starting with ``#`` are skipped. A malformed file raises
:class:`QuestionFileError` naming the line and the problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_llm.errors import NotFound, QuestionFileError

__all__ = ["Question", "QuestionFileError", "load_questions", "parse_questions", "matches",
           "normalise"]

_FIELDS = {"question", "sources", "contains", "unanswerable", "id", "notes"}
Needle = str | list[str]


@dataclass
class Question:
    """One evaluation question: its text, expected sources and strings, or ``unanswerable``."""

    question: str
    sources: list[str] = field(default_factory=list)
    contains: list[Needle] = field(default_factory=list)
    unanswerable: bool = False
    id: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The question as a line of a question file."""
        out: dict[str, Any] = {"question": self.question}
        if self.id is not None:
            out["id"] = self.id
        if self.unanswerable:
            out["unanswerable"] = True
        if self.sources:
            out["sources"] = self.sources
        if self.contains:
            out["contains"] = self.contains
        return out

    def source_matches(self, source: str) -> bool:
        """Whether a retrieved ``source`` is one of the expected files: equal, or one ends
        with ``/`` + the other (sources are relative to the collection's base, expectations
        may name a folder above it, and a server shows them relative to its root)."""
        s = source.replace("\\", "/").lstrip("/")
        return any(s == e or s.endswith("/" + e) or e.endswith("/" + s)
                   for e in (x.replace("\\", "/").lstrip("/") for x in self.sources))

    def text_matches(self, text: str) -> bool:
        """Whether ``text`` contains every expected string (True when none are expected)."""
        return matches(text, self.contains)


def normalise(text: str) -> str:
    """Lower case with runs of whitespace collapsed to one space."""
    return " ".join(text.lower().split())


def matches(text: str, contains: Iterable[Needle]) -> bool:
    """Whether ``text`` contains every needle (a list needle: any one of its strings)."""
    hay = normalise(text)
    for needle in contains:
        options = [needle] if isinstance(needle, str) else needle
        if not any(normalise(o) in hay for o in options):
            return False
    return True


def _fail(name: str, line: int, problem: str) -> QuestionFileError:
    return QuestionFileError(f"{name} line {line}: {problem}",
                             details={"path": name, "line": line})


def _strings(value: Any, what: str, name: str, line: int, *, nested: bool) -> list[Any]:
    """A string or a list of non-empty strings (or, when ``nested``, lists of them)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(name, line, f"'{what}' must be a string or a non-empty list of strings.")
    for item in items:
        if nested and isinstance(item, list) and item and all(
                isinstance(o, str) and o.strip() for o in item):
            continue
        if not isinstance(item, str) or not item.strip():
            raise _fail(name, line, f"'{what}' must be a string or a non-empty list of "
                        f"non-empty strings{' (or lists of alternatives)' if nested else ''}; "
                        f"got {json.dumps(item)}.")
    return list(items)


def _parse_line(obj: Any, name: str, line: int) -> Question:
    if not isinstance(obj, dict):
        raise _fail(name, line, 'each line must be a JSON object such as '
                    '{"question": "...", "contains": ["..."]}.')
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise _fail(name, line, f"unknown field {unknown[0]!r}; the fields are "
                    f"{', '.join(sorted(_FIELDS))}.")
    text = obj.get("question")
    if not isinstance(text, str) or not text.strip():
        raise _fail(name, line, "'question' is missing or empty.")
    unanswerable = obj.get("unanswerable", False)
    if not isinstance(unanswerable, bool):
        raise _fail(name, line, "'unanswerable' must be true or false.")
    sources = (_strings(obj["sources"], "sources", name, line, nested=False)
               if "sources" in obj else [])
    contains = (_strings(obj["contains"], "contains", name, line, nested=True)
                if "contains" in obj else [])
    if unanswerable and (sources or contains):
        raise _fail(name, line, "an unanswerable question cannot list 'sources' or "
                    "'contains'; remove them or drop 'unanswerable'.")
    ident = obj.get("id")
    if ident is not None and not isinstance(ident, str | int):
        raise _fail(name, line, "'id' must be a string or a number.")
    return Question(text.strip(), [s.strip() for s in sources], contains, unanswerable,
                    None if ident is None else str(ident), line)


def parse_questions(lines: Iterable[str], name: str = "<questions>") -> list[Question]:
    """Parse question-file lines; raise :class:`QuestionFileError` naming the bad line."""
    questions: list[Question] = []
    for n, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise _fail(name, n, f"not valid JSON ({e.msg} at column {e.colno}).") from None
        questions.append(_parse_line(obj, name, n))
    if not questions:
        raise QuestionFileError(f"{name} has no questions; write one JSON object per line, "
                                'e.g. {"question": "How do I undo a commit?", '
                                '"contains": ["git revert"]}.', details={"path": name})
    return questions


def load_questions(path: str | os.PathLike[str]) -> list[Question]:
    """Read and validate a question file (JSONL)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFound(f"No question file at {p}; give a .jsonl file with one question per "
                       "line.", details={"path": str(p)})
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise QuestionFileError(f"Cannot read {p} ({e}); save it as UTF-8 JSONL.",
                                details={"path": str(p)}) from None
    return parse_questions(text.splitlines(), str(path))
