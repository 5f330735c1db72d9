"""Citations: where a retrieved passage comes from, renderable as a link in Jupyter."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["Citation", "CitationCheck", "check_citations", "cited_numbers", "heading_anchor"]

_CITE_GROUP = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)
_STEM_PREFIX = re.compile(r"^\d+[-_ ]+")
_TITLE_WORDS = 10


def heading_anchor(heading: str) -> str:
    """The id JupyterLab gives a rendered markdown heading (spaces become dashes)."""
    text = re.sub(r"[`*_]", "", heading.strip())
    return quote(text.replace(" ", "-"), safe="-._~()'!:@,;")


@dataclass
class Citation:
    """A numbered pointer to a source passage: file, heading trail, lines, cell or page."""

    n: int
    source: str
    path: str
    title: str = ""
    heading: str = ""
    start_line: int | None = None
    end_line: int | None = None
    cell_index: int | None = None
    page: int | None = None

    @property
    def location(self) -> str:
        """Human-readable place inside the file: lines, cell or page."""
        if self.start_line is not None:
            if self.end_line is not None and self.end_line != self.start_line:
                return f"lines {self.start_line}–{self.end_line}"
            return f"line {self.start_line}"
        if self.cell_index is not None:
            return f"cell {self.cell_index + 1}"
        if self.page is not None:
            return f"page {self.page}"
        return ""

    def label(self) -> str:
        """``source › heading, lines a–b``."""
        last = self.heading.split(" > ")[-1] if self.heading else ""
        parts = [self.source + (f" › {last}" if last else "")]
        if self.location:
            parts.append(self.location)
        return ", ".join(parts)

    def short_title(self) -> str:
        """A label with no path or line numbers, safe to show a model: ``Creating files
        (Working With Files and Directories)``; the file's name when there is no heading."""
        last = self.heading.split(" > ")[-1].strip() if self.heading else ""
        title = self.title.strip()
        if not last and not title:
            stem = Path(self.source.replace("\\", "/")).stem
            last = _STEM_PREFIX.sub("", stem).replace("-", " ").replace("_", " ") or stem
        label = last or title
        if title and last and title.casefold() != last.casefold():
            label += f" ({title})"
        words = label.split()
        if len(words) > _TITLE_WORDS:
            label = " ".join(words[:_TITLE_WORDS]) + " …"
        return label

    def href(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """A link that opens the file: a relative path from ``relative_to`` (default: the
        working directory, which is the notebook's folder in a kernel), or for a path relative
        to a server's root (as a server sends it) a link from that root (``/course/a.md``, as
        JupyterLab resolves it); with a heading anchor for markdown and notebooks, or
        ``#page=N`` for PDF."""
        base = Path(relative_to) if relative_to is not None else Path.cwd()
        target = Path(self.path)
        if not target.is_absolute():  # from a server: relative to its root, a root link
            href = "/" + quote(target.as_posix())
        else:
            try:
                rel = os.path.relpath(target, base)
            except ValueError:  # another drive on Windows
                rel = str(target)
            href = quote(Path(rel).as_posix())
        suffix = target.suffix.lower()
        last = self.heading.split(" > ")[-1] if self.heading else ""
        if suffix in (".md", ".ipynb", ".markdown", ".qmd") and last:
            href += "#" + heading_anchor(last)
        elif suffix == ".pdf" and self.page:
            href += f"#page={self.page}"
        return href

    def to_markdown(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """``[n] [label](href)`` as markdown."""
        label = self.label().replace("[", "\\[").replace("]", "\\]")
        return f"[{self.n}] [{label}]({self.href(relative_to)})"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def cited_numbers(text: str) -> list[int]:
    """The source numbers ``text`` cites as ``[1]``, ``[1][2]`` or ``[1, 2]``, first use first
    (not inside code: ``data[0]`` in backticks or a fenced block is no citation)."""
    found: list[int] = []
    for group in _CITE_GROUP.findall(_CODE.sub(" ", text)):
        found.extend(int(n) for n in re.split(r"\s*[,;]\s*", group))
    return list(dict.fromkeys(found))


@dataclass
class CitationCheck:
    """Whether a model's answer cites the numbered sources it was given, and what was shown.

    ``reason`` is None when the answer is kept as is; else ``empty``, ``repetition`` (the
    model began repeating itself and was stopped), ``no_citation``, ``invalid_citation`` (a
    number with no source) or ``unsupported`` (too few of its words are in the passages it
    cites). ``action`` says what the faces show: ``kept`` (the model's answer followed by an
    excerpt of the passages it cites), ``extractive`` (quoted windows of the passages,
    cited) or ``passages``. ``model_text`` is the model's own text.
    """

    valid: bool
    reason: str | None = None
    cited: list[int] | None = None
    invalid: list[int] | None = None
    action: str = "kept"
    model_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def check_citations(text: str, numbers: set[int] | list[int]) -> CitationCheck:
    """Check that ``text`` cites at least one of ``numbers`` and nothing else."""
    valid = set(numbers)
    found = cited_numbers(text)
    cited = [n for n in found if n in valid]
    invalid = [n for n in found if n not in valid]
    if not text.strip():
        reason: str | None = "empty"
    elif invalid:
        reason = "invalid_citation"
    elif not cited:
        reason = "no_citation"
    else:
        reason = None
    return CitationCheck(reason is None, reason, cited, invalid)
