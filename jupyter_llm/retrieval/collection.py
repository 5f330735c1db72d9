"""``Collection``: a retrieval collection in one portable SQLite file, with ingest, search and
grounded answers as methods (the storage is :class:`~jupyter_llm.retrieval.storage.CollectionFile`;
the work is done by the ``ingest``, ``search`` and ``answer`` modules, which know only the file)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from jupyter_llm.retrieval.answer import Answer, ask
from jupyter_llm.retrieval.expansion import ExpansionSettings
from jupyter_llm.retrieval.ingest import IngestProgress, IngestReport, ingest
from jupyter_llm.retrieval.search import SearchResults, search
from jupyter_llm.retrieval.storage import (
    DEFAULT_SUPPORT_THRESHOLD,
    CollectionFile,
    EmbedderMismatch,
    NotACollection,
)

__all__ = ["Collection", "EmbedderMismatch", "NotACollection", "DEFAULT_SUPPORT_THRESHOLD"]


class Collection(CollectionFile):
    """A retrieval collection stored in one SQLite file; open with :meth:`open` or :meth:`create`."""

    # --- faces ----------------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | os.PathLike[str]], *, include: Iterable[str] = (),
               exclude: Iterable[str] = (),
               progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Ingest files and folders (see :func:`jupyter_llm.retrieval.ingest.ingest`)."""
        return ingest(self, paths, include=include, exclude=exclude, progress=progress)

    def search(self, query: str, *, k: int = 5, mode: str = "hybrid",
               source: str | None = None, threshold: float | None = None,
               expansion: ExpansionSettings | bool | None = None) -> SearchResults:
        """Search (see :func:`jupyter_llm.retrieval.search.search`)."""
        return search(self, query, k=k, mode=mode, source=source, threshold=threshold,
                      expansion=expansion)

    def ask(self, question: str, *, model: Any = None, k: int = 5, mode: str = "hybrid",
            source: str | None = None, **options: Any) -> Answer:
        """Answer from the collection with citations (see :func:`jupyter_llm.retrieval.answer.ask`)."""
        return ask(self, question, model=model, k=k, mode=mode, source=source, **options)
