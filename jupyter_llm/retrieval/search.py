"""Search a collection: ``dense`` (vectors), ``lexical`` (FTS5 BM25) or ``hybrid`` (both).

Every result carries a citation, and every search says whether the collection
really covers the query (``supported``, with a ``reason`` when it does not): see
:mod:`jupyter_llm.retrieval.support` for the signals and the collection's thresholds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_llm.errors import InvalidRequest
from jupyter_llm.retrieval.citations import Citation
from jupyter_llm.retrieval.expansion import (
    DEFAULT_EXPANSION,
    NO_EXPANSION,
    ExpansionSettings,
    expand,
)
from jupyter_llm.retrieval.support import STOPWORDS as _STOPWORDS
from jupyter_llm.retrieval.support import assess

if TYPE_CHECKING:
    from jupyter_llm.retrieval.storage import CollectionFile

__all__ = ["MODES", "SearchResult", "SearchResults", "search", "fts_query", "DENSE_WEIGHT",
           "score_fusion"]

MODES = ("dense", "lexical", "hybrid")
DENSE_WEIGHT = 0.5
"""The dense list's share of a ``hybrid`` score (the lexical list has the rest)."""
MAX_K = 1000
_TOKEN = re.compile(r"\w+", re.UNICODE)


def score_fusion(dense: Sequence[tuple[Any, float]], lexical: Sequence[tuple[Any, float]],
                 dense_weight: float = DENSE_WEIGHT) -> list[tuple[Any, float]]:
    """Hybrid ranking: each list's scores min-max scaled to 0–1 over its candidates, then
    mixed by weight (an item missing from a list scores 0 there), best first.

    Unlike reciprocal-rank fusion, a passage far ahead in one list stays ahead: a clear
    dense first place is not outranked by passages that are middling in both lists.
    """
    def scaled(scored: Sequence[tuple[Any, float]]) -> dict[Any, float]:
        if not scored:
            return {}
        lo, hi = min(s for _, s in scored), max(s for _, s in scored)
        return {i: (s - lo) / (hi - lo) if hi > lo else 1.0 for i, s in scored}

    d, lex = scaled(dense), scaled(lexical)
    mixed = {i: dense_weight * d.get(i, 0.0) + (1.0 - dense_weight) * lex.get(i, 0.0)
             for i in {**d, **lex}}
    return sorted(mixed.items(), key=lambda t: -t[1])


@dataclass
class SearchResult:
    """One retrieved chunk with its score and citation."""

    chunk_id: int
    text: str
    score: float
    source: str
    path: str
    title: str
    heading: str
    start_line: int | None
    end_line: int | None
    cell_index: int | None
    page: int | None
    similarity: float | None = None
    chunk_ids: list[int] = field(default_factory=list)
    """Every chunk the passage spans, in document order (section expansion)."""
    hit_text: str = ""
    """The best-ranked chunk of the passage alone (what a short snippet shows)."""

    def citation(self, n: int = 1) -> Citation:
        """This result as citation number ``n``."""
        return Citation(n, self.source, self.path, self.title, self.heading, self.start_line,
                        self.end_line, self.cell_index, self.page)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the batch-search shape plus extras)."""
        return {"source": self.source, "text": self.text, "score": self.score,
                "heading": self.heading, "start_line": self.start_line,
                "end_line": self.end_line, "cell_index": self.cell_index, "page": self.page,
                "title": self.title, "similarity": self.similarity, "chunk_id": self.chunk_id,
                "chunk_ids": self.chunk_ids or [self.chunk_id]}


@dataclass
class SearchResults:
    """The results of one query, best first, and whether the collection covers it."""

    query: str
    mode: str
    results: list[SearchResult] = field(default_factory=list)
    supported: bool = False
    top_similarity: float | None = None
    threshold: float = 0.0
    reason: str | None = None
    missing_terms: list[str] = field(default_factory=list)
    relevance: Callable[[Sequence[str]], list[float]] | None = field(
        default=None, repr=False, compare=False)
    """The cosine of each given text to the query, with the collection's embedder (set by
    :func:`search`; None on results rebuilt from JSON). Used to pick the sentences of the
    passages that answer best (:func:`jupyter_llm.retrieval.extractive.focused`)."""

    def __iter__(self):  # noqa: ANN204 - a plain iterator
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> SearchResult:
        return self.results[i]

    def citations(self) -> list[Citation]:
        """One numbered citation per result."""
        return [r.citation(i) for i, r in enumerate(self.results, start=1)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: query, mode, supported (and why not), top_similarity, threshold, results."""
        return {"query": self.query, "mode": self.mode, "supported": self.supported,
                "top_similarity": self.top_similarity, "threshold": self.threshold,
                "reason": self.reason, "missing_terms": self.missing_terms,
                "results": [r.to_dict() for r in self.results]}

    def _repr_markdown_(self) -> str:
        head = (f"**{len(self)} results** for *{self.query}* ({self.mode})"
                + ("" if self.supported else
                   " — ⚠️ the collection does not seem to cover this question"
                   + (f" ({self.reason})" if self.reason else "")))
        lines = [head, ""]
        for c, r in zip(self.citations(), self.results, strict=True):
            snippet = " ".join((r.hit_text or r.text).split())[:240]
            lines.append(f"- {c.to_markdown()} — score {r.score:.3f}<br>{snippet}")
        return "\n".join(lines)


def fts_query(text: str) -> str:
    """Turn free text into a safe FTS5 query: quoted terms joined by OR, stopwords dropped."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    terms = [t for t in tokens if t not in _STOPWORDS] or tokens
    unique = list(dict.fromkeys(terms))
    return " OR ".join(f'"{t}"' for t in unique)


def _source_chunk_ids(coll: CollectionFile, source: str) -> list[int]:
    """Chunk ids whose document matches ``source``: a glob, a file, or a folder prefix."""
    if any(ch in source for ch in "*?["):
        where, params = "d.path GLOB ?", [source]
    else:
        key = source.rstrip("/")
        where, params = "(d.path = ? OR d.path LIKE ? ESCAPE '\\')", [
            key, key.replace("%", "\\%").replace("_", "\\_") + "/%"]
        if not key.startswith("/"):  # also match relative to an absolute recorded path
            where += " OR d.path LIKE ? ESCAPE '\\'"
            params.append("%/" + key.replace("%", "\\%").replace("_", "\\_") + "%")
    return [r[0] for r in coll.db.execute(
        f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE {where}",
        params)]


def _lexical(coll: CollectionFile, query: str, n: int, within: list[int] | None) -> list[tuple[int, float]]:
    match = fts_query(query)
    if not match or (within is not None and not within):
        return []
    sql = "SELECT rowid, bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts WHERE chunks_fts MATCH ?"
    params: list[Any] = [match]
    if within is not None:
        sql += " AND rowid IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(within))
    sql += " ORDER BY s LIMIT ?"
    params.append(n)
    return [(int(r), -float(s)) for r, s in coll.db.execute(sql, params)]


def _join(texts: list[str]) -> str:
    """Chunk texts in order, a repeated overlap (from the recursive splitter) dropped."""
    out = texts[0] if texts else ""
    for t in texts[1:]:
        cut = 0
        for n in range(min(len(out), len(t), 2000), 15, -1):
            if out.endswith(t[:n]):
                cut = n
                break
        out = out + "\n\n" + t[cut:].lstrip() if cut else out + "\n\n" + t
    return out


def _fetch(coll: CollectionFile, scored: list[tuple[int, float]], sims: dict[int, float],
           k: int, expansion: ExpansionSettings) -> list[SearchResult]:
    passages = expand(coll, scored, k, expansion)
    ids = [i for p in passages for i in p.chunk_ids]
    if not ids:
        return []
    rows = coll.db.execute(
        "SELECT c.id, c.text, d.path, d.title, c.heading, c.start_line, c.end_line, "
        "c.cell_index, c.page FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE c.id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))
    by_id = {r[0]: r for r in rows}
    out = []
    for p in passages:
        parts = [by_id[i] for i in p.chunk_ids if i in by_id]
        if not parts:
            continue
        a = by_id.get(p.anchor, parts[0])
        starts = [r[5] for r in parts if r[5] is not None]
        ends = [r[6] for r in parts if r[6] is not None]
        similarity = max((sims[i] for i in p.hits if i in sims), default=None)
        out.append(SearchResult(p.anchor, _join([r[1] for r in parts]), float(p.score), a[2],
                                str(coll.resolve_source(a[2])), a[3], a[4],
                                min(starts) if starts else None, max(ends) if ends else None,
                                parts[0][7], a[8], similarity, [r[0] for r in parts], a[1]))
    return out


def search(coll: CollectionFile, query: str, *, k: int = 5, mode: str = "hybrid",
           source: str | None = None, threshold: float | None = None,
           expansion: ExpansionSettings | bool | None = None) -> SearchResults:
    """Return the ``k`` best passages for ``query`` with citations and a ``supported`` verdict.

    Each hit carries its neighbouring chunks and adjacent hits are merged
    (:mod:`jupyter_llm.retrieval.expansion`): ``expansion`` is the settings, True / None for
    the defaults, False for plain chunks.
    """
    if mode not in MODES:
        raise InvalidRequest(f"Unknown search mode {mode!r}; choose one of {', '.join(MODES)}.")
    if not query or not query.strip():
        raise InvalidRequest("The query is empty; give a question or some keywords.")
    if not 1 <= int(k) <= MAX_K:
        raise InvalidRequest(f"k must be between 1 and {MAX_K}, not {k}.")
    k = int(k)
    if expansion is None or expansion is True:
        expansion = DEFAULT_EXPANSION
    elif expansion is False:
        expansion = NO_EXPANSION
    settings = coll.support_settings
    if threshold is not None:
        settings = settings.model_copy(update={"min_similarity": float(threshold)})
    within = _source_chunk_ids(coll, source) if source else None
    # merged hits free slots, so expansion ranks more candidates than it returns
    n_candidates = (max(2 * k, 50) if mode == "hybrid" else
                    k if expansion.neighbours == 0 else 3 * k + 10)
    qv = coll.embedder.embed_query(query)
    dense = coll.index.search(qv, n_candidates if mode != "lexical" else 1, within)
    sims = dict(dense)
    top = dense[0][1] if dense else None
    if mode == "dense":
        scored = dense
    else:
        lexical = _lexical(coll, query, n_candidates, within)
        if mode == "lexical":
            scored = lexical
        else:
            scored = score_fusion(dense, lexical)
    verdict = assess(coll, query, qv, top, settings)
    embedder = coll.embedder

    def relevance(texts: Sequence[str]) -> list[float]:
        return [float(x) for x in embedder.embed_recent(texts) @ qv] if texts else []

    return SearchResults(query, mode, _fetch(coll, scored, sims, k, expansion), verdict.supported, top,
                         settings.min_similarity, verdict.reason, verdict.missing_terms,
                         relevance)
