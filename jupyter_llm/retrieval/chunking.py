"""Chunking: split loaded sections into chunks sized in tokens, never across headings or pages.

A section (one per heading, cell or page) that is too big is cut into blocks (paragraphs
and whole fenced code blocks); a code block stays with the sentence that introduces it
and the output or explanation that follows, and the blocks are packed into chunks of at
most ``chunk_size`` tokens, measured with the embedder's own tokenizer. Only a block
that alone exceeds the size is split further, with langchain-text-splitters' recursive
splitter (with ``chunk_overlap``). Consecutive small sections under the same heading
(notebook cells) are merged up to the size.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jupyter_llm.retrieval.loaders import Section

__all__ = ["ChunkerSettings", "Chunk", "chunk_sections", "HEADING_SEPARATOR"]

HEADING_SEPARATOR = " > "
_SEPARATORS = ["\n```", "\n## ", "\n### ", "\n\n", "\n", ". ", "; ", ", ", " ", ""]
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# prose this short after a code block explains it ("The -r option means ...")
_TAIL_TOKENS = 60


class ChunkerSettings(BaseModel):
    """Chunk size and overlap in tokens (recorded in the collection)."""

    model_config = ConfigDict(extra="forbid")

    chunk_size: int = Field(200, ge=16, le=8192)
    chunk_overlap: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkerSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


@dataclass
class Chunk(Section):
    """A piece of a section to embed and index: the section's place fields plus its size."""

    n_tokens: int = 0

    @property
    def heading_path(self) -> str:
        """The heading trail as one string (``Episode > Section``)."""
        return HEADING_SEPARATOR.join(self.heading)

    def embedding_text(self, title: str = "") -> str:
        """The text given to the embedder: heading trail (context) then the chunk."""
        trail = self.heading_path or title
        return f"{trail}\n{self.text}" if trail and not self.text.startswith(trail) else self.text


def _merge_small(sections: list[Section], count: Callable[[str], int],
                 size: int) -> list[tuple[Section, int]]:
    """Merge consecutive sections with the same heading and page while they fit in ``size``."""
    merged: list[tuple[Section, int]] = []
    for s in sections:
        n = count(s.text)
        if merged:
            last, last_n = merged[-1]
            if (last.heading == s.heading and last.page == s.page
                    and last_n + n + 1 <= size):
                end = s.end_line if s.end_line is not None else last.end_line
                merged[-1] = (Section(last.text + "\n\n" + s.text, last.heading, last.start_line,
                                      end, last.cell_index, last.page), last_n + n + 1)
                continue
        merged.append((s, n))
    return merged


def _line_of(text: str, offset: int, first_line: int | None) -> int | None:
    return None if first_line is None else first_line + text.count("\n", 0, offset)


@dataclass
class _Block:
    """A paragraph or a whole fenced code block: character span in the section text."""

    start: int
    end: int
    code: bool


def _blocks(text: str) -> list[_Block]:
    """Split text into paragraphs (blank-line separated) and whole fenced code blocks."""
    blocks: list[_Block] = []
    fence: str | None = None
    start: int | None = None
    code = False
    offset = 0
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
                blocks.append(_Block(start or 0, offset + len(line.rstrip("\r\n")), True))
                start = None
        elif m:
            if start is not None:
                blocks.append(_Block(start, offset, False))
            fence, start, code = m.group(1), offset, True
        elif not line.strip():
            if start is not None:
                blocks.append(_Block(start, offset, code))
                start = None
        elif start is None:
            start, code = offset, False
        offset += len(line)
    if start is not None:
        blocks.append(_Block(start, len(text), code or fence is not None))
    return blocks


def _units(text: str, blocks: list[_Block], count: Callable[[str], int]) -> list[list[_Block]]:
    """Group blocks: a run of code blocks with the prose just before it and a short tail."""
    units: list[list[_Block]] = []
    i = 0
    while i < len(blocks):
        unit = [blocks[i]]
        j = i + 1
        if not blocks[i].code and j < len(blocks) and blocks[j].code:
            unit.append(blocks[j])
            j += 1
        if unit[-1].code:
            while j < len(blocks) and blocks[j].code:
                unit.append(blocks[j])
                j += 1
            if (j < len(blocks) and not blocks[j].code
                    and not (j + 1 < len(blocks) and blocks[j + 1].code)  # next code's intro
                    and count(text[blocks[j].start:blocks[j].end]) <= _TAIL_TOKENS):
                unit.append(blocks[j])
                j += 1
        units.append(unit)
        i = j
    return units


def _pack(text: str, units: list[list[_Block]], count: Callable[[str], int],
          size: int) -> list[tuple[int, int]]:
    """Character spans of chunks: whole units packed up to ``size`` tokens (big units split)."""
    spans: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    pieces: list[tuple[int, int]] = []
    for unit in units:
        span = (unit[0].start, unit[-1].end)
        if len(unit) > 1 and count(text[span[0]:span[1]]) > size:
            pieces.extend((b.start, b.end) for b in unit)  # too big: pack its blocks
        else:
            pieces.append(span)
    for start, end in pieces:
        if current is not None and count(text[current[0]:end]) <= size:
            current = (current[0], end)
            continue
        if current is not None:
            spans.append(current)
        current = (start, end)
    if current is not None:
        spans.append(current)
    return spans


def chunk_sections(sections: list[Section], settings: ChunkerSettings,
                   count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Split sections into chunks of at most ``chunk_size`` tokens, code kept with its prose."""
    splitter = None
    chunks: list[Chunk] = []
    for section, n in _merge_small(sections, count_tokens, settings.chunk_size):
        if n <= settings.chunk_size:
            chunks.append(Chunk(section.text.strip(), list(section.heading), section.start_line,
                                section.end_line, section.cell_index, section.page, n))
            continue
        text = section.text
        spans = _pack(text, _units(text, _blocks(text), count_tokens), count_tokens,
                      settings.chunk_size)
        for start, end in spans:
            piece = text[start:end]
            n_piece = count_tokens(piece)
            if n_piece <= settings.chunk_size:
                lead = len(piece) - len(piece.lstrip())
                chunks.append(Chunk(piece.strip(), list(section.heading),
                                    _line_of(text, start + lead, section.start_line),
                                    _line_of(text, start + len(piece.rstrip()),
                                             section.start_line),
                                    section.cell_index, section.page, n_piece))
                continue
            if splitter is None:
                from langchain_text_splitters import RecursiveCharacterTextSplitter

                splitter = RecursiveCharacterTextSplitter(
                    chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                    length_function=count_tokens, separators=_SEPARATORS,
                    keep_separator="start")
            cursor = 0
            for sub in splitter.split_text(piece):
                sub = sub.strip()
                if not sub:
                    continue
                at = piece.find(sub, cursor)
                if at < 0:
                    at = max(piece.find(sub), 0)
                cursor = at + 1
                chunks.append(Chunk(sub, list(section.heading),
                                    _line_of(text, start + at, section.start_line),
                                    _line_of(text, start + at + len(sub), section.start_line),
                                    section.cell_index, section.page, count_tokens(sub)))
    return chunks
