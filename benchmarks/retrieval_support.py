"""Calibrate ``supported``: best cosine similarity for in-scope vs out-of-scope questions.

Builds (or reuses) a collection of the whole course (``../shared/eval/course``) and
prints, for hand-written questions, the accuracy of ``top_similarity >= threshold``
at several thresholds, the best one, and the default.

    .venv/bin/python benchmarks/retrieval_support.py [--collection /tmp/course.sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
QUESTIONS = Path(__file__).with_name("retrieval_support_questions.json")


def main() -> None:
    """Print similarity distributions and threshold accuracies."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--course", default=os.environ.get(
        "JUPYTER_LLM_COURSE", str(REPO.parent / "shared/eval/course")))
    ap.add_argument("--collection", default=None, help="collection file to build or reuse")
    args = ap.parse_args()
    from jupyter_llm.retrieval.collection import DEFAULT_SUPPORT_THRESHOLD, Collection

    tmp = tempfile.TemporaryDirectory()
    path = Path(args.collection or Path(tmp.name) / "course.sqlite")
    coll = Collection.create(path)
    if not coll.info()["documents"]:
        print(f"ingesting {args.course} …", file=sys.stderr)
        print(coll.ingest([args.course]).summary())
    data = json.loads(QUESTIONS.read_text())
    sims = {}
    for label in ("in_scope", "out_of_scope"):
        sims[label] = [coll.search(q, k=1, mode="dense").top_similarity for q in data[label]]
        values = sorted(sims[label])
        print(f"{label:13} n={len(values):3d} min {values[0]:.3f} median "
              f"{values[len(values) // 2]:.3f} max {values[-1]:.3f}")
    print(f"\n{'threshold':>9} {'in-scope kept':>14} {'out-of-scope refused':>21} {'balanced acc':>13}")
    best = (0.0, 0.0)
    for t in [x / 100 for x in range(20, 66, 2)] + [DEFAULT_SUPPORT_THRESHOLD]:
        kept = sum(s >= t for s in sims["in_scope"]) / len(sims["in_scope"])
        refused = sum(s < t for s in sims["out_of_scope"]) / len(sims["out_of_scope"])
        acc = (kept + refused) / 2
        best = max(best, (acc, t))
        mark = "  <- default" if t == DEFAULT_SUPPORT_THRESHOLD else ""
        print(f"{t:9.2f} {kept:14.1%} {refused:21.1%} {acc:13.1%}{mark}")
    print(f"\nbest threshold {best[1]:.2f} (balanced accuracy {best[0]:.1%}); "
          f"default {DEFAULT_SUPPORT_THRESHOLD:.2f}")
    misses = [(q, round(s, 3)) for q, s in zip(data["in_scope"], sims["in_scope"], strict=True)
              if s < DEFAULT_SUPPORT_THRESHOLD]
    false_ok = [(q, round(s, 3)) for q, s in zip(data["out_of_scope"], sims["out_of_scope"],
                                                 strict=True) if s >= DEFAULT_SUPPORT_THRESHOLD]
    print("in-scope refused at default:", misses)
    print("out-of-scope accepted at default:", false_ok)
    coll.close()


if __name__ == "__main__":
    main()
