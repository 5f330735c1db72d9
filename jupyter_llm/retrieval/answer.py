"""Grounded answers: a prompt of numbered sources, an answer citing them as [n].

When the collection does not cover the question, the answer says so instead of
inventing one. With no chat model (None, or one that is unavailable), the
answer is the cited passages themselves, clearly labelled as retrieval only.

A small model's answer is never shown worse than the passages: the prompt labels sources
with short titles a model will not copy (no paths, no line numbers), sampling defaults keep it
from looping, a guard stops the generation as soon as it repeats itself, and an answer that
cites no valid [n] (or cites a number with no source, or shares too few words with the
passages it cites) is replaced by quoted windows of the passages, each cited, with a note
saying why (``Answer.citation_check``). A kept answer is followed by the focused excerpt of
the passages it cites, so the shown answer holds at least what retrieval found.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_llm.errors import BackendError, JupyterLLMError, MissingDependency, ModelNotReady
from jupyter_llm.retrieval.citations import (
    Citation,
    CitationCheck,
    check_citations,
    cited_numbers,
)
from jupyter_llm.retrieval.extractive import evidence, excerpt, extractive_answer, support
from jupyter_llm.retrieval.repetition import find_repetition
from jupyter_llm.retrieval.search import SearchResults, search

if TYPE_CHECKING:
    from jupyter_llm.retrieval.storage import CollectionFile

__all__ = ["Answer", "ask", "build_messages", "sampling_defaults", "NOT_COVERED",
           "RETRIEVAL_ONLY", "SYSTEM_PROMPT", "GROUNDED_SAMPLING", "CHECK_NOTES"]

SYSTEM_PROMPT = (
    "You are a teaching assistant for a course. Answer the student's question in one to "
    "three sentences using ONLY the numbered sources. Use the exact commands and words of the "
    "sources. After each sentence, write the number of its source in square brackets, like "
    "[1]. If the sources do not answer the question, say that the course materials do not "
    "cover it."
)
PROMPT_WORDS = 120
"""About how many words of each passage the prompt holds: the sentences that best match the
question (a small model copies from a short excerpt; the faces show the whole passage)."""
SNIPPET_WORDS = 80
"""About how many words of each passage a retrieval-only answer shows (its best sentences)."""
GROUNDED_SAMPLING: dict[str, Any] = {"max_tokens": 256, "repeat_penalty": 1.1}
"""Options a grounded answer runs with when neither the caller nor the registry sets them:
short answers, and a repetition penalty that keeps small local models out of loops
(``repeat_penalty`` only for local llama.cpp models; a remote API may reject it)."""
CHECK_NOTES = {
    "empty": "The model gave no answer",
    "repetition": "The model began repeating itself and was stopped",
    "no_citation": "The model's answer cited no source",
    "invalid_citation": "The model's answer cited sources that do not exist ({invalid})",
    "unsupported": "The model's answer shares too few words with the sources it cites",
}
SUPPORT_MIN = 0.5
"""Least share of a model answer's content words that its cited passages must hold."""
NOT_COVERED = "The course materials do not cover this question."
RETRIEVAL_ONLY = "Retrieval only (no chat model was used): the most relevant course passages."
PASSAGES = "The most relevant course passages:"


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
    citation_check: CitationCheck | None = None
    """For a model's answer: whether it cited valid sources, and what is shown instead."""

    @property
    def cited(self) -> list[int]:
        """Source numbers the text cites, in order of first use (only valid numbers)."""
        valid = {c.n for c in self.citations}
        return [n for n in cited_numbers(self.text) if n in valid]

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
                "cited": self.cited, "citations": [c.to_dict() for c in self.citations],
                "citation_check": (self.citation_check.to_dict()
                                   if self.citation_check is not None else None)}


def build_messages(question: str, results: SearchResults,
                   words: int = PROMPT_WORDS) -> list[dict[str, str]]:
    """Chat messages: the grounding instructions, then the sources (numbered, with short
    titles and no paths or line numbers, excerpts of about ``words`` words) and the question."""
    blocks = []
    for c, r in zip(results.citations(), results.results, strict=True):
        text = excerpt(question, r.text, words) or r.text.strip()
        blocks.append(f"[{c.n}] {c.short_title()}\n{text}")
    user = ("Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question.strip()}\n\n"
            "Answer in one to three sentences, citing sources like [1].")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _passages(results: SearchResults) -> str:
    lines = []
    for c, r in zip(results.citations(), results.results, strict=True):
        # the sentences of the (expanded) passage that best match the question
        snippet = " ".join((excerpt(results.query, r.text, SNIPPET_WORDS) or r.text).split())
        if len(snippet) > 1000:
            snippet = snippet[:1000].rsplit(" ", 1)[0] + " …"
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
    options = {**sampling_defaults(model), **options}
    pieces: list[str] = []
    looped = False
    try:
        stream = model.prompt(messages=messages, stream=True, **options)
        iterator = iter(stream)
        try:
            for chunk in iterator:
                piece = chunk if isinstance(chunk, str) else str(chunk)
                pieces.append(piece)
                if on_text:
                    on_text(piece)
                if len(pieces) % _GUARD_EVERY == 0 and _loops(pieces):
                    looped = True
                    break
        finally:
            if looped:
                _stop(stream, iterator)
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
    return checked(Answer(question, "".join(pieces), citations, True, False, _model_id(model),
                          results=results), looped=looped)


_GUARD_EVERY = 4  # pieces between two looks at the text
_GUARD_TAIL = 1500  # characters looked at: a loop shows at the end, and each look stays cheap


def _loops(pieces: list[str]) -> bool:
    """Whether the end of the text streamed so far repeats itself."""
    tail, size = [], 0
    for piece in reversed(pieces):
        tail.append(piece)
        size += len(piece)
        if size >= _GUARD_TAIL:
            break
    return find_repetition("".join(reversed(tail))[-_GUARD_TAIL:]) is not None


def _stop(stream: Any, iterator: Any) -> None:
    """Stop a model's stream that is no longer read (the model stops generating)."""
    cancel = getattr(stream, "cancel", None)
    if callable(cancel):
        cancel()
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def sampling_defaults(model: Any) -> dict[str, Any]:
    """The :data:`GROUNDED_SAMPLING` options the registry does not set for ``model``
    (``repeat_penalty`` only for local llama.cpp models)."""
    spec = getattr(model, "spec", None)
    given = dict(getattr(spec, "default_options", None) or {})
    backend = getattr(spec, "backend", None) if spec is not None else getattr(model, "backend",
                                                                               None)
    local = backend == "llama_cpp"
    return {k: v for k, v in GROUNDED_SAMPLING.items()
            if k not in given and (local or k != "repeat_penalty")}


def checked(answer: Answer, *, looped: bool = False) -> Answer:
    """Check a model's answer cites valid sources whose words it uses; when it does, show it
    followed by the focused excerpt of the passages it cites; when it does not (or it
    looped), show quoted windows of the passages, each cited, with a note saying why."""
    model_text = answer.text
    valid = {c.n for c in answer.citations}
    check = check_citations(model_text, valid)
    if looped:
        check.valid, check.reason = False, "repetition"
    answer.citation_check = check
    results = answer.results
    if check.valid and results is not None:
        cited = {c.n for c in answer.citations} & set(check.cited or [])
        texts = [r.text for c, r in zip(answer.citations, results.results, strict=False)
                 if c.n in cited]
        if support(model_text, texts) < SUPPORT_MIN:
            check.valid, check.reason = False, "unsupported"
    check.model_text = model_text
    if check.valid:
        shown = evidence(answer.question, results, check.cited or []) if results else ""
        if shown:
            answer.text = model_text.rstrip() + "\n\n" + shown
        return answer
    text = extractive_answer(answer.question, results) if results is not None else ""
    if text:
        check.action = "extractive"
        why = "quoted sentences of the passages are shown instead"
    else:
        check.action = "passages"
        text = PASSAGES + "\n\n" + _passages(results) if results is not None else ""
        why = "the passages are shown instead"
    reason = CHECK_NOTES[check.reason or "no_citation"].format(
        invalid=", ".join(f"[{n}]" for n in check.invalid or []))
    answer.text = text
    answer.note = f"{reason}; {why}."
    return answer
