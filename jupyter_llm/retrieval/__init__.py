"""Retrieval over course materials: collections in one SQLite file, search, grounded answers.

A plain library: it knows no host, HTTP or face. An embedder or chat model is passed in;
named collections, the collections folder and host models are the host's collections service
(``jupyter_llm.host.collections``), which every face reaches through a ``Client``::

    from jupyter_llm.retrieval import Collection
    coll = Collection.create("course.sqlite", vector_backend="vec")   # or Collection.open(path)
    coll.ingest(["course/"], include=["*.md"], progress=print)
    results = coll.search("how do I undo a commit?", k=5, mode="hybrid")
    answer = coll.ask("how do I undo a commit?", model=chat_model_or_None)
    report = evaluate(coll, "questions.jsonl", models=[None, chat_model])  # the harness
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Collection",
    "EmbedderMismatch",
    "Embedder",
    "get_embedder",
    "SearchResult",
    "SearchResults",
    "Citation",
    "Answer",
    "IngestProgress",
    "IngestReport",
    "Question",
    "load_questions",
    "evaluate",
    "EvalReport",
]

_LAZY = {
    "Collection": "jupyter_llm.retrieval.collection",
    "EmbedderMismatch": "jupyter_llm.retrieval.collection",
    "Embedder": "jupyter_llm.retrieval.embedders",
    "get_embedder": "jupyter_llm.retrieval.embedders",
    "SearchResult": "jupyter_llm.retrieval.search",
    "SearchResults": "jupyter_llm.retrieval.search",
    "Citation": "jupyter_llm.retrieval.citations",
    "Answer": "jupyter_llm.retrieval.answer",
    "IngestProgress": "jupyter_llm.retrieval.ingest",
    "IngestReport": "jupyter_llm.retrieval.ingest",
    "Question": "jupyter_llm.retrieval.questions",
    "load_questions": "jupyter_llm.retrieval.questions",
    "evaluate": "jupyter_llm.retrieval.evaluate",
    "EvalReport": "jupyter_llm.retrieval.evaluate",
}


def __getattr__(name: str) -> Any:
    """Import public names on first use, so importing this package stays cheap."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_llm.retrieval' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
