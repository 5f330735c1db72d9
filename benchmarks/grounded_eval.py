"""Grounded Q&A on the course, measured with the evaluation harness (issue 10, goals 2–4).

Ingests the whole course folder as a teacher would (``Collection.ingest([course])`` with the
default settings) into a collection file (reused when it exists: pass ``--collection`` to
keep it between runs), then runs :func:`jupyter_llm.retrieval.evaluate.evaluate` on the
question files in ``benchmarks/course_questions`` (``dev.jsonl`` and the held-out
``heldout.jsonl``) and prints one table per file, one column per model.

    .venv/bin/python benchmarks/grounded_eval.py --collection /tmp/course.sqlite \\
        [-m retrieval-only] [-m ~/.cache/jupyter-llm/test-models/SmolLM2-135M-Instruct.Q4_1.gguf]
        [--mode hybrid] [-k 5] [--json] [--answers-dir /tmp/answers] [--no-expansion]

``-m`` takes ``retrieval-only`` or a model id / ``.gguf`` path run by an in-process host
(temperature 0 unless ``--temperature``). The course lives in ``../shared/eval/course``
(``--course`` or ``JUPYTER_LLM_COURSE``); it is never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
QUESTIONS = Path(__file__).with_name("course_questions")


def build(path: Path, course: Path) -> None:
    """Create the collection and ingest the whole course folder with the defaults."""
    from jupyter_llm.retrieval.collection import Collection

    coll = Collection.create(path)
    start = time.perf_counter()
    report = coll.ingest([course])
    print(f"ingested {course} in {time.perf_counter() - start:.0f} s: {report.summary()}",
          file=sys.stderr)
    skipped = getattr(report, "excluded", None)
    if skipped:
        print(f"left out by default: {', '.join(skipped)}", file=sys.stderr)
    coll.close()


def chat_models(names: list[str]) -> dict[str, object]:
    """``retrieval-only`` → None; anything else → a chat model run by an in-process host."""
    from jupyter_llm.retrieval.evaluate import RETRIEVAL_ONLY_NAME

    models: dict[str, object] = {}
    host = None
    for name in names:
        if name == RETRIEVAL_ONLY_NAME:
            models[name] = None
            continue
        if host is None:
            from jupyter_llm.host import ModelHost
            from jupyter_llm.host.grounded import HostChat

            host = ModelHost()
        label = Path(name).name if name.endswith(".gguf") else name
        models[label] = HostChat(host, str(Path(name).expanduser()) if name.endswith(".gguf")
                                 else name)
    return models


def main() -> None:
    """Build or reuse the course collection and print the harness's tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--course", default=os.environ.get(
        "JUPYTER_LLM_COURSE", str(REPO.parent / "shared/eval/course")))
    ap.add_argument("--collection", default=None, help="collection file to build or reuse")
    ap.add_argument("--questions", action="append", default=None,
                    help="question files (default: course_questions/dev.jsonl and heldout.jsonl)")
    ap.add_argument("-m", "--model", action="append", default=None,
                    help="retrieval-only (default) or a model id / .gguf path; repeatable")
    ap.add_argument("--mode", default="hybrid", choices=["dense", "lexical", "hybrid"])
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--max-tokens", type=int, default=None)
    ap.add_argument("--answers-dir", default=None, help="write <questions>.<mode>.answers.jsonl here")
    ap.add_argument("--json", action="store_true", help="print the reports as JSON")
    ap.add_argument("--no-expansion", action="store_true",
                    help="plain chunks instead of passages (the baseline of section expansion)")
    args = ap.parse_args()
    if args.no_expansion:
        import jupyter_llm.retrieval.search as search_module
        from jupyter_llm.retrieval.expansion import NO_EXPANSION

        search_module.DEFAULT_EXPANSION = NO_EXPANSION  # what every search defaults to

    from jupyter_llm.retrieval.collection import Collection
    from jupyter_llm.retrieval.evaluate import evaluate

    course = Path(args.course)
    if not course.is_dir():
        sys.exit(f"course not found at {course}; pass --course or set JUPYTER_LLM_COURSE.")
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.collection or Path(tmp.name) / "course.sqlite")
    if not path.exists():
        build(path, course)
    coll = Collection.open(path)
    coll.embedder.embed(["warm up"])
    info = coll.info()
    print(f"collection {path}: {info['documents']} documents, {info['chunks']} chunks; "
          f"mode {args.mode}, k={args.k}")
    models = chat_models(args.model or ["retrieval-only"])
    has_model = any(m is not None for m in models.values())
    options = {"temperature": args.temperature} if has_model else {}
    if has_model and args.max_tokens:
        options["max_tokens"] = args.max_tokens
    files = [Path(q) for q in (args.questions or [QUESTIONS / "dev.jsonl",
                                                  QUESTIONS / "heldout.jsonl"])]
    out = {}
    for qfile in files:
        answers = None
        if args.answers_dir:
            answers = Path(args.answers_dir) / f"{qfile.stem}.{args.mode}.answers.jsonl"
        report = evaluate(coll, qfile, models=models, k=args.k, mode=args.mode,
                          answers=answers, **options)
        out[qfile.name] = report.to_dict()
        if not args.json:
            print(f"\n== {qfile.name}")
            print(report.to_text())
        if report.interrupted:
            break
    if args.json:
        print(json.dumps(out, indent=2))
    coll.close()


if __name__ == "__main__":
    main()
