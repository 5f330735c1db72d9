"""Citations: where a retrieved passage comes from, renderable as a link in Jupyter."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["Citation", "heading_anchor"]


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
