"""``jupyter llm collections``: list retrieval collections, show one, change its settings."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run"]

_ON_OFF = {"on": True, "off": False}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``collections`` command."""
    p = subparsers.add_parser(
        "collections", help="list retrieval collections, show one or change its settings",
        description="Without a name, list the collections. With a name, show that collection; "
                    "--tutoring-guard on makes answers from it hold back complete code "
                    "solutions for students (instructors and admins only). Works on this "
                    "machine's data directory, or on the server named by JUPYTER_LLM_URL.")
    p.add_argument("collection", nargs="?", help="a collection name")
    p.add_argument("--tutoring-guard", choices=sorted(_ON_OFF), default=None,
                   help="guard students' answers from this collection (on) or not (off)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _line(info: dict[str, Any]) -> str:
    if info.get("error"):
        return f"{info['name']:24} unreadable: {info['error']}"
    guard = "  tutoring guard on" if info.get("tutoring_guard") else ""
    return (f"{info['name']:24} {info.get('documents', 0):>5} documents "
            f"{info.get('chunks', 0):>6} chunks  {info.get('embedding_model') or ''}{guard}")


def run(args: argparse.Namespace) -> int:
    """List, show or configure collections through the client."""
    from ..client import connect
    from ..display import print_listing

    client = connect()
    if args.collection is None:
        if args.tutoring_guard is not None:
            print("jupyter llm collections: name the collection whose tutoring guard to set.")
            return 2
        print_listing(client.collections(), as_json=args.json, line=_line,
                      empty="No collections yet: `jupyter llm ingest NAME FOLDER` builds one.")
        return 0
    if args.tutoring_guard is not None:
        info = client.configure_collection(args.collection,
                                           tutoring_guard=_ON_OFF[args.tutoring_guard])
    else:
        info = client.collection(args.collection)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(_line(info))
        print(f"  path: {info.get('path')}")
    return 0
