"""Evaluate a collection (and chat models) on a question file: retrieval, answers, abstention.

For each model (``None`` = retrieval only) every question is asked through
``Collection.ask``; the harness measures, side by side per model:

* ``source_hit`` / ``contains_hit``: an expected source / a passage holding every
  expected string is among the top ``k`` retrieved (covered questions);
* ``answer_contains``: the shown answer holds every expected string;
* ``cites_valid``: a model's answer cites at least one source and only numbers that exist;
  ``cites_correct``: it cites a passage from an expected source or holding the strings;
* ``uncovered_flagged`` / ``covered_flagged``: abstention on ``unanswerable`` questions and
  false refusals on covered ones; ``abstention_accuracy`` over all questions;
* ``p50_s`` / ``p95_s``: seconds per question (search + answer).

Every answer is appended to a JSONL file as soon as it is measured, and a
``KeyboardInterrupt`` ends the run early with a partial, marked report. :func:`measure_items`
yields the items and :func:`collect` gathers any stream of them (local, or NDJSON lines from
a server) into a report: the one loop every face uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from jupyter_llm.errors import JupyterLLMError
from jupyter_llm.retrieval.questions import Question, load_questions

if TYPE_CHECKING:
    from jupyter_llm.retrieval.collection import Collection

__all__ = ["EvalItem", "EvalProgress", "ModelReport", "EvalReport", "evaluate", "METRICS",
           "RETRIEVAL_ONLY_NAME", "measure_items", "collect", "answers_writer", "model_columns",
           "default_answers_path"]

RETRIEVAL_ONLY_NAME = "retrieval-only"
# (key, label) in display order; every value is a fraction in [0, 1] or seconds, None = n/a
METRICS: tuple[tuple[str, str], ...] = (
    ("source_hit", "source hit@k"),
    ("contains_hit", "contains@k"),
    ("answer_contains", "answer contains"),
    ("cites_valid", "valid citations"),
    ("cites_correct", "cites a right source"),
    ("uncovered_flagged", "uncovered flagged"),
    ("covered_flagged", "covered wrongly flagged"),
    ("abstention_accuracy", "abstention accuracy"),
    ("p50_s", "p50 s/question"),
    ("p95_s", "p95 s/question"),
)


@dataclass
class EvalItem:
    """The measurement of one question with one model (one line of the answers file)."""

    model: str
    question: str
    line: int | None
    unanswerable: bool
    flagged: bool
    answer: str = ""
    retrieval_only: bool = False
    source_hit: bool | None = None
    contains_hit: bool | None = None
    answer_contains: bool | None = None
    cited: list[int] = field(default_factory=list)
    invalid_cited: list[int] = field(default_factory=list)
    cites_valid: bool | None = None
    cites_correct: bool | None = None
    top_similarity: float | None = None
    seconds: float = 0.0
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    citation_check: dict[str, Any] | None = None

    @property
    def abstention_correct(self) -> bool:
        """Flagged exactly when the question is unanswerable."""
        return self.flagged == self.unanswerable

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalItem:
        """An item from :meth:`to_dict`'s fields (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class EvalProgress:
    """One step of an evaluation: ``done`` of ``total`` (question × model) measured."""

    done: int
    total: int
    model: str
    item: EvalItem


def _mean(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


@dataclass
class ModelReport:
    """All items of one model and the metrics computed from them."""

    model: str
    items: list[EvalItem] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float | int | None]:
        """Fractions (None when no question applies) and p50/p95 seconds, plus counts."""
        covered = [i for i in self.items if not i.unanswerable]
        uncovered = [i for i in self.items if i.unanswerable]
        answered = [i for i in covered if i.cites_valid is not None]
        return {
            "questions": len(self.items),
            "covered": len(covered),
            "uncovered": len(uncovered),
            "errors": sum(i.error is not None for i in self.items),
            "source_hit": _mean([i.source_hit for i in covered if i.source_hit is not None]),
            "contains_hit": _mean([i.contains_hit for i in covered
                                   if i.contains_hit is not None]),
            "answer_contains": _mean([i.answer_contains for i in covered
                                      if i.answer_contains is not None]),
            "cites_valid": _mean([i.cites_valid for i in self.items
                                  if i.cites_valid is not None]),
            "cites_correct": _mean([i.cites_correct for i in answered
                                    if i.cites_correct is not None]),
            "uncovered_flagged": _mean([i.flagged for i in uncovered]),
            "covered_flagged": _mean([i.flagged for i in covered]),
            "abstention_accuracy": _mean([i.abstention_correct for i in self.items]),
            "p50_s": _percentile([i.seconds for i in self.items], 0.5),
            "p95_s": _percentile([i.seconds for i in self.items], 0.95),
        }

    def to_dict(self) -> dict[str, Any]:
        """Model name and metrics (items are in the answers file)."""
        return {"model": self.model, "metrics": self.metrics}


@dataclass
class EvalReport:
    """The result of :func:`evaluate`: one :class:`ModelReport` per model, side by side."""

    collection: str
    k: int
    mode: str
    total: int
    models: list[ModelReport] = field(default_factory=list)
    answers_path: str | None = None
    interrupted: bool = False

    @property
    def done(self) -> int:
        """How many (question, model) pairs were measured."""
        return sum(len(m.items) for m in self.models)

    def add(self, item: EvalItem) -> None:
        """File one measured item under its model's column (a new column if unknown)."""
        for m in self.models:
            if m.model == item.model:
                m.items.append(item)
                return
        self.models.append(ModelReport(item.model, [item]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, per-model metrics, the answers file, and ``interrupted``."""
        return {"collection": self.collection, "k": self.k, "mode": self.mode,
                "total": self.total, "done": self.done, "interrupted": self.interrupted,
                "answers_path": self.answers_path,
                "models": [m.to_dict() for m in self.models]}

    def rows(self) -> list[tuple[str, list[str]]]:
        """Table rows (label, one formatted cell per model) for the faces."""
        out = []
        for key, label in METRICS:
            label = label.replace("@k", f"@{self.k}")
            cells = []
            for m in self.models:
                value = m.metrics[key]
                cells.append("–" if value is None else
                             f"{value:.2f}" if key.endswith("_s") else f"{value:.3f}")
            out.append((label, cells))
        counts = [f"{m.metrics['covered']}+{m.metrics['uncovered']}" for m in self.models]
        out.insert(0, ("questions (covered+uncovered)", counts))
        if any(m.metrics["errors"] for m in self.models):
            out.append(("errors", [str(m.metrics["errors"]) for m in self.models]))
        return out

    def to_text(self) -> str:
        """A plain-text table, one column per model, and a note when interrupted."""
        header = ("metric", [m.model for m in self.models])
        rows = [header, *self.rows()]
        w0 = max(len(r[0]) for r in rows)
        widths = [max(len(r[1][j]) for r in rows) for j in range(len(self.models))]
        lines = ["  ".join([r[0].ljust(w0), *(c.rjust(w) for c, w in zip(r[1], widths,
                                                                         strict=True))])
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        if self.interrupted:
            lines.append(f"Interrupted: measured {self.done} of {self.total}; these are "
                         "partial results.")
        if self.answers_path:
            lines.append(f"Answers: {self.answers_path}")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        names = [m.model for m in self.models]
        lines = ["| metric | " + " | ".join(names) + " |",
                 "|---|" + "---:|" * len(names)]
        lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in self.rows()]
        if self.interrupted:
            lines.append(f"\n*Interrupted: measured {self.done} of {self.total}; partial "
                         "results.*")
        return "\n".join(lines)


def _model_name(model: Any) -> str:
    if model is None:
        return RETRIEVAL_ONLY_NAME
    for attr in ("model_id", "id", "name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def _cited_numbers(text: str) -> list[int]:
    from jupyter_llm.retrieval.citations import cited_numbers

    return cited_numbers(text)


def _measure(coll: Collection, q: Question, model: Any, name: str, k: int, mode: str,
             threshold: float | None, options: dict[str, Any]) -> EvalItem:
    start = time.perf_counter()
    try:
        answer = coll.ask(q.question, model=model, k=k, mode=mode, threshold=threshold,
                          **options)
    except JupyterLLMError as e:
        return EvalItem(name, q.question, q.line, q.unanswerable, False,
                        seconds=time.perf_counter() - start, error=e.message)
    seconds = time.perf_counter() - start
    check = getattr(answer, "citation_check", None)
    results = answer.results
    hits = list(results.results) if results is not None else []
    item = EvalItem(name, q.question, q.line, q.unanswerable, not answer.supported,
                    answer.text, bool(answer.retrieval_only), seconds=seconds,
                    top_similarity=getattr(results, "top_similarity", None),
                    retrieved=[{"source": r.source, "heading": r.heading,
                                "start_line": r.start_line, "score": r.score,
                                "similarity": r.similarity} for r in hits],
                    citation_check=check.to_dict() if check is not None else None)
    if not q.unanswerable:
        if q.sources:
            item.source_hit = any(q.source_matches(r.source) for r in hits)
        if q.contains:
            item.contains_hit = any(q.text_matches(r.text) for r in hits)
            item.answer_contains = q.text_matches(answer.text)
    valid = {c.n for c in answer.citations}
    # citations are the model's own: a model's answer that failed the citation check is
    # shown replaced (quoted sentences, cited), but the model is measured on what it wrote
    model_text = getattr(check, "model_text", None)
    numbers = _cited_numbers(answer.text if model_text is None else model_text)
    item.cited = [n for n in numbers if n in valid]
    item.invalid_cited = [n for n in numbers if n not in valid]
    if answer.supported and not answer.retrieval_only:
        item.cites_valid = bool(item.cited) and not item.invalid_cited
        if not q.unanswerable and (q.sources or q.contains):
            by_n = dict(zip((c.n for c in answer.citations), hits, strict=False))
            item.cites_correct = any(
                (q.sources and q.source_matches(by_n[n].source))
                or (q.contains and q.text_matches(by_n[n].text))
                for n in item.cited if n in by_n)
    return item


def measure_items(coll: Any, questions: Sequence[Question],
                  models: Sequence[tuple[str, Any]], *, k: int = 5, mode: str = "hybrid",
                  threshold: float | None = None, **options: Any) -> Iterator[EvalItem]:
    """Ask every question with every ``(name, model)`` pair, model by model; yield each item.

    ``coll`` is a :class:`Collection` or anything with its ``ask`` method.
    """
    for name, model in models:
        for q in questions:
            yield _measure(coll, q, model, name, k, mode, threshold, options)


def default_answers_path(questions: str | os.PathLike[str]) -> str:
    """Where a face writes the answers unless told: ``STEM.answers.jsonl`` in the working
    directory, for the question file ``STEM.jsonl``."""
    return f"{Path(questions).stem}.answers.jsonl"


@contextlib.contextmanager
def answers_writer(answers: str | os.PathLike[str] | TextIO | None
                   ) -> Iterator[Callable[[EvalItem], None]]:
    """A function appending one JSON line per item to ``answers`` (a path or text stream;
    None: nowhere), flushed at once so an interrupted run keeps every measured answer."""
    if answers is None:
        yield lambda item: None
        return
    own = isinstance(answers, str | os.PathLike)
    if own:
        path = Path(answers).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        stream: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115
    else:
        stream = answers  # type: ignore[assignment]

    def write(item: EvalItem) -> None:
        stream.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
        stream.flush()

    try:
        yield write
    finally:
        if own:
            stream.close()


@contextlib.contextmanager
def _not_interrupted() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the block ends, where the platform allows it (POSIX,
    main thread); a Ctrl-C that arrived meanwhile is raised right after."""
    if not hasattr(signal, "pthread_sigmask") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def collect(report: EvalReport, items: Iterable[EvalItem], *,
            answers: str | os.PathLike[str] | TextIO | None = None,
            progress: Callable[[EvalProgress], None] | None = None) -> EvalReport:
    """Gather ``items`` into ``report`` as they come, writing each to ``answers`` and calling
    ``progress``; a ``KeyboardInterrupt`` (Ctrl-C) ends the run with ``interrupted=True``."""
    if answers is not None and isinstance(answers, str | os.PathLike):
        report.answers_path = str(answers)
    with answers_writer(answers) as write:
        try:
            for item in items:
                with _not_interrupted():  # counted and written together, or neither
                    report.add(item)
                    write(item)
                if progress is not None:
                    progress(EvalProgress(report.done, report.total, item.model, item))
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator or stream stops its work (and its connection) now
    return report


def model_columns(models: Sequence[Any] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(name, model)`` pairs: a mapping's items, or each model named by its id (None:
    ``retrieval-only``); no models at all means one retrieval-only column."""
    named = (list(models.items()) if isinstance(models, Mapping)
             else [(_model_name(m), m) for m in models])
    return named or [(RETRIEVAL_ONLY_NAME, None)]


def evaluate(coll: Collection, questions: Sequence[Question] | str | os.PathLike[str], *,
             models: Sequence[Any] | Mapping[str, Any] = (None,), k: int = 5,
             mode: str = "hybrid", threshold: float | None = None,
             answers: str | os.PathLike[str] | TextIO | None = None,
             progress: Callable[[EvalProgress], None] | None = None,
             **options: Any) -> EvalReport:
    """Ask every question with every model (``None``: retrieval only) and measure.

    ``questions`` is a list of :class:`Question` or a question-file path; ``models`` a
    list of chat models (anything ``Collection.ask`` accepts) or a mapping name → model.
    ``answers`` is a path or text stream receiving one JSON line per item as it is
    measured. Extra keyword arguments are generation options for the models. A
    ``KeyboardInterrupt`` (Ctrl-C) stops early: the report so far is returned with
    ``interrupted=True``.
    """
    qs = load_questions(questions) if isinstance(questions, str | os.PathLike) else list(questions)
    named = model_columns(models)
    report = EvalReport(coll.name, int(k), mode, len(qs) * len(named),
                        [ModelReport(name) for name, _ in named])
    items = measure_items(coll, qs, named, k=k, mode=mode, threshold=threshold, **options)
    return collect(report, items, answers=answers, progress=progress)
