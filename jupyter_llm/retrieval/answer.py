"""Grounded answers: a prompt of numbered sources, an answer citing them as [n].

When the collection does not cover the question, the answer says so instead of
inventing one. With no chat model (None, or one that is unavailable), the
answer is the cited passages themselves, clearly labelled as retrieval only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_llm.errors import BackendError, JupyterLLMError, MissingDependency, ModelNotReady
from jupyter_llm.retrieval.citations import Citation
from jupyter_llm.retrieval.search import SearchResults, search

if TYPE_CHECKING:
    from jupyter_llm.retrieval.storage import CollectionFile

__all__ = ["Answer", "ask", "build_messages", "NOT_COVERED", "RETRIEVAL_ONLY", "SYSTEM_PROMPT"]

SYSTEM_PROMPT = (
    "You are a teaching assistant for a course. Answer the student's question using ONLY the "
    "numbered course sources provided. Cite every statement with the number of its source in "
    "square brackets, like [1] or [2][3]. If the sources do not contain the answer, reply "
    "that the course materials do not cover the question. Do not invent facts, commands or "
    "sources. Be concise."
)
NOT_COVERED = "The course materials do not cover this question."
RETRIEVAL_ONLY = "Retrieval only (no chat model was used): the most relevant course passages."
_CITE = re.compile(r"\[(\d{1,3})\]")


@dataclass
class Answer:
    """A grounded answer: text citing [n], the numbered sources, and how it was made."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    supported: bool = True
    retrieval_only: bool = False
    model: str | None = None
    note: str | None = None
    results: SearchResults | None = None

    @property
    def cited(self) -> list[int]:
        """Source numbers the text cites, in order of first use (only valid numbers)."""
        valid = {c.n for c in self.citations}
        seen = dict.fromkeys(int(m) for m in _CITE.findall(self.text) if int(m) in valid)
        return list(seen)

    def to_markdown(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """The answer followed by its sources as links (only cited ones, if any were cited)."""
        cited = set(self.cited)
        shown = [c for c in self.citations if c.n in cited] or (
            self.citations if (self.retrieval_only or not self.supported) else [])
        parts = [self.text.strip()]
        if self.note:
            parts.append(f"*{self.note}*")
        if shown:
            parts.append("**Sources**\n\n" + "\n".join(
                f"- {c.to_markdown(relative_to)}" for c in shown))
        return "\n\n".join(parts)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"question": self.question, "answer": self.text, "supported": self.supported,
                "retrieval_only": self.retrieval_only, "model": self.model, "note": self.note,
                "cited": self.cited, "citations": [c.to_dict() for c in self.citations]}


def build_messages(question: str, results: SearchResults) -> list[dict[str, str]]:
    """Chat messages: the grounding instructions, then numbered sources and the question."""
    blocks = []
    for c, r in zip(results.citations(), results.results, strict=True):
        blocks.append(f"[{c.n}] {c.label()}\n{r.text.strip()}")
    user = ("Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question.strip()}\n\n"
            "Answer with citations like [1].")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _passages(results: SearchResults) -> str:
    lines = []
    for c, r in zip(results.citations(), results.results, strict=True):
        snippet = " ".join((r.hit_text or r.text).split())
        if len(snippet) > 400:
            snippet = snippet[:400].rsplit(" ", 1)[0] + " …"
        lines.append(f"[{c.n}] {snippet}")
    return "\n\n".join(lines)


def _model_id(model: Any) -> str | None:
    return getattr(model, "model_id", None) or getattr(model, "id", None) or (
        type(model).__name__ if model is not None else None)


def ask(coll: CollectionFile, question: str, *, model: Any = None, k: int = 5,
        mode: str = "hybrid", source: str | None = None, threshold: float | None = None,
        on_text: Callable[[str], None] | None = None, **options: Any) -> Answer:
    """Answer ``question`` from ``coll`` with a chat ``model`` (anything with
    ``prompt(*, messages, stream, **options)``), citing sources as [n]."""
    results = search(coll, question, k=k, mode=mode, source=source, threshold=threshold)
    citations = results.citations()
    if not results.supported:
        text = NOT_COVERED
        if results.results:
            text += " The closest passages are listed below, but they do not answer it."
        if on_text:
            on_text(text)
        return Answer(question, text, citations, False, model is None, _model_id(model),
                      results=results)
    if model is None:
        text = RETRIEVAL_ONLY + "\n\n" + _passages(results)
        if on_text:
            on_text(text)
        return Answer(question, text, citations, True, True, None, results=results)
    messages = build_messages(question, results)
    pieces: list[str] = []
    try:
        for chunk in model.prompt(messages=messages, stream=True, **options):
            piece = chunk if isinstance(chunk, str) else str(chunk)
            pieces.append(piece)
            if on_text:
                on_text(piece)
    except (MissingDependency, ModelNotReady, BackendError) as e:
        if pieces:
            raise
        text = RETRIEVAL_ONLY + "\n\n" + _passages(results)
        if on_text:
            on_text(text)
        note = f"The chat model is unavailable ({e.message})"
        return Answer(question, text, citations, True, True, _model_id(model), note, results)
    except JupyterLLMError:
        raise
    return Answer(question, "".join(pieces), citations, True, False, _model_id(model),
                  results=results)
