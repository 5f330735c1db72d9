"""``jupyter llm history``: the most recent requests and their statistics, through the
``Client`` (the server's history when ``JUPYTER_LLM_URL`` is set, else this machine's)."""

from __future__ import annotations

import argparse
import datetime as _dt
import json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``history`` command."""
    p = subparsers.add_parser("history", help="show recent requests (prompts, models, tokens)",
                              description="Show the request history, newest first.")
    p.add_argument("-n", "--limit", type=int, default=20, help="how many entries (default 20)")
    p.add_argument("--model", default=None, help="only this model's entries")
    p.add_argument("--user", default=None, help="only this user's entries")
    p.add_argument("--collection", default=None,
                   help="only the grounded answers from this collection")
    p.add_argument("--since", default=None, metavar="DATE",
                   help="only entries from this date or time on (2026-11-27, 2026-11-27T14:00)")
    p.add_argument("--until", default=None, metavar="DATE",
                   help="only entries before this date or time")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--stats", action="store_true",
                   help="print counts, tokens, mean time to first token and tokens/s per model")
    p.add_argument("--by", choices=["model", "user"], default="model",
                   help="group the statistics by model (default) or by user")
    p.add_argument("--export", metavar="FILE",
                   help="write the (filtered) entries to FILE.csv or FILE.jsonl")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the history (or its statistics)."""
    from ..client import connect
    from ..history import parse_time

    if args.limit < 1:
        from ..errors import InvalidRequest

        raise InvalidRequest("-n must be at least 1.")
    filters = {"user": args.user, "collection": args.collection,
               "since": parse_time(args.since, "--since"),
               "until": parse_time(args.until, "--until")}
    if args.export:
        fmt = "csv" if args.export.lower().endswith(".csv") else "jsonl"
        text = connect().export_history(fmt, model=args.model, **filters)
        with open(args.export, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"Wrote {args.export} ({fmt})")
        return 0
    if args.stats:
        stats = connect().history_stats(by=args.by, **filters)
        group = "models" if args.by == "model" else "users"
        if args.model and args.by == "model":  # per model already: keep the one asked for
            stats[group] = {m: s for m, s in stats[group].items() if m == args.model}
        if args.json:
            print(json.dumps(stats, indent=2))
            return 0
        print(f"{args.by:32} {'requests':>8} {'errors':>6} {'tokens in':>10} {'tokens out':>10}"
              f" {'ttft s':>7} {'tok/s':>7} {'cached':>6}")
        for model, s in stats[group].items():
            rate = s.get("prefix_cache_hit_rate")
            cached = "-" if not rate else f"{rate:.0%}"
            print(f"{model[:32]:32} {s['requests']:>8} {s['errors']:>6} {s['prompt_tokens']:>10}"
                  f" {s['completion_tokens']:>10} {_num(s['mean_ttft_s'], 3):>7}"
                  f" {_num(s['mean_tokens_per_s'], 1):>7} {cached:>6}")
        return 0
    entries = connect().history(args.limit, model=args.model, **filters)
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    if not entries:
        print("No requests recorded yet.")
        return 0
    for e in entries:
        when = _dt.datetime.fromtimestamp(e["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        prompt = e.get("prompt")
        if prompt is None and e.get("messages"):
            prompt = e["messages"][-1].get("content", "")
        tokens = f"{e.get('prompt_tokens') or 0}→{e.get('completion_tokens') or 0} tok"
        status = f"ERROR {e['error']}" if e.get("error") else _one_line(e.get("response") or "", 50)
        print(f"{when}  {e.get('model') or '?'}  [{e.get('face') or '-'}]  {tokens}  "
              f"{_one_line(prompt or '', 40)!r} → {status!r}")
    return 0


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
