"""Answer quality from an answers file of the evaluation harness (issue 10, goal 4).

``benchmarks/grounded_eval.py --answers-dir DIR -m MODEL.gguf`` (or ``jupyter llm eval``)
writes one JSON line per question and model; this reads such files and prints, per model,
over the covered questions that were answered (not flagged as uncovered):

* ``answer contains``: the shown answer holds the expected string(s);
* ``looping``: shown answers written by the model (kept by the citation check) that
  repeat a line or phrase (:func:`find_repetition`); ``quoted repeats``: shown passages or
  quoted excerpts of course text in which a phrase recurs (two passages showing the same
  command); ``model looped``: the model's own text where it was replaced;
* ``cites valid``: shown answers that cite at least one source and only existing numbers;
* ``replaced``: answers whose model text failed the citation check, by reason;
* ``p50`` / ``p95`` seconds per question (search + answer).

    .venv/bin/python benchmarks/grounded_answers.py DIR/dev.hybrid.answers.jsonl [...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_llm.retrieval.citations import cited_numbers  # noqa: E402
from jupyter_llm.retrieval.repetition import find_repetition  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def _written_by_model(item: dict) -> bool:
    """Whether the shown answer is the model's text (not passages or quoted excerpts)."""
    action = (item.get("citation_check") or {}).get("action", "kept")
    return not item.get("retrieval_only") and action == "kept"


def summarise(items: list[dict]) -> dict:
    """The goal-4 numbers of one model's items."""
    answered = [i for i in items if not i["unanswerable"] and not i["flagged"]
                and not i.get("error")]
    contains = [i["answer_contains"] for i in answered if i.get("answer_contains") is not None]
    valid_n = []
    for i in answered:
        numbers = cited_numbers(i["answer"])
        known = {r + 1 for r in range(len(i.get("retrieved") or []))}
        valid_n.append(bool(numbers) and set(numbers) <= known)
    checks = [i.get("citation_check") or {} for i in answered]
    model_texts = [c.get("model_text") for c in checks if c.get("model_text")]
    return {
        "answered": len(answered),
        "answer_contains": sum(contains) / len(contains) if contains else None,
        "looping": sum(find_repetition(i["answer"]) is not None for i in answered
                       if _written_by_model(i)),
        "quoted_repeats": sum(find_repetition(i["answer"]) is not None for i in answered
                              if not _written_by_model(i)),
        "model_looped": sum(find_repetition(t) is not None for t in model_texts),
        "cites_valid": sum(valid_n) / len(valid_n) if valid_n else None,
        "replaced": dict(Counter(c.get("reason") for c in checks if c.get("reason"))),
        "p50_s": _pct([i["seconds"] for i in items], 0.5),
        "p95_s": _pct([i["seconds"] for i in items], 0.95),
        "p50_answered_s": _pct([i["seconds"] for i in answered], 0.5),
        "p95_answered_s": _pct([i["seconds"] for i in answered], 0.95),
    }


def main() -> None:
    """Print the summary of each answers file, one block per model."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {}
    for name in args.files:
        by_model: dict[str, list[dict]] = defaultdict(list)
        for line in Path(name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                by_model[item["model"]].append(item)
        out[name] = {model: summarise(items) for model, items in by_model.items()}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name, models in out.items():
        print(f"== {name}")
        for model, s in models.items():
            print(f"  {model}: " + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()))


if __name__ == "__main__":
    main()
