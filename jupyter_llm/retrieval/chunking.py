"""Chunking: split loaded sections into chunks sized in tokens, never across headings or pages.

Sections (one per heading, cell or page) are split with langchain-text-splitters'
recursive splitter, measuring length with the embedder's own tokenizer. Consecutive
small sections under the same heading (notebook cells) are merged up to the size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jupyter_llm.retrieval.loaders import Section

__all__ = ["ChunkerSettings", "Chunk", "chunk_sections", "HEADING_SEPARATOR"]

HEADING_SEPARATOR = " > "
_SEPARATORS = ["\n```", "\n## ", "\n### ", "\n\n", "\n", ". ", "; ", ", ", " ", ""]


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


def chunk_sections(sections: list[Section], settings: ChunkerSettings,
                   count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Split sections into chunks of at most ``chunk_size`` tokens with ``chunk_overlap``."""
    splitter = None
    chunks: list[Chunk] = []
    for section, n in _merge_small(sections, count_tokens, settings.chunk_size):
        if n <= settings.chunk_size:
            chunks.append(Chunk(section.text.strip(), list(section.heading), section.start_line,
                                section.end_line, section.cell_index, section.page, n))
            continue
        if splitter is None:
            from langchain_text_splitters import RecursiveCharacterTextSplitter

            splitter = RecursiveCharacterTextSplitter(
                chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                length_function=count_tokens, separators=_SEPARATORS, keep_separator="start")
        text = section.text
        cursor = 0
        for piece in splitter.split_text(text):
            piece = piece.strip()
            if not piece:
                continue
            at = text.find(piece, cursor)
            if at < 0:
                at = max(text.find(piece), 0)
            cursor = at + 1
            chunks.append(Chunk(piece, list(section.heading),
                                _line_of(text, at, section.start_line),
                                _line_of(text, at + len(piece), section.start_line),
                                section.cell_index, section.page, count_tokens(piece)))
    return chunks
