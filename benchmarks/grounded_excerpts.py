"""Focused excerpts without a chat model (issue 10, goal 4): how often the excerpt shown
with (or instead of) a model's answer holds the expected string, against the passages.

For every covered question with expected strings, searches the collection once and prints
``contains@k`` (one of the k passages holds the strings: the ceiling), ``excerpt contains``
(:func:`extractive_answer`, the quoted windows of :func:`focused`), and a baseline of the
same length measured in the same run (the first words of the first passage), with the
excerpts' mean words and the milliseconds one excerpt takes.

    .venv/bin/python benchmarks/grounded_excerpts.py --collection /tmp/course.sqlite \\
        [--questions benchmarks/course_questions/dev.jsonl] [-k 5] [--mode hybrid]

Build the collection first with ``benchmarks/grounded_eval.py --collection PATH``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_llm.retrieval.collection import Collection  # noqa: E402
from jupyter_llm.retrieval.extractive import extractive_answer  # noqa: E402
from jupyter_llm.retrieval.questions import load_questions  # noqa: E402
from jupyter_llm.retrieval.search import search  # noqa: E402


def main() -> None:
    """Print contains@k, excerpt contains and the same-length baseline."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--questions", default=str(Path(__file__).with_name("course_questions")
                                                / "dev.jsonl"))
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--mode", default="hybrid", choices=["dense", "lexical", "hybrid"])
    args = ap.parse_args()
    coll = Collection.open(args.collection)
    passages = excerpts = baseline = 0
    words: list[int] = []
    ms: list[float] = []
    for q in load_questions(Path(args.questions)):
        if q.unanswerable or not q.contains:
            continue
        results = search(coll, q.question, k=args.k, mode=args.mode)
        if not results.supported or not results.results:
            continue
        start = time.perf_counter()
        text = extractive_answer(q.question, results)
        ms.append((time.perf_counter() - start) * 1000)
        words.append(len(text.split()))
        passages += any(q.text_matches(r.text) for r in results.results)
        excerpts += q.text_matches(text)
        baseline += q.text_matches(" ".join(results.results[0].text.split()[:words[-1]]))
    n = len(words)
    if not n:
        sys.exit("no covered question with expected strings")
    print(f"{args.questions}: {n} covered questions, mode {args.mode}, k={args.k}")
    print(f"  contains@{args.k} {passages / n:.3f}  excerpt contains {excerpts / n:.3f}  "
          f"baseline (first words of passage 1) {baseline / n:.3f}")
    print(f"  excerpt words mean {statistics.mean(words):.0f}, ms p50 "
          f"{statistics.median(ms):.1f} max {max(ms):.1f}")
    coll.close()


if __name__ == "__main__":
    main()
