"""Does the collection cover a question? Offline signals, no chat model.

Two checks, in order:

1. **Off-topic**: the best cosine similarity between the question and any chunk is below
   ``min_similarity`` (the collection's support threshold).
2. **Never mentioned**: a term of the question that carries its meaning occurs nowhere in
   the collection (FTS5 document frequency 0), for example a command, an option or a
   library that no lesson teaches. A word "carries the meaning" when dropping it moves the
   question's embedding by at least ``term_centrality`` (1 − cosine), so filler words a
   course happens not to use ("anyway", "messed") do not count; a code-like term (an
   option such as ``--amend``, a dotted or hyphenated name such as ``scipy.optimize`` or
   ``cherry-pick``) always counts. When the best similarity reaches
   ``confident_similarity``, a missing plain word is taken as wording, not subject.

The settings are recorded in the collection file (``Collection.support_settings``,
``Collection.set_support_settings``) and shown by ``info()``; see docs/retrieval.md.
``coll`` below is a ``CollectionFile`` (typed ``Any``: the storage imports this module).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["STOPWORDS", "SupportSettings", "Support", "assess", "question_terms", "DEFAULT_TERM_CENTRALITY",
           "DEFAULT_CONFIDENT_SIMILARITY"]

# Calibrated on benchmarks/course_questions/dev.jsonl with all-MiniLM-L6-v2 (docs/benchmarks.md).
DEFAULT_TERM_CENTRALITY = 0.04
DEFAULT_CONFIDENT_SIMILARITY = 0.62
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be because
been before being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves""".split())
# question words that say nothing about the subject
_GENERIC = frozenset("""how what why when where which who whom whose can could would should
do does did done doing make makes made get gets got use uses used using want need way ways
thing things something anything please help tell know like just also really still instead
one two first last new old good best better right wrong work works working happen happens
i'm i've don't can't doesn't isn't it's what's stop start see show find change keep put
take give let try say look come go turn set move open close end begin call check create write read
save print type avoid fix solve mean means meaning difference example problem error question
anyway actually maybe sure simple simply easy quick quickly""".split())
_COMPOUND = re.compile(r"(?<![\w-])(?:--?[A-Za-z][\w-]*|__\w+__|"
                       r"[A-Za-z_$][\w$]*(?:[.-][A-Za-z_$][\w$]*)+)")
_WORD = re.compile(r"\w+")


class SupportSettings(BaseModel):
    """Thresholds of the "not covered" verdict (recorded in the collection)."""

    model_config = ConfigDict(extra="forbid")

    min_similarity: float = Field(0.0, ge=-1.0, le=1.0,
                                  description="best cosine below this: off-topic")
    term_centrality: float = Field(
        DEFAULT_TERM_CENTRALITY, ge=0.0, le=2.0,
        description="a missing word counts when dropping it moves the question's embedding "
                    "this much (1 - cosine); 2 counts no word (code-like terms still count)")
    confident_similarity: float = Field(
        DEFAULT_CONFIDENT_SIMILARITY, ge=-1.0, le=1.0,
        description="best cosine at or above this: a missing plain word is wording, not "
                    "subject (code-like terms still count)")


@dataclass
class Support:
    """The verdict for one question: covered or not, why, and the signals behind it."""

    supported: bool
    top_similarity: float | None
    missing_terms: list[str] = field(default_factory=list)
    reason: str | None = None


def question_terms(question: str) -> list[str]:
    """The terms of a question to look up: code-like compounds, then content words."""
    compounds = [c for c in dict.fromkeys(_COMPOUND.findall(question))
                 if len(_WORD.findall(c)) > 1 or c.startswith("-")]
    inside = {w.lower() for c in compounds for w in _WORD.findall(c)}
    words = [w for w in dict.fromkeys(w.lower() for w in _WORD.findall(question))
             if w not in STOPWORDS and w not in _GENERIC and w not in inside
             and len(w) > 1 and not w.isdigit()]
    return compounds + words


def _count(coll: Any, tokens: list[str]) -> int:
    phrase = " ".join(t.lower() for t in tokens)
    return int(coll.db.scalar("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                              (f'"{phrase}"',)) or 0)


def _occurs(coll: Any, term: str) -> bool:
    """Whether the term (a word, or a compound as a phrase) occurs in the collection."""
    tokens = _WORD.findall(term)
    if not tokens:
        return True
    if _count(coll, tokens):
        return True
    if len(tokens) == 1 and len(term) >= 5:  # "rerun" written "re-run", "filename" "file name"
        word = tokens[0]
        return any(_count(coll, [word[:i], word[i:]]) for i in range(2, len(word) - 1))
    return False


def _centrality(coll: Any, question: str, qv: np.ndarray, word: str) -> float:
    rest = re.sub(rf"\b{re.escape(word)}\b", " ", question, flags=re.IGNORECASE)
    return 1.0 - float(np.dot(qv, coll.embedder.embed_query(rest)))


def assess(coll: Any, question: str, qv: np.ndarray, top: float | None,
           settings: SupportSettings) -> Support:
    """Decide whether ``coll`` covers ``question`` (``qv`` its vector, ``top`` the best cosine)."""
    if top is None:
        return Support(False, None, reason="the collection is empty")
    if top < settings.min_similarity:
        return Support(False, top, reason=f"nothing in the collection is close to the question "
                       f"(best similarity {top:.2f} < {settings.min_similarity:.2f})")
    missing = [t for t in question_terms(question) if not _occurs(coll, t)]
    confident = top >= settings.confident_similarity
    central = [t for t in missing if len(_WORD.findall(t)) > 1 or t.startswith("-")
               or (not confident
                   and _centrality(coll, question, qv, t) >= settings.term_centrality)]
    if central:
        return Support(False, top, missing, reason="the collection never mentions "
                       + ", ".join(f"'{t}'" for t in central))
    return Support(True, top, missing)
