"""The ``Client`` interface: what magics, widgets and the CLI may ask of a model host."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..models import Message, Response

if TYPE_CHECKING:
    from ..retrieval.answer import Answer
    from ..retrieval.evaluate import EvalItem, EvalProgress, EvalReport
    from ..retrieval.questions import Question
    from ..retrieval.search import SearchResults

__all__ = ["Client", "ProgressCallback"]

ProgressCallback = Callable[[dict[str, Any]], None]


class Client(ABC):
    """One interface, two places: ``RemoteClient`` (HTTP to a server) and ``LocalClient``
    (a host in this process)."""

    @abstractmethod
    def models(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Every registry model with its ``state``: available, downloading, installed, loaded."""

    @abstractmethod
    def pull(self, model_id: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Download a registry model (resumable, checked) and return its manifest."""

    @abstractmethod
    def cancel_pull(self, model_id: str) -> bool:
        """Cancel a running download; the partial file is kept for a later resume."""

    @abstractmethod
    def remove(self, model_id: str) -> bool:
        """Delete an installed model's file (unloading it first)."""

    @abstractmethod
    def load(self, model_id: str, **options: Any) -> dict[str, Any]:
        """Load a model now (instead of on first use) and return its ``ps`` entry."""

    @abstractmethod
    def unload(self, model_id: str) -> bool:
        """Unload a model and free its memory."""

    @abstractmethod
    def ps(self) -> list[dict[str, Any]]:
        """The loaded models with memory, queue depth, last use and expiry."""

    # -- the classroom: identity, feedback, export, tokens -------------------------------------
    @abstractmethod
    def me(self) -> dict[str, Any]:
        """Who this client is to the host: name, role, what the role may do, usage of limits."""

    @abstractmethod
    def feedback(self, entry: int | str, *, rating: int | None = None,
                 score: float | None = None, comment: str | None = None) -> dict[str, Any]:
        """Rate a history entry (its id, or a response's ``request_id``): ``rating`` 1 (thumbs
        up) or -1 (down), ``score`` 0-10, a ``comment``; returns the updated entry."""

    @abstractmethod
    def export_history(self, fmt: str = "jsonl", **filters: Any) -> str:
        """The history (filtered by model, user, collection, since, until) as CSV or JSONL."""

    @abstractmethod
    def tokens(self) -> list[dict[str, Any]]:
        """Named API tokens: name, role, creation time (admins)."""

    @abstractmethod
    def add_token(self, name: str, role: str = "student") -> dict[str, Any]:
        """Issue a named token; the answer is the only place it is shown (admins)."""

    @abstractmethod
    def revoke_token(self, name: str) -> bool:
        """Revoke a named token at once (admins)."""

    @abstractmethod
    def chat(self, messages: list[Message], model: str | None = None, *, stream: bool = True,
             log: bool = True, tutoring: bool = False, **options: Any) -> Response:
        """Run a chat; ``model`` is an id, alias, ``tags:...`` query, or None for the default
        (``tutoring``: ask for the tutoring guard, as a notebook set by the instructor does)."""

    @abstractmethod
    def generate(self, prompt: str, model: str | None = None, *, stream: bool = True,
                 log: bool = True, **options: Any) -> Response:
        """Run a raw completion (no chat template)."""

    @abstractmethod
    def embed(self, texts: list[str], model: str | None = None) -> list[list[float]]:
        """Return one vector per text from an embedding model."""

    @abstractmethod
    def history(self, limit: int = 20, *, model: str | None = None, user: str | None = None,
                collection: str | None = None, since: float | None = None,
                until: float | None = None) -> list[dict[str, Any]]:
        """The most recent requests (that the caller may see), newest first; filtered by
        model, user, collection and a ``[since, until)`` range of epoch seconds."""

    @abstractmethod
    def history_stats(self, *, by: str = "model", user: str | None = None,
                      collection: str | None = None, since: float | None = None,
                      until: float | None = None) -> dict[str, Any]:
        """Requests, errors, refusals, tokens, mean ttft, tokens/s and feedback per model (or
        per user, ``by="user"``) and in total, of the entries the filters select."""

    # -- saved conversations (each user's own) ----------------------------------------------
    @abstractmethod
    def conversations(self) -> list[dict[str, Any]]:
        """Your saved conversations, most recent first: id, title, model, collection, times,
        message_count."""

    @abstractmethod
    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """One of your saved conversations with its ``messages``."""

    @abstractmethod
    def save_conversation(self, messages: list[dict[str, Any]], *,
                          conversation_id: str | None = None, title: str | None = None,
                          model: str | None = None,
                          collection: str | None = None) -> dict[str, Any]:
        """Save a new conversation (no id) or replace the messages of one of yours; each
        message is ``{role, content}`` plus optional fields (model, citations, request_id)."""

    @abstractmethod
    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete one of your saved conversations."""

    @abstractmethod
    def export_conversation(self, conversation_id: str, path: str | None = None) -> str:
        """Write a saved conversation as a notebook (questions and answers as markdown cells,
        Python code blocks as code cells) and return its path: relative to the server's root
        (remote) or the working directory (local); ``path`` names it (never overwritten)."""

    # -- retrieval collections ---------------------------------------------------------------
    @abstractmethod
    def collections(self) -> list[dict[str, Any]]:
        """Every collection: name, path, documents, chunks, embedding_model, vector_backend."""

    @abstractmethod
    def create_collection(self, name: str, vector_backend: str | None = None, *,
                          embedding_model: str | None = None, chunk_size: int | None = None,
                          chunk_overlap: int | None = None) -> dict[str, Any]:
        """Create a collection (or return a matching existing one) and describe it; chunk
        sizes are in tokens (defaults 200 and 32), recorded in the collection."""

    @abstractmethod
    def collection_documents(self, name: str) -> list[dict[str, Any]]:
        """The documents of a collection: path, title, kind, size, chunks, when ingested."""

    @abstractmethod
    def delete_collection(self, name: str) -> bool:
        """Delete a collection file (the source files are untouched)."""

    @abstractmethod
    def collection(self, name: str) -> dict[str, Any]:
        """One collection's summary (404 when there is none of that name)."""

    @abstractmethod
    def configure_collection(self, name: str, *,
                             tutoring_guard: bool | None = None) -> dict[str, Any]:
        """Change a collection's settings (the tutoring guard: instructors only); its summary."""

    @abstractmethod
    def ingest(self, name: str, paths: Sequence[str], include: Sequence[str] = (),
               exclude: Sequence[str] = (),
               progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Add, update and remove documents; ``progress`` gets one dict per file. Returns the
        summary: added, updated, unchanged, removed, failed (with reasons), chunks."""

    @abstractmethod
    def search(self, name: str, query: str, k: int = 5, mode: str = "hybrid", *,
               source: str | None = None, threshold: float | None = None) -> SearchResults:
        """The ``k`` best chunks (``dense``, ``lexical`` or ``hybrid``) with citations and
        whether the collection covers the query (``supported``: the best similarity reaches
        ``threshold``, by default the collection's own)."""

    @abstractmethod
    def search_many(self, name: str, queries: Sequence[str], k: int = 5, mode: str = "hybrid",
                    *, source: str | None = None,
                    threshold: float | None = None) -> list[SearchResults]:
        """``search`` for each of several queries in one call, in order."""

    @abstractmethod
    def ask(self, name: str, question: str, model: str | None = None, stream: bool = False, *,
            k: int = 5, mode: str = "hybrid", source: str | None = None,
            threshold: float | None = None, retrieval_only: bool = False, log: bool = True,
            **options: Any) -> Answer | Response:
        """A grounded answer citing the collection (``model`` None: the default chat model, or
        a retrieval-only answer when there is none or ``retrieval_only``): an ``Answer``, or
        with ``stream=True`` a ``Response`` whose ``answer`` and ``citations`` are set when the
        stream ends."""

    @abstractmethod
    def evaluate_items(self, name: str, questions: Sequence[Question],
                       models: Sequence[str | None] = (), *, k: int = 5, mode: str = "hybrid",
                       threshold: float | None = None,
                       options: dict[str, Any] | None = None) -> Iterator[EvalItem]:
        """Measure each question with each model (None: retrieval only), yielding one
        ``EvalItem`` at a time; closing the iterator stops the run. See :meth:`evaluate`."""

    def evaluate(self, name: str, questions: Sequence[Question] | str | os.PathLike[str],
                 models: Sequence[str | None] = (), *, k: int = 5, mode: str = "hybrid",
                 threshold: float | None = None,
                 answers: str | os.PathLike[str] | TextIO | None = None,
                 progress: Callable[[EvalProgress], None] | None = None,
                 **options: Any) -> EvalReport:
        """Evaluate a collection on a question file (or ``Question`` list): retrieval hit@k and
        contains@k, abstention, and per chat model (none: retrieval only) answer contains,
        valid citations and p50/p95 latency, side by side. Every answer goes to ``answers``
        (a JSONL path or stream) as it is measured; Ctrl-C ends the run early and returns
        what was measured (``report.interrupted``)."""
        from ..retrieval.evaluate import RETRIEVAL_ONLY_NAME, EvalReport, ModelReport, collect
        from ..retrieval.questions import load_questions

        qs = (load_questions(questions) if isinstance(questions, str | os.PathLike)
              else list(questions))
        names = [m or RETRIEVAL_ONLY_NAME for m in models] or [RETRIEVAL_ONLY_NAME]
        report = EvalReport(name, k, mode, len(qs) * len(names),
                            [ModelReport(n) for n in names])
        items = self.evaluate_items(name, qs, list(models), k=k, mode=mode,
                                    threshold=threshold, options=options)
        return collect(report, items, answers=answers, progress=progress)

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what this client holds (connections, an in-process host's workers)."""

    def prompt(self, text: str, model: str | None = None, *, system: str | None = None,
               **options: Any) -> Response:
        """Chat with one user message (and an optional system message)."""
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": text})
        return self.chat(messages, model, **options)
