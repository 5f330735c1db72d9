"""``%llm COMMAND``: manage models, defaults, aliases and prompts; explain the last error."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from ..display import human_bytes, ps_rows, state_label
from ..errors import InvalidRequest
from ..models import Response
from .interpolate import error_text
from .render import (
    StreamDisplay,
    eval_progress,
    ingest_progress,
    markdown_table,
    progress_callback,
)
from .session import Session

__all__ = ["COMMANDS", "HELP", "run_line"]

HELP = """\
**`%llm` commands**

| command | does |
|---|---|
| `%llm models [--tag TAG] [TEXT]` | list the registry models and their state |
| `%llm pull ID` | download a model (with a progress bar) |
| `%llm rm ID` | delete an installed model |
| `%llm load ID` / `%llm unload ID` | load a model now / free its memory |
| `%llm ps` | the loaded models |
| `%llm use [ID]` | set (or show) the default model of `%%llm`, `fix` and the panel |
| `%llm alias [NAME ID]` | name a model for `-m NAME` (no arguments: list the aliases) |
| `%llm templates` | the prompt library (`%%llm -t NAME`) |
| `%llm history [N]` | the most recent requests |
| `%llm panel` | the model panel widget |
| `%llm fix` | explain the last exception with the default model |
| `%llm ingest COLLECTION PATH... [--include GLOB] [--exclude GLOB]` | build or update a retrieval collection (`--vector-backend vss`, `--embedder MODEL` for a new one) |
| `%llm search COLLECTION QUERY [-k N] [--mode MODE]` | the passages that match, with citations (mode: hybrid, dense or lexical) |
| `%llm eval COLLECTION QUESTIONS.jsonl [-m MODEL ...] [-k N] [--out FILE]` | measure retrieval, abstention and (with `-m`) answers on a question file, one column per model |
| `%llm feedback up` or `down [--score N] [COMMENT]` | rate the last answer (`--id ID` for another history entry) |
| `%llm new` | forget the conversation (`%%llm -c` continues it) |
| `%llm help` | this help |

**`%%llm [options]`** sends the cell to a model: `-m MODEL`, `-s SYSTEM`, `-t TEMPLATE`,
`--var K=V`, `-g COLLECTION`, `-f markdown|text|code|json|html`, `--temperature`,
`--max-tokens`, `--seed`, `-o KEY=VALUE`, `-c` (continue), `--new`, `--no-stream`, `--no-log`.
Write `{name}` to insert a notebook variable (`{In[3]}`, `{Out[2]}`, `{last_error}`), `{{` for a
literal brace. Run `%%llm?` for every option.
"""

FIX_SYSTEM = (
    "You are a patient Python tutor. Explain the error below in plain words: what went "
    "wrong, on which line, and why. Then show the smallest fix as a corrected code block. "
    "Be brief.")


def _need(args: list[str], usage: str) -> str:
    if not args:
        raise InvalidRequest(f"Give a model id: `%llm {usage}` (list them with `%llm models`).")
    return args[0]


def _show_markdown(text: str) -> None:
    from IPython.display import display

    display({"text/markdown": text, "text/plain": text}, raw=True)


def cmd_models(shell: Any, s: Session, args: list[str]) -> list[dict[str, Any]]:
    """List the models (``--tag T`` filters by tag, other words by text)."""
    tag = None
    if "--tag" in args:
        i = args.index("--tag")
        if i + 1 >= len(args):
            raise InvalidRequest("`--tag` needs a tag, e.g. `%llm models --tag EMBEDDING`.")
        tag = args[i + 1]
        args = args[:i] + args[i + 2:]
    rows = s.client.models(tag)
    words = [w.lower() for w in args]
    rows = [r for r in rows if all(w in " ".join(str(v) for v in r.values()).lower() for w in words)]
    default = s.resolve(s.default_model)
    for r in rows:
        r["default"] = "✓" if default in (r.get("id"), *(r.get("aliases") or [])) else ""
    if rows:
        shown = [{**r, "state": state_label(r),
                  "size": human_bytes(r["size_bytes"]) if r.get("size_bytes") else "-"}
                 for r in rows]
        _show_markdown(markdown_table(shown, ["id", "state", "tags", "size", "default",
                                             "description"]))
    else:
        _show_markdown("No model matches. Run `%llm models` to list every model.")
    return rows


def cmd_pull(shell: Any, s: Session, args: list[str]) -> dict[str, Any]:
    """Download a model with a progress bar."""
    model = s.resolve(_need(args, "pull qwen2.5-0.5b-instruct-q4_k_m"))
    callback, close = progress_callback(f"{model}")
    try:
        manifest = s.client.pull(model, progress=callback)
    finally:
        close()
    if s.panel is not None:
        s.panel.refresh()
    if manifest.get("path"):
        print(f"Installed {manifest.get('id', model)} at {manifest['path']}")
    return manifest


def cmd_rm(shell: Any, s: Session, args: list[str]) -> bool:
    """Delete an installed model."""
    removed = s.client.remove(s.resolve(_need(args, "rm ID")))
    print("Removed." if removed else "It was not installed.")
    return removed


def cmd_load(shell: Any, s: Session, args: list[str]) -> dict[str, Any]:
    """Load a model now."""
    return s.client.load(s.resolve(_need(args, "load ID")))


def cmd_unload(shell: Any, s: Session, args: list[str]) -> bool:
    """Unload a model."""
    unloaded = s.client.unload(s.resolve(_need(args, "unload ID")))
    print("Unloaded." if unloaded else "It was not loaded.")
    return unloaded


def cmd_ps(shell: Any, s: Session, args: list[str]) -> list[dict[str, Any]]:
    """Show the loaded models."""
    rows = s.client.ps()
    if rows:
        shown = ps_rows(rows)
        _show_markdown(markdown_table(shown, list(shown[0])))
    else:
        _show_markdown("No model is loaded. Models load on first use, or with `%llm load ID`.")
    return rows


def cmd_use(shell: Any, s: Session, args: list[str]) -> str | None:
    """Set or show the default model."""
    if not args:
        print(f"Default model: {s.default_model or '(the host default)'}")
        return s.default_model
    if args[0] in ("none", "--clear"):
        s.use(None)
        return None
    entry = s.check_model(args[0])
    s.use(args[0])
    if entry is not None and entry.get("state") == "available":
        print(f"{entry['id']} is not installed yet: run `%llm pull {entry['id']}`.")
    return args[0]


def cmd_alias(shell: Any, s: Session, args: list[str]) -> dict[str, str]:
    """Set ``NAME -> ID``, remove ``--rm NAME``, or list the aliases."""
    if args[:1] == ["--rm"] and len(args) == 2:
        s.aliases.pop(args[1], None)
    elif len(args) == 2:
        s.check_model(args[1])
        s.aliases[args[0]] = args[1]
    elif args:
        raise InvalidRequest("Use `%llm alias NAME ID`, `%llm alias --rm NAME`, or `%llm alias`.")
    if not args:
        rows = [{"alias": k, "model": v} for k, v in s.aliases.items()]
        _show_markdown(markdown_table(rows, ["alias", "model"]) if rows else
                       "No aliases yet: `%llm alias NAME ID`.")
    return dict(s.aliases)


def cmd_templates(shell: Any, s: Session, args: list[str]) -> list[dict[str, Any]]:
    """List the prompt library, and the files that could not be used."""
    from ..prompts import PromptLibrary

    library = PromptLibrary.load()
    rows = library.summaries()
    shown = [{**r, "variables": ", ".join(k if v is None else f"{k}={v}"
                                          for k, v in r["variables"].items())} for r in rows]
    text = markdown_table(shown, ["name", "description", "variables", "origin"])
    if library.problems:
        text += "\n\n**Prompt files with problems**\n\n" + "\n".join(
            f"- {p}" for p in library.problems)
    _show_markdown(text)
    return rows


def cmd_history(shell: Any, s: Session, args: list[str]) -> list[dict[str, Any]]:
    """Show the most recent requests."""
    limit = int(args[0]) if args and args[0].isdigit() else 10
    rows = s.client.history(limit)
    if rows:
        import time

        shown = [_history_row(r, time) for r in rows]
        columns = [c for c in ("created_at", "model", "prompt", "completion_tokens",
                               "duration_s", "error") if any(c in r for r in rows)]
        _show_markdown(markdown_table(shown, columns or list(rows[0])))
    else:
        _show_markdown("No requests recorded yet.")
    return rows


def _history_row(row: dict[str, Any], time: Any) -> dict[str, Any]:
    """A history entry for the table: local time, the user's prompt, rounded duration."""
    out = dict(row)
    if isinstance(row.get("created_at"), (int, float)):
        out["created_at"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
    prompt = row.get("prompt")
    if not prompt and isinstance(row.get("messages"), list):
        users = [m.get("content", "") for m in row["messages"]
                 if isinstance(m, dict) and m.get("role") == "user"]
        prompt = users[-1] if users else ""
    prompt = str(prompt or "")
    out["prompt"] = prompt if len(prompt) <= 60 else prompt[:57] + "..."
    if isinstance(row.get("duration_s"), (int, float)):
        out["duration_s"] = round(row["duration_s"], 2)
    return out


def cmd_panel(shell: Any, s: Session, args: list[str]) -> Any:
    """Show the model panel widget (provided by ``jupyter_llm.widgets`` at ``%load_ext``)."""
    from . import provided

    factory = provided("panel")
    panel = factory(s.client, default_model=s.default_model or "", on_default=s.use)
    s.panel = panel
    return panel


def cmd_fix(shell: Any, s: Session, args: list[str]) -> Response:
    """Explain the last exception with the default model."""
    if s.last_error is None:
        raise InvalidRequest("There is no error to explain yet: run a cell that fails, then "
                             "`%llm fix`.")
    prompt = error_text(s.last_error, s.last_error_cell)
    messages = [{"role": "system", "content": FIX_SYSTEM}, {"role": "user", "content": prompt}]
    response = s.client.chat(messages, s.resolve(s.default_model))
    live = s.live if s.live is not None else getattr(shell, "kernel", None) is not None
    StreamDisplay("markdown", live=live, interval=s.interval).run(response)
    s.last_response = response
    from .cell import hide_markdown_once

    return hide_markdown_once(response)


def _parser(command: str) -> Any:
    from IPython.core.magic_arguments import MagicArgumentParser

    return MagicArgumentParser(prog=f"%llm {command}", add_help=False)


def cmd_ingest(shell: Any, s: Session, args: list[str]) -> dict[str, Any]:
    """Add, update and remove a collection's documents, with a progress bar."""
    import os

    p = _parser("ingest")
    p.add_argument("collection")
    p.add_argument("paths", nargs="*")
    p.add_argument("--include", action="append", default=[])
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--vector-backend", choices=["vec", "vss"], default=None)
    p.add_argument("--embedder", default=None)
    a = p.parse_args(args)
    if not a.paths:
        raise InvalidRequest(f"Give files or folders to ingest: `%llm ingest {a.collection} "
                             "course/`.")
    s.client.create_collection(a.collection, a.vector_backend, embedding_model=a.embedder)
    callback, close = ingest_progress(a.collection)
    try:
        summary = s.client.ingest(a.collection, [os.path.abspath(x) for x in a.paths],
                                  include=a.include, exclude=a.exclude, progress=callback)
    finally:
        close()
    text = f"**{a.collection}**: {summary['summary']}."
    if summary.get("failed"):
        text += "\n\n**Skipped**\n\n" + "\n".join(
            f"- `{f['path']}`: {f['error']}" for f in summary["failed"])
    _show_markdown(text + f"\n\nAsk it with `%%llm -g {a.collection}`.")
    return summary


def cmd_search(shell: Any, s: Session, args: list[str]) -> Any:
    """The passages of a collection that match a query, with citations."""
    p = _parser("search")
    p.add_argument("collection")
    p.add_argument("query", nargs="*")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default="hybrid")
    a = p.parse_args(args)
    if not a.query:
        raise InvalidRequest(f"Give a query: `%llm search {a.collection} how do I undo a "
                             "commit`.")
    return s.client.search(a.collection, " ".join(a.query), k=a.k, mode=a.mode)


def cmd_eval(shell: Any, s: Session, args: list[str]) -> Any:
    """Evaluate a collection (and chat models) on a question file; show the table."""
    from ..options import parse_option_pairs
    from ..retrieval.evaluate import default_answers_path
    from ..retrieval.questions import load_questions

    p = _parser("eval")
    p.add_argument("collection")
    p.add_argument("questions")
    p.add_argument("-m", "--model", action="extend", nargs="+", default=[])
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default="hybrid")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("-o", "--option", action="append", default=[])
    p.add_argument("--out", default=None)
    a = p.parse_args(args)
    questions = load_questions(a.questions)
    options = {"temperature": 0, **parse_option_pairs(a.option)} if a.model else {}
    callback, close = eval_progress(a.collection)
    try:
        report = s.client.evaluate(a.collection, questions, a.model, k=a.k, mode=a.mode,
                                   threshold=a.threshold,
                                   answers=a.out or default_answers_path(a.questions),
                                   progress=callback, **options)
    finally:
        close()
    _show_markdown(report._repr_markdown_() + f"\n\nEvery answer: `{report.answers_path}`.")
    return report


def cmd_feedback(shell: Any, s: Session, args: list[str]) -> dict[str, Any]:
    """Rate the last answer (or a history entry): thumbs up or down, a score, a comment."""
    p = _parser("feedback")
    p.add_argument("rating", choices=["up", "down", "none"])
    p.add_argument("comment", nargs="*")
    p.add_argument("--score", type=float, default=None)
    p.add_argument("--id", default=None)
    a = p.parse_intermixed_args(args)
    entry = a.id
    if entry is None:
        last = s.last_response
        entry = getattr(last, "request_id", None) if last is not None else None
        if entry is None:
            raise InvalidRequest("There is no logged answer to rate yet: run a `%%llm` cell "
                                 "(without --no-log), then `%llm feedback up` or `down`; or "
                                 "name an entry of `%llm history` with --id.")
    rating = {"up": 1, "down": -1, "none": 0}[a.rating]
    updated = s.client.feedback(entry, rating=rating, score=a.score,
                                comment=" ".join(a.comment) or None)
    thumb = {1: "👍", -1: "👎", 0: "no rating"}[rating]
    _show_markdown(f"Feedback saved on entry {updated.get('id')}: {thumb}"
                   + (f", score {a.score:g}" if a.score is not None else "")
                   + (f", “{' '.join(a.comment)}”" if a.comment else "") + ".")
    return updated


def cmd_new(shell: Any, s: Session, args: list[str]) -> None:
    """Forget the conversation."""
    s.forget_conversation()


def cmd_help(shell: Any, s: Session, args: list[str]) -> None:
    """Show the help."""
    _show_markdown(HELP)


COMMANDS: dict[str, Callable[[Any, Session, list[str]], Any]] = {
    "models": cmd_models, "pull": cmd_pull, "rm": cmd_rm, "remove": cmd_rm, "load": cmd_load,
    "unload": cmd_unload, "ps": cmd_ps, "use": cmd_use, "alias": cmd_alias,
    "templates": cmd_templates, "history": cmd_history, "panel": cmd_panel, "fix": cmd_fix,
    "new": cmd_new, "help": cmd_help, "ingest": cmd_ingest, "search": cmd_search,
    "feedback": cmd_feedback, "eval": cmd_eval,
}

_QUIET = {"rm", "remove", "unload", "use", "alias", "new", "help", "models", "ps", "templates",
          "history", "pull", "load", "ingest", "feedback", "eval"}
"""Commands that show their result themselves; the magic returns None for them."""


def run_line(shell: Any, session: Session, line: str) -> Any:
    """Run one ``%llm`` command line."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise InvalidRequest(f"Cannot parse `%llm {line}`: {e}.") from None
    if not words:
        words = ["help"]
    command, args = words[0], words[1:]
    handler = COMMANDS.get(command)
    if handler is None:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean `%llm {close[0]}`?" if close else ""
        raise InvalidRequest(f"Unknown command `%llm {command}`.{hint} Run `%llm help` for the "
                             "list.", details={"command": command})
    result = handler(shell, session, args)
    return None if command in _QUIET else result
