"""``jupyter llm eval``: measure a collection (and chat models) on a question file, through the
``Client`` (a server when ``JUPYTER_LLM_URL`` is set, else an in-process host)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..display import EvalBar
from ..options import parse_option_pairs

__all__ = ["register"]


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..client import connect
    from ..retrieval.evaluate import default_answers_path
    from ..retrieval.questions import load_questions

    questions = load_questions(args.questions)  # a malformed file fails before any work
    options = {"temperature": 0, **parse_option_pairs(args.option)}
    client = connect()
    bar = EvalBar()
    try:
        report = client.evaluate(args.collection, questions, args.model or [], k=args.k,
                                 mode=args.mode, threshold=args.threshold,
                                 answers=args.out or default_answers_path(args.questions), progress=bar,
                                 **({} if not args.model else options))
    finally:
        bar.close()
    print(json.dumps(report.to_dict()) if args.json else report.to_text(), flush=True)
    return 130 if report.interrupted else 0


def register(subparsers: Any) -> None:
    """Add the ``eval`` command."""
    p = subparsers.add_parser(
        "eval", help="measure a collection (and chat models) on a question file",
        description="Ask every question of QUESTIONS.jsonl (one JSON object a line: question, "
        "sources, contains, unanswerable; see docs/retrieval.md) and print, one column per "
        "model, retrieval hit@k and contains@k, answer contains, valid citations, abstention "
        "and p50/p95 seconds. Without -m: retrieval and abstention only. Every answer is "
        "written to a JSONL file for review; Ctrl-C stops early and keeps what was measured.")
    p.add_argument("collection", help="a collection name (in the collections folder) or, "
                   "without a server, a path to a .sqlite file")
    p.add_argument("questions", metavar="QUESTIONS.jsonl", help="the question file")
    p.add_argument("-m", "--model", action="extend", nargs="+", metavar="MODEL",
                   help="chat models to compare side by side (ids, aliases, .gguf paths; "
                   "retrieval-only for a search-only column); repeatable")
    p.add_argument("-k", type=int, default=5, help="passages retrieved per question (5)")
    p.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default="hybrid")
    p.add_argument("--threshold", type=float, default=None,
                   help="support threshold (default: the collection's own)")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="generation option for the models (default temperature=0), e.g. "
                   "-o max_tokens=256 (repeatable)")
    p.add_argument("--out", metavar="FILE.jsonl", default=None,
                   help="where every answer is written (default: QUESTIONS.answers.jsonl "
                   "in the current folder)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_eval)
