"""Section expansion: each search hit becomes a passage of adjacent chunks.

A hit that lands one chunk away from the sentence or command that answers the
question is still useful once it carries its neighbours: the ``neighbours`` chunks
before and after it in the same heading section (``scope="section"``) or the same
document and page (``scope="document"``), while the passage stays within
``max_tokens``. Hits that are adjacent (or overlap) are merged into one passage,
so the ``k`` results cover ``k`` distinct stretches of material. A passage keeps
the line range (and the first cell and page) of the chunks it spans, so its
citation opens the right lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from jupyter_llm.retrieval.storage import CollectionFile

__all__ = ["ExpansionSettings", "Passage", "expand", "DEFAULT_EXPANSION", "NO_EXPANSION"]


class ExpansionSettings(BaseModel):
    """How far a hit grows into its neighbours (``neighbours=0``: plain chunks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    neighbours: int = Field(1, ge=0, le=10)
    """Chunks added on each side of a hit (when they fit)."""
    max_tokens: int = Field(500, ge=16, le=8192)
    """Largest passage, in the embedder's tokens (the hit alone may be bigger)."""
    scope: Literal["section", "document"] = "document"
    """``section``: neighbours under the same heading trail; ``document``: the same
    document (and the same PDF page)."""


DEFAULT_EXPANSION = ExpansionSettings()
NO_EXPANSION = ExpansionSettings(neighbours=0)


@dataclass
class _Chunk:
    id: int
    document_id: int
    ord: int
    heading: str
    page: int | None
    n_tokens: int


@dataclass(eq=False)
class Passage:
    """A run of adjacent chunks ``ords[0]..ords[-1]`` of one document, grown from a hit."""

    anchor: int
    """The chunk id of the best-ranked hit in it."""
    score: float
    document_id: int
    lo: int
    hi: int
    heading: str
    page: int | None
    tokens: int
    hits: list[int] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)


def _meta(coll: CollectionFile, where: str, params: list[object]) -> list[_Chunk]:
    return [_Chunk(*r) for r in coll.db.execute(
        "SELECT id, document_id, ord, heading, page, n_tokens FROM chunks WHERE " + where,
        params)]


def _same(a: _Chunk, p: Passage, scope: str) -> bool:
    if a.document_id != p.document_id or a.page != p.page:
        return False
    return scope == "document" or a.heading == p.heading


def _span(coll: CollectionFile, p: Passage, lo: int, hi: int,
          settings: ExpansionSettings) -> list[_Chunk] | None:
    """The chunks ``lo..hi`` of ``p``'s document when all belong to its scope, else None."""
    rows = _meta(coll, "document_id = ? AND ord BETWEEN ? AND ? ORDER BY ord",
                 [p.document_id, lo, hi])
    if len(rows) != hi - lo + 1 or not all(_same(r, p, settings.scope) for r in rows):
        return None
    return rows


def expand(coll: CollectionFile, ranked: list[tuple[int, float]], k: int,
           settings: ExpansionSettings = DEFAULT_EXPANSION) -> list[Passage]:
    """Turn ranked ``(chunk id, score)`` hits into at most ``k`` passages, best first."""
    if not ranked:
        return []
    ids = [i for i, _ in ranked]
    meta = {c.id: c for c in _meta(coll, "id IN (SELECT value FROM json_each(?))",
                                    [json.dumps(ids)])}
    reach = settings.neighbours
    window = reach + 1 if reach else 0  # how far apart two hits may be to merge
    passages: list[Passage] = []
    for cid, score in ranked:
        c = meta.get(cid)
        if c is None:
            continue
        inside = next((p for p in passages
                       if p.document_id == c.document_id and p.lo <= c.ord <= p.hi), None)
        if inside is not None:  # already in a passage (any of them, not only the first near)
            inside.hits.append(cid)
            continue
        home = next((p for p in passages if _same(c, p, settings.scope)
                     and p.lo - window <= c.ord <= p.hi + window), None)
        if home is not None:
            lo, hi = min(home.lo, c.ord), max(home.hi, c.ord)
            rows = _span(coll, home, lo, hi, settings)
            if (rows is not None and sum(r.n_tokens for r in rows) <= settings.max_tokens
                    and not _overlaps(home, lo, hi, passages)):
                home.lo, home.hi, home.tokens = lo, hi, sum(r.n_tokens for r in rows)
                home.hits.append(cid)
                _absorb(coll, home, passages, window, settings)
                continue
        if len(passages) >= k:
            continue  # only merges into the k passages from here on
        passages.append(Passage(cid, score, c.document_id, c.ord, c.ord, c.heading, c.page,
                                c.n_tokens, [cid]))
        if len(passages) >= k and reach == 0:
            break
    for p in passages:
        _grow(coll, p, settings, passages)
    for p in passages:
        p.chunk_ids = [r.id for r in _meta(
            coll, "document_id = ? AND ord BETWEEN ? AND ? ORDER BY ord",
            [p.document_id, p.lo, p.hi])]
    return passages


def _overlaps(home: Passage, lo: int, hi: int, passages: list[Passage]) -> bool:
    """Whether another passage holds a chunk of ``home``'s document in ``lo..hi``."""
    return any(q is not home and q.document_id == home.document_id and q.lo <= hi
               and lo <= q.hi for q in passages)


def _absorb(coll: CollectionFile, home: Passage, passages: list[Passage], window: int,
            settings: ExpansionSettings) -> None:
    """Merge into ``home`` the passages it now reaches (a slot frees for the next hit)."""
    merged = True
    while merged:
        merged = False
        for q in passages:
            if q is home or q.document_id != home.document_id or q.page != home.page:
                continue
            if settings.scope == "section" and q.heading != home.heading:
                continue
            if not (q.lo - window <= home.hi and home.lo - window <= q.hi):
                continue
            lo, hi = min(home.lo, q.lo), max(home.hi, q.hi)
            rows = _span(coll, home, lo, hi, settings)
            if rows is None or sum(r.n_tokens for r in rows) > settings.max_tokens:
                continue
            order = [id(p) for p in passages]
            first, second = ((home, q) if order.index(id(home)) < order.index(id(q))
                             else (q, home))
            first.lo, first.hi, first.tokens = lo, hi, sum(r.n_tokens for r in rows)
            first.hits.extend(second.hits)
            del passages[order.index(id(second))]
            home, merged = first, True
            break


def _grow(coll: CollectionFile, p: Passage, settings: ExpansionSettings,
          passages: list[Passage]) -> None:
    """Add up to ``neighbours`` chunks after, then before ``p``, within the token budget and
    never into another passage."""
    taken = {(q.document_id, o) for q in passages if q is not p for o in range(q.lo, q.hi + 1)}
    for _ in range(settings.neighbours):
        grew = False
        for ord_ in (p.hi + 1, p.lo - 1):
            if ord_ < 0 or (p.document_id, ord_) in taken:
                continue
            rows = _meta(coll, "document_id = ? AND ord = ?", [p.document_id, ord_])
            if not rows or not _same(rows[0], p, settings.scope):
                continue
            if p.tokens + rows[0].n_tokens > settings.max_tokens:
                continue
            p.tokens += rows[0].n_tokens
            p.lo, p.hi = min(p.lo, ord_), max(p.hi, ord_)
            grew = True
        if not grew:
            break
