"""``%%llm``: send the cell to a model and stream the answer into the output."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from ..models import Message, Response
from ..options import parse_option_pairs
from .arguments import cell_arguments, parse_line
from .interpolate import LAST_ERROR, error_text, interpolate
from .render import StreamDisplay, extract_code
from .session import Session

__all__ = ["cell_arguments", "hide_markdown_once", "parse_line", "run_cell"]


def _namespace(shell: Any, session: Session) -> dict[str, Any]:
    """The user namespace plus ``{last_error}`` (unless the user defined that name)."""
    ns = dict(shell.user_ns)
    if LAST_ERROR not in ns:
        ns[LAST_ERROR] = error_text(session.last_error, session.last_error_cell) or "(no error yet)"
    return ns


def _options(args: Any, base: dict[str, Any]) -> dict[str, Any]:
    options = {**base, **parse_option_pairs(args.option)}
    for name in ("temperature", "max_tokens", "seed"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.format == "json" and "json_schema" not in options:
        options.setdefault("json_mode", True)
    if args.cont:
        options.setdefault("trim_history", True)  # leave out the oldest turns, and say so
    return options


def _schema(shell: Any, text: str) -> tuple[dict[str, Any], Any]:
    """``--schema``: a notebook variable (a JSON schema dict or a pydantic class) or inline
    JSON. Returns the schema and the pydantic class to build the result with (or None)."""
    import json

    value: Any = shell.user_ns.get(text, text)
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return value.model_json_schema(), value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"--schema {text}: give the name of a notebook variable holding a JSON schema (a "
            "dict) or a pydantic class, or the schema itself as JSON, e.g. "
            '--schema \'{"type": "object", "properties": {"x": {"type": "number"}}}\'.')
    return value, None


def _parsed(response: Response, model_class: Any) -> Any:
    """The answer of a ``--schema`` cell as Python data (a ``model_class`` instance if given)."""
    import json

    text = response.text()
    try:
        data = json.loads(text)
    except ValueError:
        why = (" It stopped at the token limit: raise --max-tokens."
               if response.finish_reason == "length" else "")
        raise InvalidRequest(f"The answer is not complete JSON.{why}",
                             details={"finish_reason": response.finish_reason}) from None
    return model_class.model_validate(data) if model_class is not None else data


def _warn(response: Response) -> None:
    """Show the response's warnings (no chat template, oldest turns left out) below it."""
    import sys

    from ..display import warning_lines

    for line in warning_lines(response.warnings, "notebook"):
        print(f"warning: {line}", file=sys.stderr)


def _template_model(session: Session, template: Any) -> str | None:
    """A template's preferred model: its first installed ``models`` entry, else its tags."""
    if template.models:
        states = {e["id"]: e.get("state") for e in session.client.models()}
        for model in template.models:
            if states.get(session.resolve(model)) in ("installed", "loaded"):
                return model
    if template.tags:
        return "tags:" + ",".join(template.tags)
    return None


def _grounded(session: Session, collection: str, question: str, k: int, model: str | None,
              log: bool, options: dict[str, Any]) -> Response:
    """Ask ``collection`` through the client: numbered sources cited as [n], "not covered"
    when the collection does not cover the question, retrieval only with no chat model."""
    return session.client.ask(collection, question, model, stream=True, k=k, log=log,
                              **options)


def hide_markdown_once(response: Response) -> Response:
    """Let the cell's ``Out`` show a one-line summary: the answer is already on screen."""
    def once() -> None:
        del response._repr_markdown_  # the next display (`_` later) shows the full answer
        return None

    response._repr_markdown_ = once  # type: ignore[method-assign]
    return response


def run_cell(shell: Any, session: Session, line: str, cell: str) -> Any:
    """Run ``%%llm`` and return the ``Response`` (or None when there was nothing to send; the
    parsed value with ``--schema``)."""
    args = parse_line(line)
    if args.cont and args.new:
        raise InvalidRequest("Use either -c/--continue or --new, not both.")
    namespace = _namespace(shell, session)
    text = interpolate(cell, namespace).strip()
    system = interpolate(args.system, namespace) if args.system else None
    base_options: dict[str, Any] = {}
    model = session.resolve(args.model)
    if args.template:
        from ..prompts import PromptLibrary

        template = PromptLibrary.load().get(args.template)
        values = {k: namespace[k] for k in template.variables if k in shell.user_ns}
        values.update(parse_option_pairs(args.var))
        t_system, text = template.render(text, values)
        system = system or t_system
        base_options = dict(template.options)
        if model is None and not args.cont and session.default_model is None:
            model = _template_model(session, template)
    if not text:
        raise InvalidRequest("The cell is empty: write a prompt below `%%llm`.")
    if args.new or not args.cont:
        session.forget_conversation()
    if args.cont and model is None:
        model = session.conversation_model
    if model is None:
        model = session.resolve(session.default_model)
    options = _options(args, base_options)
    model_class = None
    if args.schema:
        if args.ground:
            raise InvalidRequest("-g answers with cited sources, not JSON; drop --schema.")
        options["json_schema"], model_class = _schema(shell, args.schema)
        options.pop("json_mode", None)
        args.format = "json"
    stream, log = not args.no_stream, not args.no_log
    if args.ground:
        if args.cont:
            raise InvalidRequest("-g answers one question from the collection; drop -c.")
        response = _grounded(session, args.ground, text, args.top_k, model, log, options)
        messages: list[Message] = [{"role": "user", "content": text}]
    else:
        messages = list(session.messages) if args.cont else []
        if system:
            messages = [m for m in messages if m.get("role") != "system"]
            messages.insert(0, {"role": "system", "content": system})
        messages.append({"role": "user", "content": text})
        response = session.client.chat(messages, model, stream=stream, log=log, **options)
    live = session.live if session.live is not None else getattr(shell, "kernel", None) is not None
    display = StreamDisplay(args.format, live=live, interval=session.interval)
    if stream:
        display.run(response)
    else:
        display.show(response)
    _warn(response)
    if response.error is None:
        session.messages = [*messages, {"role": "assistant", "content": response.text()}]
        grounded_only = response.model_id.startswith("retrieval")
        session.conversation_model = model if grounded_only else (response.model_id or model)
    session.last_response = response
    if args.format == "code":
        shell.set_next_input(extract_code(response.text()), replace=False)
    if args.schema and response.error is None:
        return _parsed(response, model_class)
    return hide_markdown_once(response)
