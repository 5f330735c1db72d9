"""A class asks at once: time to first token and to the full answer, fair vs FIFO scheduling.

Runs each scenario on a fresh ``jupyter llm serve`` subprocess per configuration (same data
directory; nothing cached by an earlier run helps), alternating the configurations' order
between rounds so machine noise hits both alike:

- ``fifo``: today's path (``JUPYTER_LLM_SCHEDULING=fifo``, one sequence at a time:
  ``JUPYTER_LLM_PARALLEL=1`` where the host has that setting);
- ``fair``: round-robin by user (``JUPYTER_LLM_SCHEDULING=fair``), the host's default
  number of parallel sequences.

Each simulated student has a named token of their own (so the host tells them apart) and
asks a grounded question through the native ``ask`` API (``RemoteClient.ask``, streamed) on
a collection of one course lesson (``../shared/eval/course/git-novice``), answered by the
real SmolLM2-135M-Instruct (``python -m jupyter_llm.testing.real_models``). Two scenarios:

- ``class``: 16 students ask at the same moment. Prints p50/p95 time to first token and to
  the full answer per configuration, and fair/FIFO ratios (goals with batching: p95 TTFT
  <= 0.25, p95 full answer <= 0.7).
- ``greedy``: one student fires 10 questions, then 5 others ask one each (50 ms later).
  Prints the others' mean and max time to first token per configuration.

With ``class``, each round also asks the same 16 questions on ``fair`` with one-token
answers: its p95 time to first token is the time it takes to read 15 of these grounded
prompts one after the other (this host reads one prompt at a time: on a CPU, reading is
compute-bound and batching several prompts does not make it faster), the floor under any
scheduler's p95 time to first token. It is printed ÷ FIFO's, beside the goal.

    python benchmarks/classroom_load.py [--students 16] [--rounds 3] [--max-tokens 48] [-k 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
QUESTIONS = Path(__file__).with_name("course_questions") / "dev.jsonl"
CONFIGS = ("fifo", "fair")
WARM_UP = "What does this lesson teach?"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) with linear interpolation."""
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def setup(course: Path, work: Path, names: list[str]) -> tuple[Path, dict[str, str]]:
    """Install SmolLM2, build the ``course`` collection and issue one token per name."""
    from jupyter_llm import paths
    from jupyter_llm.host.tokens import TokenStore
    from jupyter_llm.registry import ModelSpec
    from jupyter_llm.retrieval.collection import Collection
    from jupyter_llm.store import Store
    from jupyter_llm.testing.real_models import fetch

    os.environ["JUPYTER_LLM_HOME"] = str(work / "home")
    os.environ["GGML_NO_BACKTRACE"] = "1"
    gguf = fetch("smollm2")
    spec = {"id": "smollm2", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
            "filename": gguf.name, "context_length": 8192}
    registry = work / "registry.json"
    registry.write_text(json.dumps({"models": [spec]}))
    Store().install_file(ModelSpec.model_validate(spec), gguf, verified=True)
    paths.collections_dir().mkdir(parents=True, exist_ok=True)
    coll = Collection.create(paths.collections_dir() / "course.sqlite")
    start = time.perf_counter()
    report = coll.ingest([course])
    coll.close()
    print(f"collection: {course.name} ({report.summary()}) in "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    tokens = TokenStore()
    for name in names:  # a reused --work folder: issue fresh tokens
        if any(t["name"] == name for t in tokens.list()):
            tokens.revoke(name)
    return registry, {name: tokens.add(name, role="student") for name in names}


def questions(n: int) -> list[str]:
    """``n`` questions on the git lesson from the course question set (cycled)."""
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    git = [r["question"] for r in rows if r.get("sources", [""])[0].startswith("git-novice")]
    return [git[i % len(git)] for i in range(n)]


def ask(url: str, token: str, question: str, args: argparse.Namespace,
        result: dict[str, Any], go: threading.Event, max_tokens: int) -> None:
    """One student: wait for ``go``, ask, and record seconds to first text and to the end."""
    from jupyter_llm.client import RemoteClient

    client = RemoteClient(url, token)
    try:
        go.wait()
        start = time.perf_counter()
        response = client.ask("course", question, "smollm2", stream=True, k=args.k,
                              temperature=0, max_tokens=max_tokens, log=False)
        queued = 0
        for event in response.events():
            if isinstance(event, str):
                result.setdefault("ttft", time.perf_counter() - start)
            else:
                queued += 1
        result["total"] = time.perf_counter() - start
        result["queued_events"] = queued
        result.setdefault("ttft", result["total"])
    except Exception as e:  # noqa: BLE001 - reported in the table
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        client.close()


def run_round(url: str, plan: list[tuple[str, str, float]], args: argparse.Namespace,
              max_tokens: int | None = None) -> list[dict[str, Any]]:
    """Every ``(user, question, delay_s)`` of ``plan`` asks ``delay_s`` after the start
    (answers of ``max_tokens``, by default ``--max-tokens``)."""
    results: list[dict[str, Any]] = [{"user": u} for u, _, _ in plan]
    gates = {d: threading.Event() for _, _, d in plan}
    threads = [threading.Thread(target=ask, args=(url, args.tokens[u], q, args, results[i],
                                                  gates[d], max_tokens or args.max_tokens),
                                daemon=True)
               for i, (u, q, d) in enumerate(plan)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every client is connected and waiting at its gate
    start = time.monotonic()
    for delay in sorted(gates):
        time.sleep(max(0.0, start + delay - time.monotonic()))
        gates[delay].set()
    for t in threads:
        t.join(900)
    failed = [r for r in results if "error" in r]
    if failed:
        raise SystemExit(f"{len(failed)} request(s) failed, e.g. {failed[0]['error']}")
    return results


def main() -> None:
    """Run both scenarios on both configurations and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--course", default=os.environ.get(
        "JUPYTER_LLM_COURSE", str(REPO.parent / "shared/eval/course")))
    ap.add_argument("--students", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("-k", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads per model")
    ap.add_argument("--scenario", action="append", choices=["class", "greedy"], default=None)
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temp folder)")
    args = ap.parse_args()
    scenarios = args.scenario or ["class", "greedy"]

    import tempfile

    from jupyter_llm.config import Settings
    from tests.fixtures.server import start_serve

    work = Path(args.work or tempfile.mkdtemp(prefix="classroom-"))
    work.mkdir(parents=True, exist_ok=True)
    names = [f"student{i:02d}" for i in range(max(args.students, 6))]
    registry, args.tokens = setup(Path(args.course) / "git-novice", work, names)
    base = {"JUPYTER_LLM_REGISTRY_PATH": str(registry), "JUPYTER_LLM_QUEUE_SIZE": "64",
            "JUPYTER_LLM_N_THREADS": str(args.threads), "JUPYTER_LLM_N_CTX": "4096",
            "JUPYTER_LLM_HISTORY": "0", "HF_HUB_OFFLINE": "1"}
    fifo_env = {**base, "JUPYTER_LLM_SCHEDULING": "fifo"}
    if "parallel" in Settings.model_fields:  # the batching host: today's path is one at a time
        fifo_env["JUPYTER_LLM_PARALLEL"] = "1"
    envs = {"fifo": fifo_env, "fair": {**base, "JUPYTER_LLM_SCHEDULING": "fair"}}
    qs = questions(max(args.students, 15))
    plans = {
        "class": [(names[i], qs[i], 0.0) for i in range(args.students)],
        "greedy": [(names[0], qs[i], 0.0) for i in range(10)]
                  + [(names[1 + i], qs[10 + i], 0.05) for i in range(5)],
    }

    def fresh(config: str, plan: list[tuple[str, str, float]],
              max_tokens: int | None = None) -> list[dict[str, Any]]:
        """``plan`` on a server of its own: a real class asks new questions, so nothing an
        earlier run cached (prompts' KV, excerpt vectors) may help this one."""
        served = start_serve(work, "--port", "0", env=envs[config], timeout=120)
        try:  # warm up (load the model and the embedder) with a question of no plan
            run_round(served.url, [(names[0], WARM_UP, 0.0)], args)
            return run_round(served.url, plan, args, max_tokens)
        finally:
            served.stop()

    measured: dict[str, dict[str, list[list[dict[str, Any]]]]] = {
        s: {c: [] for c in CONFIGS} for s in scenarios}
    for r in range(args.rounds):
        for s in scenarios:
            for c in (CONFIGS if r % 2 == 0 else CONFIGS[::-1]):
                start = time.perf_counter()
                measured[s][c].append(fresh(c, plans[s]))
                print(f"round {r + 1} {s} {c}: {time.perf_counter() - start:.1f} s",
                      file=sys.stderr)
        if "class" in scenarios:  # prompt reading alone: one-token answers
            measured["class"].setdefault("floor", []).append(
                fresh("fair", plans["class"], max_tokens=1))
    report(measured, args)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]"


def report(measured: dict[str, dict[str, list[list[dict[str, Any]]]]],
           args: argparse.Namespace) -> None:
    """Print per-round statistics as median [min-max] over rounds, and fair/FIFO ratios."""
    print(f"SmolLM2-135M-Instruct, grounded ask (k={args.k}, max_tokens={args.max_tokens}), "
          f"{args.rounds} rounds; median over rounds [min-max]")
    if "class" in measured:
        print(f"\nclass: {args.students} students at once")
        stats: dict[str, dict[str, list[float]]] = {}
        for c in CONFIGS:
            rows = measured["class"][c]
            stats[c] = {
                "p50 ttft": [percentile([r["ttft"] for r in rs], 0.5) for rs in rows],
                "p95 ttft": [percentile([r["ttft"] for r in rs], 0.95) for rs in rows],
                "p50 total": [percentile([r["total"] for r in rs], 0.5) for rs in rows],
                "p95 total": [percentile([r["total"] for r in rs], 0.95) for rs in rows]}
        _print_table(stats)
        print("goals (with batching): p95 ttft ratio <= 0.25, p95 total ratio <= 0.7")
        floor = [percentile([r["ttft"] for r in rs], 0.95) for rs in measured["class"]["floor"]]
        ratio = [f / b for f, b in zip(floor, stats["fifo"]["p95 ttft"], strict=True)]
        print(f"floor: p95 ttft with one-token answers (reading the prompts alone) "
              f"{_spread(floor).strip()} s, ÷ fifo's p95 ttft {_spread(ratio).strip()}: "
              "no order of the same prompts can do better")
    if "greedy" in measured:
        print("\ngreedy: one student fires 10, then 5 others ask one each")
        others: dict[str, dict[str, list[float]]] = {}
        for c in CONFIGS:
            rows = [[r for r in rs if r["user"] != "student00"] for rs in measured["greedy"][c]]
            mine = [[r for r in rs if r["user"] == "student00"] for rs in measured["greedy"][c]]
            others[c] = {
                "others mean ttft": [statistics.mean(r["ttft"] for r in rs) for rs in rows],
                "others max ttft": [max(r["ttft"] for r in rs) for rs in rows],
                "greedy last total": [max(r["total"] for r in rs) for rs in mine]}
        _print_table(others)


def _print_table(stats: dict[str, dict[str, list[float]]]) -> None:
    """One row per configuration and a fair/fifo ratio row, each figure as median [range]."""
    print(f"{'':10} " + " ".join(f"{k:>22}" for k in stats["fifo"]))
    for c in CONFIGS:
        print(f"{c:10} " + " ".join(f"{_spread(v):>22}" for v in stats[c].values()))
    ratios = {k: [f / b for f, b in zip(stats["fair"][k], stats["fifo"][k], strict=True)]
              for k in stats["fair"]}
    print(f"{'fair/fifo':10} " + " ".join(f"{_spread(v):>22}" for v in ratios.values()))


if __name__ == "__main__":
    main()
