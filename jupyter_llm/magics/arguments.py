"""The options of ``%%llm`` (kept apart so ``%load_ext`` can show them without importing
the model layer)."""

from __future__ import annotations

from typing import Any

from IPython.core.magic_arguments import argument, magic_arguments

from ..errors import InvalidRequest

__all__ = ["FORMATS", "cell_arguments", "parse_line"]

FORMATS = ("markdown", "text", "code", "json", "html")


@magic_arguments()
@argument("-m", "--model", help="A model id, an alias, or a query such as tags:CONVERSATIONAL,2024_MED.")
@argument("-s", "--system", help="A system message (may use {variables}).")
@argument("-t", "--template", metavar="NAME", help="A prompt from the library (`%%llm templates`).")
@argument("--var", action="append", metavar="KEY=VALUE", default=[],
          help="A template variable (repeatable); else a notebook variable of that name, else its default.")
@argument("-g", "--ground", metavar="COLLECTION",
          help="Answer from a retrieval collection (name or .sqlite path), citing sources.")
@argument("-k", "--top-k", type=int, default=5, help="How many passages to retrieve with -g.")
@argument("-f", "--format", default="markdown", choices=FORMATS,
          help="How to show the answer; `code` also puts the code into a new cell.")
@argument("--schema", metavar="SCHEMA",
          help="Answer JSON matching a schema (a notebook variable holding a JSON schema or a "
               "pydantic class, or the schema as JSON); the cell returns the parsed value.")
@argument("--temperature", type=float, help="Sampling temperature (0: greedy).")
@argument("--max-tokens", type=int, help="Most tokens to generate.")
@argument("--seed", type=int, help="Random seed, for reproducible sampling.")
@argument("-o", "--option", action="append", metavar="KEY=VALUE", default=[],
          help="Any option of the model (repeatable), e.g. -o top_p=0.9.")
@argument("-c", "--continue", dest="cont", action="store_true",
          help="Continue the conversation of the previous %%llm cell.")
@argument("--new", action="store_true", help="Start a new conversation (forget the previous one).")
@argument("--no-stream", action="store_true", help="Show the answer only when it is complete.")
@argument("--no-log", action="store_true", help="Do not record this request in the history.")
def cell_arguments(line: str, cell: str | None = None) -> None:
    """Send the cell to a model. `{name}` inserts a notebook variable; `{{` is a literal brace."""


def parse_line(line: str) -> Any:
    """Parse the ``%%llm`` line with shell quoting (``-s "Be brief."``); bad flags raise
    IPython's one-line ``UsageError``."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError as e:
        raise InvalidRequest(f"Cannot parse the %%llm line: {e} (check the quotes).") from None
    return cell_arguments.parser.parse_args(words)


