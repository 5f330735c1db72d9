"""``jupyter llm models | pull | rm | load | unload | ps``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..display import ProgressBar, human_bytes, ps_rows, state_label

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the model-management commands."""
    p = sub.add_parser("models", help="list the registry's models and their state")
    p.add_argument("--json", action="store_true", help='print {"models": [...]} as JSON')
    p.add_argument("--tag", action="append", default=[], help="only models with this tag (repeatable)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("pull", help="download a model (resumable, sha256-checked)")
    p.add_argument("model", help="model id or alias")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("rm", help="delete an installed model")
    p.add_argument("model", help="model id or alias")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("load", help="load a model into the host")
    p.add_argument("model", help="model id, alias or tags:...")
    p.add_argument("--parallel", type=int, help="requests it decodes together (batch slots)")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("unload", help="unload a model from the host")
    p.add_argument("model", help="model id or alias")
    p.set_defaults(func=cmd_unload)

    p = sub.add_parser("ps", help="list loaded models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ps)


def _client() -> Any:
    from ..client import connect

    return connect()


def cmd_models(args: argparse.Namespace) -> int:
    """Print the registry with each model's state."""
    models = _client().models()
    for tag in args.tag:
        models = [m for m in models if tag.upper() in m.get("tags", [])]
    if args.json:
        json.dump({"models": models}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not models:
        print("No models match." if args.tag else "The registry is empty.")
        return 0
    rows = [("ID", "STATE", "BACKEND", "SIZE", "TAGS")]
    for m in models:
        size = human_bytes(m.get("size_bytes")) if m.get("size_bytes") else "-"
        rows.append((m["id"], state_label(m), m["backend"], size, ",".join(m.get("tags", []))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4])
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    """Download a model with a progress bar."""
    manifest = _client().pull(args.model, progress=ProgressBar(args.model))
    name = manifest.get("id", args.model)
    if manifest.get("remote"):
        print(f"{name} is a remote model: nothing to download.")
    else:
        path = manifest.get("path") or manifest.get("file")
        size = f" ({human_bytes(manifest['size_bytes'])})" if manifest.get("size_bytes") else ""
        print(f"Installed {name}{size} at {path}" if path else f"Installed {name}{size}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """Delete an installed model."""
    removed = _client().remove(args.model)
    print(f"Removed {args.model}" if removed else f"{args.model} was not installed")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    """Load a model."""
    options = {"parallel": args.parallel} if getattr(args, "parallel", None) else {}
    info = _client().load(args.model, **options)
    print(f"Loaded {info.get('id', args.model)}")
    return 0


def cmd_unload(args: argparse.Namespace) -> int:
    """Unload a model."""
    print(f"Unloaded {args.model}" if _client().unload(args.model) else f"{args.model} was not loaded")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    """List loaded models."""
    loaded = _client().ps()
    if args.json:
        json.dump({"models": loaded}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not loaded:
        print("No models are loaded.")
    else:
        for m in ps_rows(loaded):
            extra = "  ".join(f"{k}: {v}" for k, v in m.items() if k != "id")
            print(f"{m['id']}  {extra}")
    return 0
