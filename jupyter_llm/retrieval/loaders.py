"""Loaders: turn a file into titled sections that follow its structure (headings, cells, pages).

Supported: markdown, notebooks (markdown cells, code cells and their text outputs),
PDF (pypdf), HTML (beautifulsoup4), plain text, Python and reStructuredText.
Folders are walked recursively with include/exclude globs, skipping hidden,
build and ``node_modules`` folders.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_llm.errors import LoaderError, MissingDependency

__all__ = ["Section", "LoadedDocument", "LoaderError", "SUPPORTED_SUFFIXES", "SKIPPED_DIRS",
           "load_file", "load_text", "walk"]

SKIPPED_DIRS = frozenset({"node_modules", "build", "dist", "_build", "site", "__pycache__",
                          "venv", ".venv", "env", "_site", ".ipynb_checkpoints"})


@dataclass
class Section:
    """A structural piece of a document: text under one heading, one cell, or one page."""

    text: str
    heading: list[str] = field(default_factory=list)
    start_line: int | None = None
    end_line: int | None = None
    cell_index: int | None = None
    page: int | None = None


@dataclass
class LoadedDocument:
    """A loaded file: its title, kind and sections."""

    title: str
    kind: str
    sections: list[Section]


# --- markdown -------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_DIV = re.compile(r"^ {0,3}:{3,}\s*\{?\s*\.?([A-Za-z-]*)[^:]*:*\s*$")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_EMPHASIS = re.compile(r"(?<![\w*\\])(\*{1,3}|_{1,3})(?=[^\s*_])(.+?)(?<=[^\s\\])\1(?![\w*])")


def _plain_emphasis(line: str) -> str:
    """``line`` without markdown emphasis markers (``*word*``, ``**bold**``, ``_word_``)
    outside code spans: stored passages read as the words a reader sees, so a phrase such as
    "tests before writing" is found whether or not the author stressed a word of it.
    Identifiers (``snake_case``, ``__init__``), globs and arithmetic keep their characters."""
    if "*" not in line and "_" not in line:
        return line

    def plain(m: re.Match[str]) -> str:
        dunder = m.group(1) == "__" and m.group(2).isidentifier()  # __init__, not bold
        return m.group() if dunder else m.group(2)

    out, last = [], 0
    for m in _CODE_SPAN.finditer(line):
        out.append(_EMPHASIS.sub(plain, line[last:m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(_EMPHASIS.sub(plain, line[last:]))
    return "".join(out)


def _blank_margins(lines: list[str]) -> tuple[int, int]:
    """Count blank lines before the first and after the last non-blank line."""
    lead = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    trail = next((i for i, line in enumerate(reversed(lines)) if line.strip()), 0)
    return lead, trail


def _front_matter(lines: list[str]) -> tuple[dict, int]:
    """Parse a leading ``---`` YAML block; return (data, number of lines it spans)."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for i in range(1, min(len(lines), 200)):
        if lines[i].strip() in ("---", "..."):
            block = "\n".join(lines[1:i])
            try:
                import yaml

                data = yaml.safe_load(block) or {}
            except Exception:
                data = {}
            return (data if isinstance(data, dict) else {}), i + 1
    return {}, 0


def _markdown_sections(text: str, *, first_line: int = 1, cell_index: int | None = None,
                       stack: list[str] | None = None) -> tuple[list[Section], list[str], str]:
    """Split markdown into one section per heading; returns (sections, heading stack, title)."""
    lines = text.splitlines()
    meta, skip = _front_matter(lines) if cell_index is None else ({}, 0)
    title = str(meta.get("title", "")).strip()
    stack = list(stack or [])
    levels: list[int] = [0] * len(stack)
    sections: list[Section] = []
    body: list[str] = []
    body_start = skip + first_line
    fence: str | None = None

    def flush(end: int) -> None:
        content = "\n".join(body).strip()
        if content:
            lead, trail = _blank_margins(body)
            sections.append(Section(content, list(stack), body_start + lead, end - trail,
                                    cell_index))
        body.clear()

    for i, line in enumerate(lines[skip:], start=skip):
        lineno = i + first_line
        m_fence = _FENCE.match(line)
        if fence:
            if m_fence and m_fence.group(1)[0] == fence[0] and len(m_fence.group(1)) >= len(fence):
                fence = None
            body.append(line)
            continue
        if m_fence:
            fence = m_fence.group(1)
            body.append(line)
            continue
        m = _ATX.match(line)
        if m:
            flush(lineno - 1)
            level = len(m.group(1))
            while levels and levels[-1] >= level:
                levels.pop()
                stack.pop()
            stack.append(m.group(2).strip())
            levels.append(level)
            if not title and level == 1:
                title = m.group(2).strip()
            body_start = lineno
            body.append(line)
            continue
        m_div = _DIV.match(line)
        if m_div:  # pandoc fenced div markers (::::: challenge): keep the word, drop the colons
            body.append(m_div.group(1).capitalize() + ":" if m_div.group(1) else "")
            continue
        body.append(_plain_emphasis(line))
    flush(len(lines) + first_line - 1)
    if title and (not stack or stack[0] != title) and cell_index is None:
        for s in sections:
            if not s.heading or s.heading[0] != title:
                s.heading.insert(0, title)
    return sections, stack, title


def _load_markdown(text: str, path: Path) -> LoadedDocument:
    sections, _, title = _markdown_sections(text)
    return LoadedDocument(title or path.stem, "markdown", sections)


# --- notebooks ------------------------------------------------------------------------------

def _cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _output_text(output: dict) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
    elif kind in ("execute_result", "display_data"):
        text = output.get("data", {}).get("text/plain", "")
    elif kind == "error":
        text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    else:
        text = ""
    return "".join(text) if isinstance(text, list) else str(text)


def _load_notebook(text: str, path: Path) -> LoadedDocument:
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError) as e:
        raise LoaderError(f"{path} is not a valid notebook ({e}).") from e
    language = (nb.get("metadata", {}).get("kernelspec", {}) or {}).get("language", "python")
    stack: list[str] = []
    title = ""
    sections: list[Section] = []
    for index, cell in enumerate(cells):
        source = _cell_source(cell)
        if cell.get("cell_type") == "markdown":
            found, stack, cell_title = _markdown_sections(source, cell_index=index, stack=stack)
            title = title or cell_title
            for s in found:
                s.start_line = s.end_line = None
            sections.extend(found)
        elif cell.get("cell_type") == "code" and source.strip():
            parts = [f"```{language}\n{source.rstrip()}\n```"]
            outputs = [_output_text(o).strip() for o in cell.get("outputs", [])]
            outputs = [o for o in outputs if o]
            if outputs:
                parts.append("Output:\n" + "\n".join(outputs))
            sections.append(Section("\n".join(parts), list(stack), cell_index=index))
        elif cell.get("cell_type") == "raw" and source.strip():
            sections.append(Section(source.strip(), list(stack), cell_index=index))
    return LoadedDocument(title or path.stem, "notebook", sections)


# --- PDF, HTML ------------------------------------------------------------------------------

def _load_pdf(path: Path) -> LoadedDocument:
    try:
        import pypdf
    except ImportError as e:
        raise MissingDependency.from_package("pypdf", "Reading PDF files", "retrieval") from e
    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise LoaderError(f"{path} is an encrypted PDF; decrypt it first.")
        title = ""
        try:
            title = str((reader.metadata or {}).get("/Title") or "").strip()
        except Exception:
            title = ""
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section(text, [f"page {number}"], page=number))
    except LoaderError:
        raise
    except Exception as e:
        raise LoaderError(f"{path} is not a readable PDF ({type(e).__name__}: {e}).") from e
    return LoadedDocument(title or path.stem, "pdf", sections)


def _load_html(text: str, path: Path) -> LoadedDocument:
    try:
        from bs4 import BeautifulSoup
    except ImportError as e:
        raise MissingDependency.from_package("beautifulsoup4", "Reading HTML files", "retrieval") from e
    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.insert_before("\n" + "#" * level + " ")
            h.insert_after("\n")
    for block in soup.find_all(["p", "li", "pre", "div", "br", "tr", "dt", "dd", "blockquote"]):
        block.insert_after("\n")
    body = re.sub(r"\n\s*\n+", "\n\n", soup.get_text())
    sections, _, md_title = _markdown_sections(body)
    for s in sections:
        s.start_line = s.end_line = None
    return LoadedDocument(title or md_title or path.stem, "html", sections)


# --- rst, python, text ----------------------------------------------------------------------

_RST_UNDERLINE = re.compile(r"^([=\-~^\"'#*+`:.])\1{2,}\s*$")


def _load_rst(text: str, path: Path) -> LoadedDocument:
    lines = text.splitlines()
    marks: list[str] = []
    stack: list[str] = []
    sections: list[Section] = []
    body: list[str] = []
    start = 1
    i = 0

    def flush(end: int) -> None:
        content = "\n".join(body).strip()
        if content:
            lead, trail = _blank_margins(body)
            sections.append(Section(content, list(stack), start + lead, end - trail))
        body.clear()

    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        m = _RST_UNDERLINE.match(nxt)
        if line.strip() and not _RST_UNDERLINE.match(line) and m and len(nxt.strip()) >= len(
                line.strip()):
            flush(i)
            char = m.group(1)
            if char not in marks:
                marks.append(char)
            level = marks.index(char)
            del stack[level:]
            stack.append(line.strip())
            start = i + 1
            body.extend([line, nxt])
            i += 2
            continue
        body.append(line)
        i += 1
    flush(len(lines))
    return LoadedDocument(stack[0] if marks and sections else path.stem, "rst", sections)


def _load_python(text: str, path: Path) -> LoadedDocument:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _load_plain(text, path, "python")
    lines = text.splitlines()
    doc = ast.get_docstring(tree) or ""
    sections: list[Section] = []
    cursor = 1
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        if first > cursor:
            chunk = "\n".join(lines[cursor - 1:first - 1]).strip()
            if chunk:
                sections.append(Section(chunk, ["module"], cursor, first - 1))
        kind = "class" if isinstance(node, ast.ClassDef) else "def"
        end = node.end_lineno or first
        sections.append(Section("\n".join(lines[first - 1:end]), [f"{kind} {node.name}"],
                                first, end))
        cursor = end + 1
    if cursor <= len(lines):
        chunk = "\n".join(lines[cursor - 1:]).strip()
        if chunk:
            sections.append(Section(chunk, ["module"], cursor, len(lines)))
    title = doc.strip().splitlines()[0] if doc.strip() else path.name
    return LoadedDocument(title, "python", sections)


def _load_plain(text: str, path: Path, kind: str = "text") -> LoadedDocument:
    lines = text.splitlines()
    content = text.strip()
    sections = [Section(text, [], 1, len(lines))] if content else []
    return LoadedDocument(path.stem, kind, sections)


# --- dispatch -------------------------------------------------------------------------------

_TEXT_LOADERS = {
    ".md": _load_markdown, ".markdown": _load_markdown, ".qmd": _load_markdown,
    ".ipynb": _load_notebook, ".html": _load_html, ".htm": _load_html,
    ".rst": _load_rst, ".py": _load_python, ".txt": _load_plain,
}
SUPPORTED_SUFFIXES = frozenset(_TEXT_LOADERS) | {".pdf"}


def load_text(text: str, path: str | Path) -> LoadedDocument:
    """Load already-read text as the kind of file ``path`` names (by suffix)."""
    path = Path(path)
    loader = _TEXT_LOADERS.get(path.suffix.lower(), _load_plain)
    return loader(text, path)


def load_file(path: str | Path, data: bytes | None = None) -> LoadedDocument:
    """Load one file into sections; raises :class:`LoaderError` if it cannot be read."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoaderError(f"{path}: unsupported file type {suffix or '(none)'}; supported: "
                          f"{', '.join(sorted(SUPPORTED_SUFFIXES))}.")
    if suffix == ".pdf":
        return _load_pdf(path)
    try:
        raw = data if data is not None else path.read_bytes()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LoaderError(f"{path} is not UTF-8 text ({e}); re-save it as UTF-8.") from e
    except OSError as e:
        raise LoaderError(f"{path} could not be read ({e}).") from e
    if "\x00" in text:
        raise LoaderError(f"{path} looks binary (it contains NUL bytes).")
    return load_text(text, path)


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    """True if a glob matches the relative path or any trailing part of it (``episodes/*``)."""
    parts = rel.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    expanded = [q for p in patterns for q in _zero_or_more_folders(p)]
    return any(fnmatch.fnmatch(t, p) for p in expanded for t in tails)


def _zero_or_more_folders(pattern: str) -> list[str]:
    """A glob with ``**/`` also as if each ``**/`` matched no folder (``**/*`` matches ``a.md``)."""
    out = [pattern]
    while "**/" in out[-1]:
        out.append(out[-1].replace("**/", "", 1))
    return out


def walk(root: str | Path, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> Iterator[Path]:
    """Yield supported files under ``root`` (or ``root`` itself), sorted, honouring globs.

    Hidden, build and ``node_modules`` folders are skipped. ``include`` globs (matched
    against the path relative to ``root`` or the file name) restrict the files;
    ``exclude`` globs remove files and folders.
    """
    root = Path(root)
    include, exclude = list(include), list(exclude)
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and d not in SKIPPED_DIRS
            and not _matches(f"{rel_dir}/{d}".lstrip("./") if rel_dir != "." else d, exclude))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES and not include:
                continue
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            if Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                yield Path(dirpath) / name
