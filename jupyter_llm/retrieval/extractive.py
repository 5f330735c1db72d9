"""Extractive answers: the sentences (and command lines) of the retrieved passages that best
match the question, quoted with their source number [n]. What the faces show when a model's
answer cannot be trusted, so an answer is never worse than the passages themselves."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import takewhile
from typing import TYPE_CHECKING

from jupyter_llm.retrieval.support import STOPWORDS

if TYPE_CHECKING:
    from jupyter_llm.retrieval.search import SearchResults

__all__ = ["Unit", "units", "best_units", "focused", "quote_window", "excerpt", "evidence",
           "support", "extractive_answer", "EXTRACTIVE_LEAD", "EVIDENCE_LEAD"]

EXTRACTIVE_LEAD = "From the course materials:"
MAX_UNITS = 4
MAX_CHARS = 300
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_NOISE = re.compile(r"^\s*(:{3,}.*|#{1,6}\s.*|[-=*_]{3,}\s*|\{[.:#].*\})\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[])")
_TOKEN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
# the stop words of the support check, and words that ask rather than say
_STOP = STOPWORDS | frozenset("""want wants need know tell get use using way make happen thing
things something one""".split())


@dataclass
class Unit:
    """One quotable piece of a passage: a prose sentence or a line of code."""

    n: int
    rank: int
    position: int
    text: str
    code: bool = False


def _clean(line: str) -> str:
    line = _LINK.sub(lambda m: m.group(1) or m.group(2) or "", line)
    line = re.sub(r"</?kbd>", "", line)
    return line.strip()


def units(text: str, n: int = 1, rank: int = 0) -> list[Unit]:
    """Split a passage into sentences of prose and lines of code (fenced blocks)."""
    out: list[Unit] = []
    para: list[str] = []
    fences = [line.strip() for line in text.splitlines() if _FENCE.match(line)]
    # a chunk cut inside a code block: an odd number of fences, the first one bare (a
    # closing fence) and the last one with a language (an opening one)
    in_code = (len(fences) % 2 == 1 and fences[0] in ("```", "~~~")
               and fences[-1] not in ("```", "~~~"))

    def flush() -> None:
        joined = " ".join(para).strip()
        para.clear()
        for sentence in _SENTENCE_END.split(joined):
            sentence = re.sub(r"^[-*+]\s+|^\d+\.\s+", "", sentence.strip())
            if len(sentence) >= 12 and re.search(r"[A-Za-z]", sentence):
                out.append(Unit(n, rank, len(out), sentence))

    for raw in text.splitlines():
        if _FENCE.match(raw):
            flush()
            in_code = not in_code
            continue
        if in_code:
            code = raw.strip()
            if code and len(code) <= 200:
                out.append(Unit(n, rank, len(out), code, code=True))
            continue
        if not raw.strip() or _NOISE.match(raw):
            flush()
            continue
        if raw.lstrip().startswith(("- ", "* ", "+ ")) or re.match(r"\s*\d+\.\s", raw):
            flush()
        para.append(_clean(raw))
    flush()
    return out


def _terms(text: str) -> set[str]:
    out = set()
    for t in _TOKEN.findall(text.lower()):
        if t in _STOP or len(t) < 2:
            continue
        out.add(t)
        for part in re.split(r"[._-]", t):
            if len(part) > 2 and part not in _STOP:
                out.add(_stem(part))
        out.add(_stem(t))
    return out


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _score(unit: Unit, query: set[str], weights: dict[str, float], k: int) -> float:
    if unit.text.rstrip().endswith("?"):
        return 0.0  # a question (such as a lesson's list of questions) answers nothing
    terms = _terms(unit.text)
    matched = sum(weights.get(t, 1.0) for t in query & terms)
    if not matched:
        return 0.0
    length = len(unit.text.split())
    novel = len({t for t in terms - query if "." not in t and "-" not in t})
    echo = 0.4 if novel < 3 and not unit.code else 1.0  # restates the question, adds nothing
    code = 0.6 if unit.code else 1.0  # a bare command line explains less than a sentence
    return (matched / (0.6 + 0.4 * max(length, 4) / 20) * echo * code
            * (1.0 - 0.15 * unit.rank / max(1, k)))


def _weights(query: set[str], pool: list[Unit]) -> dict[str, float]:
    df: dict[str, int] = {}
    for u in pool:
        for t in _terms(u.text) & query:
            df[t] = df.get(t, 0) + 1
    return {t: 1.0 + math.log(len(pool) / c) for t, c in df.items()}


def excerpt(question: str, text: str, words: int) -> str:
    """``text`` cut to about ``words`` words: its units that best match ``question``, in
    their order (a code line stays with the sentence that introduces it); all of it when
    short. Headings, links' targets and markup lines are left out."""
    pool = units(text)
    if sum(len(u.text.split()) for u in pool) <= words:
        return _join(pool)
    query = _terms(question)
    weights = _weights(query, pool)
    order = sorted(pool, key=lambda u: (-_score(u, query, weights, 1), u.position))
    keep: set[int] = set()
    used = 0
    for u in order:
        group = [u] + [v for v in pool if v.position == u.position + 1 and v.code
                       and _introduces_code(u)]
        size = sum(len(v.text.split()) for v in group if v.position not in keep)
        if used + size > words and keep:
            continue
        keep.update(v.position for v in group)
        used += size
    return _join([u for u in pool if u.position in keep])


def _join(pool: list[Unit]) -> str:
    lines: list[str] = []
    for u in pool:
        if u.code or not lines or lines[-1].startswith("    "):
            lines.append(("    " if u.code else "") + u.text)
        else:
            lines[-1] += " " + u.text
    return "\n".join(lines)


WINDOW_WORDS = 70
"""Most words of one quoted window (a sentence with its neighbours and the commands it
introduces)."""
BUDGET_WORDS = 180
"""Most words of a focused excerpt (all windows together)."""
_SHOWS = 1.15  # a window that shows a command or code
_RANK = 0.2  # how much less the last passage counts than the first
_RRF_K = 60  # reciprocal-rank fusion's constant for windows (the usual 60)
_INLINE_CODE = re.compile(r"`[^`]+`")


def _code_like(question: str) -> set[str]:
    """The question's command- or option-like tokens (``-u``, ``--staged``, ``user.name``,
    ``sys.argv``, anything in backticks): rare words that name what the answer shows."""
    out = set()
    for t in re.findall(r"(?<!\w)--?[a-z][a-z0-9-]*|[a-z0-9_]+(?:\.[a-z0-9_]+)+|`[^`]+`",
                        question.lower()):
        out |= _terms(t.strip("`")) | {t.strip("`")}
    return out


def _window_score(window: list[Unit], query: set[str], weights: dict[str, float],
                  code_like: set[str], k: int) -> float:
    text = " ".join(u.text for u in window)
    terms = _terms(text)
    matched = query & terms
    if not matched:
        return 0.0
    score = sum(weights.get(t, 1.0) for t in matched)
    score += sum(1.0 for t in code_like & terms)
    shows = any(u.code for u in window) or bool(_INLINE_CODE.search(text))
    words = sum(len(u.text.split()) for u in window)
    return (score * (_SHOWS if shows else 1.0) / (1.0 + words / 120)
            * (1.0 - _RANK * window[0].rank / max(1, k)))


INTRODUCED_LINES = 3
"""Most code lines kept after a window's last sentence when it introduces them (ends in ":"),
beyond the window's word limit."""


def _windows(pool: list[Unit], limit: int | None = None) -> list[list[Unit]]:
    """Every run of consecutive units of one passage that starts at a unit and holds at most
    ``limit`` words (at least one unit); code lines stay after the sentence introducing them,
    and a window never ends on a sentence that introduces code it leaves out."""
    limit = limit or WINDOW_WORDS
    out = []
    for i, first in enumerate(pool):
        if first.code and i and not pool[i - 1].code:
            continue  # a command is quoted with the sentence that introduces it
        window, used = [], 0
        for u in pool[i:i + 5]:
            size = len(u.text.split())
            if (window and used + size > limit) or (not u.code and u.text.endswith("?")):
                break  # a question (a lesson's list of questions) answers nothing
            window.append(u)
            used += size
        if window and _introduces_code(window[-1]):
            after = pool[window[-1].position + 1:window[-1].position + 1 + INTRODUCED_LINES]
            window += takewhile(lambda u: u.code, after)
        if window:
            out.append(window)
    return out


def _introduces_code(unit: Unit) -> bool:
    """Whether ``unit`` is a sentence that introduces the code after it (it ends in ":")."""
    return not unit.code and unit.text.rstrip().endswith(":")


def _fused(windows: list[list[Unit]], lexical: list[float],
           dense: list[float] | None, k: int) -> list[float]:
    """Each window's score: its lexical score alone, or, with the windows' cosines to the
    question, reciprocal-rank fusion of the two rankings (windows are not ranked like the
    search's chunks: there it mixes scores, here ranks measured better), earlier passages
    counting a little more. A window sharing no term with the question keeps only its dense
    share."""
    if dense is None:
        return lexical
    order = range(len(windows))
    fused: dict[int, float] = {}
    for ranking in (sorted((i for i in order if lexical[i] > 0), key=lambda i: -lexical[i]),
                    sorted(order, key=lambda i: -dense[i])):
        for rank, i in enumerate(ranking):
            fused[i] = fused.get(i, 0.0) + 1.0 / (_RRF_K + rank + 1)
    return [fused[i] * (1.0 - _RANK * w[0].rank / max(1, k)) for i, w in enumerate(windows)]


def focused(question: str, results: SearchResults, budget: int = BUDGET_WORDS,
            most: int = MAX_UNITS, only: set[int] | None = None) -> list[list[Unit]]:
    """The passages' windows (a sentence with its neighbours and the commands it introduces)
    that best answer ``question``: scored by the question's terms (rare ones and command- or
    option-like ones count more, a window showing a command a little more, earlier passages
    a little more) fused with each window's embedding similarity to the question when the
    results carry it (``SearchResults.relevance``); at most ``most`` windows of ``budget``
    words in all, in passage order. ``only`` limits them to those source numbers. At least
    one window whenever the passages have text."""
    query = _terms(question)
    code_like = _code_like(question)
    per_passage = [units(r.text, c.n, i) for i, (c, r) in
                   enumerate(zip(results.citations(), results.results, strict=True))
                   if only is None or c.n in only]
    everything = [u for us in per_passage for u in us]
    if not everything:
        return []
    weights = _weights(query, everything)
    k = len(results.results)
    windows = [w for pool in per_passage for w in _windows(pool)]
    lexical = [_window_score(w, query, weights, code_like, k) for w in windows]
    dense = (results.relevance([" ".join(u.text for u in w) for w in windows])
             if results.relevance else None)
    candidates = list(zip(windows, _fused(windows, lexical, dense, k), strict=True))
    candidates.sort(key=lambda ws: (-ws[1], ws[0][0].rank, ws[0][0].position))
    picked: list[list[Unit]] = []
    taken: set[tuple[int, int]] = set()
    quoted: set[str] = set()  # the texts already quoted, as other passages may repeat them
    used = 0
    for window, score in candidates:
        if score <= 0 or len(picked) >= most:
            break
        fresh = [u for u in window if (u.rank, u.position) not in taken]
        if len(fresh) < len(window):
            continue
        new = [u for u in window if _plain(u.text) not in quoted]  # shown once: two
        if not new or _words(new) * 2 < _words(window):  # passages may repeat an output
            continue
        window = new
        size = _words(window)
        if picked and used + size > budget:
            continue
        picked.append(window)
        taken.update((u.rank, u.position) for u in window)
        quoted.update(_plain(u.text) for u in window)
        used += size
    if not picked:
        first = next(pool for pool in per_passage if pool)
        picked = [first[:1]]
    return sorted(picked, key=lambda w: (w[0].rank, w[0].position))


def _plain(text: str) -> str:
    return " ".join(text.lower().split())


def _words(window: list[Unit]) -> int:
    return sum(len(u.text.split()) for u in window)


def best_units(question: str, results: SearchResults, limit: int = MAX_UNITS) -> list[Unit]:
    """The units of :func:`focused` windows, in passage order."""
    return [u for w in focused(question, results, most=limit) for u in w]


def _quote(unit: Unit) -> str:
    text = unit.text if len(unit.text) <= MAX_CHARS else unit.text[:MAX_CHARS].rsplit(" ", 1)[0] + " …"
    if unit.code:
        return f"`{text.replace('`', '')}` [{unit.n}]"
    return f"“{text}” [{unit.n}]"


def quote_window(window: list[Unit]) -> str:
    """One window as quoted text: prose in quotation marks, commands in backticks, and [n]."""
    parts: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            text = " ".join(prose)
            if len(text) > MAX_CHARS * 2:
                text = text[:MAX_CHARS * 2].rsplit(" ", 1)[0] + " …"
            parts.append(f"“{text}”")
            prose.clear()

    for u in window:
        if u.code:
            flush()
            parts.append(f"`{u.text.replace('`', '')}`")
        else:
            prose.append(u.text)
    flush()
    return " ".join(parts) + f" [{window[0].n}]"


EVIDENCE_LEAD = "From the course materials:"
EVIDENCE_CITED_WORDS = 60
"""Most words of the window added from the cited passages when the best ones are elsewhere."""


def evidence(question: str, results: SearchResults, cited: list[int]) -> str:
    """The focused excerpt shown after a model's answer, so a shown answer is never worse
    than retrieval: the best windows of all the passages (:func:`focused`) and, when none of
    them is from a passage the answer cites, the best window of those too; each cited."""
    picked = focused(question, results)
    if cited and not any(w[0].n in cited for w in picked):
        picked += focused(question, results, budget=EVIDENCE_CITED_WORDS, most=1,
                          only=set(cited))
    picked.sort(key=lambda w: (w[0].rank, w[0].position))
    if not picked:
        return ""
    return EVIDENCE_LEAD + "\n\n" + "\n".join(f"- {quote_window(w)}" for w in picked)


def support(answer: str, texts: list[str]) -> float:
    """The share of ``answer``'s content words (not numbers or citations) found in ``texts``;
    1.0 when it has none."""
    mine = {t for t in _terms(re.sub(r"\[\d+(?:\s*[,;]\s*\d+)*\]", " ", answer))
            if not t.isdigit()}
    if not mine:
        return 1.0
    theirs: set[str] = set()
    for text in texts:
        theirs |= _terms(text)
    return len(mine & theirs) / len(mine)


def extractive_answer(question: str, results: SearchResults, limit: int = MAX_UNITS) -> str:
    """Quoted windows of the passages that best answer ``question``, each cited as [n]."""
    picked = focused(question, results, most=limit)
    if not picked:
        return ""
    return EXTRACTIVE_LEAD + "\n\n" + "\n".join(f"- {quote_window(w)}" for w in picked)
