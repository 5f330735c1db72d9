"""Degenerate answers: a small model that repeats a line, a phrase or a few characters until
it runs out of tokens. :func:`find_repetition` finds where the loop starts, early enough to
stop the generation (it runs on the text streamed so far)."""

from __future__ import annotations

import re

__all__ = ["find_repetition", "LINE_REPEATS", "NGRAM", "NGRAM_REPEATS"]

LINE_REPEATS = 3
"""A line or sentence (of at least ``MIN_LINE`` characters) seen this often is a loop."""
MIN_LINE = 8
NGRAM = 8
"""Phrases of this many words ..."""
NGRAM_REPEATS = 3
"""... seen this often are a loop."""
_SHORT_LOOP = re.compile(r"(.{2,40}?)\1{5,}", re.S)  # a short unit six times in a row
_WORD = re.compile(r"\S+")
_SEGMENT = re.compile(r"[^\n.!?]+[.!?]*")  # a line or a sentence


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _sentences(text: str) -> int | None:
    starts: dict[str, list[int]] = {}
    for m in _SEGMENT.finditer(text):
        key = _norm(m.group())
        if len(key) >= MIN_LINE:
            seen = starts.setdefault(key, [])
            seen.append(m.start() + len(m.group()) - len(m.group().lstrip()))
            if len(seen) >= LINE_REPEATS:
                return seen[1]  # cut at the second copy: keep one
    return None


def _ngrams(text: str) -> int | None:
    words = [(m.start(), m.group().lower().strip(".,;:!?\"'()*")) for m in _WORD.finditer(text)]
    first: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(words) - NGRAM + 1):
        gram = tuple(w for _, w in words[i:i + NGRAM])
        starts = first.setdefault(gram, [])
        starts.append(i)
        if len(starts) >= NGRAM_REPEATS:
            return words[starts[1]][0]
    return None


def _short(text: str) -> int | None:
    for m in _SHORT_LOOP.finditer(text):
        unit = m.group(1)
        if any(ch.isalnum() for ch in unit) and len(m.group()) >= 30:
            return m.start() + len(unit)
    return None


def find_repetition(text: str) -> int | None:
    """The offset where ``text`` starts repeating itself (the start of the second copy of a
    repeated line or sentence, phrase or short unit), or None when it does not loop."""
    cuts = [c for c in (_sentences(text), _ngrams(text), _short(text)) if c is not None]
    return min(cuts) if cuts else None
