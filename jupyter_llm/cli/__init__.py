"""``jupyter llm`` (console script ``jupyter-llm``): each command lives in its own module
with a ``register(subparsers)`` function; this module only dispatches and reports errors."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from ..display import error_text
from ..errors import JupyterLLMError
from ..redact import install_log_redaction

__all__ = ["main", "build_parser"]

COMMAND_MODULES = ("models", "prompt", "retrieval", "collections", "evaluate", "serve",
                   "history", "tokens")


_RESUME_HINTS = {
    "pull": "; the partial download is kept: run the same command again to resume",
    "ingest": "; the files ingested so far are kept: run the same command again to continue",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        self.exit(2, f"jupyter llm: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command module's subcommands."""
    parser = _Parser(prog="jupyter llm", description="Large language models for Jupyter.")
    parser.add_argument("--version", action="version", version=f"jupyter-llm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ImportError as e:
            if e.name and e.name.startswith(f"{__name__}.{name}"):
                continue  # a command module that does not exist yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``jupyter llm`` command; errors print one line and exit non-zero."""
    parser = build_parser()
    args = parser.parse_args(argv)
    install_log_redaction()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="jupyter llm: %(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except JupyterLLMError as e:
        if args.debug:
            raise
        print(f"jupyter llm: error: {error_text(e, 'cli')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jupyter llm: interrupted" + _RESUME_HINTS.get(args.command, ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if "jupyter_llm.client" in sys.modules:  # the command used a client: release it
            sys.modules["jupyter_llm.client"].disconnect()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
