"""``jupyter llm prompt``: stream a model's answer to stdout."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InvalidRequest
from ..options import parse_option_pairs

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``prompt`` command."""
    p = sub.add_parser("prompt", help="run a prompt and stream the answer")
    p.add_argument("text", nargs="?", help="the prompt (default: read standard input)")
    p.add_argument("-m", "--model", help="model id, alias, tags:A,B query, or a .gguf path")
    p.add_argument("-s", "--system", help="system message")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="model option, e.g. -o temperature=0 -o max_tokens=64 (repeatable)")
    p.add_argument("--completion", action="store_true", help="raw completion, no chat template")
    p.add_argument("--no-log", action="store_true", help="do not record this request in history")
    p.set_defaults(func=cmd_prompt)


def cmd_prompt(args: argparse.Namespace) -> int:
    """Stream one prompt's answer to stdout."""
    from ..client import connect
    from ..display import warning_lines

    text = args.text
    if text is None or text == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InvalidRequest("Give the prompt as an argument or on standard input.")
        text = sys.stdin.read()
    options = parse_option_pairs(args.option)
    client = connect()
    if args.completion:
        response = client.generate(text, args.model, log=not args.no_log, **options)
    else:
        response = client.prompt(text, args.model, system=args.system, log=not args.no_log,
                                 **options)
    for chunk in response.events():
        if not isinstance(chunk, str):  # waiting for a busy model: say where, on stderr
            if chunk.position:
                sys.stderr.write(chunk.describe() + "…\n")
            continue
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    for line in warning_lines(response.warnings, "cli"):  # e.g. no chat template
        sys.stderr.write(f"warning: {line}\n")
    return 0
