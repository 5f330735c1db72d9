"""``%%llm`` and ``%llm`` in a real IPython shell (``globalipapp``, no kernel) against an
in-process host running the tiny GGUF models in real llama.cpp workers."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from IPython.utils.capture import capture_output

from jupyter_llm.client.local import LocalClient
from jupyter_llm.errors import (
    Busy,
    InvalidOptions,
    InvalidRequest,
    ModelNotReady,
    NotFound,
    UnknownModel,
    hint,
)
from jupyter_llm.magics import magics_of
from jupyter_llm.magics.render import cell_error, extract_code
from jupyter_llm.magics.session import Session
from jupyter_llm.models import Response


@pytest.fixture(scope="module")
def ip():
    """The global test IPython shell with ``%load_ext jupyter_llm``."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    shell = start_ipython() or get_ipython()  # started once per process
    shell.run_line_magic("load_ext", "jupyter_llm")
    return shell


@pytest.fixture
def llm(ip, tiny_registry):
    """A fresh ``%llm`` session over a fresh in-process host (closed after the test)."""
    client = LocalClient()
    session = Session(client_=client, live=True)
    magics_of(ip).session = session
    yield session
    client.host.close()


def run(ip, code: str):
    """Run a cell, capturing its display outputs; return (result, outputs)."""
    with capture_output() as captured:
        result = ip.run_cell(code)
    return result, captured.outputs


def sent(ip) -> list[dict]:
    """The chat messages the last ``%%llm`` cell sent (as the host received them)."""
    response = ip.user_ns["_"]
    assert isinstance(response, Response)
    return response.request.messages


def one_line_error(result, cls):
    """The cell failed with ``cls``, rendered by IPython as one line (no traceback)."""
    err = result.error_in_exec
    assert isinstance(err, cls), repr(err)
    lines = err._render_traceback_()
    assert len(lines) == 1 and lines[0].startswith(cls.__name__ + ": ")
    return lines[0]


def test_cell_streams_into_one_display_updated_per_chunk_and_returns_the_response(ip, llm):
    llm.interval = 0.0  # no throttle: every chunk updates the display
    result, outputs = run(ip, "%%llm --max-tokens 12 --temperature 0\nSay hello.")
    assert result.success
    response = ip.user_ns["_"]
    assert response is result.result is llm.last_response
    assert response.usage.completion_tokens == 12 and response.finish_reason == "length"
    assert response.timings["duration_s"] > 0
    display_ids = {o.transient["display_id"] for o in outputs}
    assert len(display_ids) == 1  # one output, updated in place
    assert not outputs[0].update and all(o.update for o in outputs[1:])
    assert len(outputs) == 1 + len(response._chunks) + 1  # created, one per chunk, final
    partial = [o.data["text/markdown"] for o in outputs[1:-1]]
    assert all(response.text().startswith(p) for p in partial)
    final = outputs[-1].data["text/markdown"]
    assert final.startswith(response.text()) and "tiny-chat · 12 tokens" in final
    assert sent(ip) == [{"role": "user", "content": "Say hello."}]


def test_updates_are_throttled(ip, llm):
    llm.interval = 60.0
    result, outputs = run(ip, "%%llm --max-tokens 40\nCount.")
    assert result.success and ip.user_ns["_"].usage.completion_tokens == 40
    assert len(outputs) == 2 and outputs[-1].update  # created, then the final rendering


def test_out_shows_a_summary_once_then_the_full_answer(ip, llm, monkeypatch):
    monkeypatch.setattr(ip.display_formatter.formatters["text/markdown"], "enabled", True)
    shown = []
    monkeypatch.setattr(ip.displayhook, "write_format_data",
                        lambda data, md=None: shown.append(data))
    result, _ = run(ip, "%%llm --max-tokens 5\nhi")
    response = result.result
    assert shown == [{"text/plain": repr(response)}]  # the answer itself is already on screen
    formatted, _ = ip.display_formatter.format(response)
    assert formatted["text/markdown"] == response.text()  # `_` later shows the full answer


def test_no_stream_shows_the_answer_once(ip, llm):
    result, outputs = run(ip, "%%llm --no-stream --max-tokens 6\nhi")
    assert result.success and len(outputs) == 1
    assert outputs[0].data["text/markdown"].startswith(result.result.text())


def test_variables_in_and_out_are_interpolated_and_double_braces_escape(ip, llm):
    ip.run_cell("topic = 'for loops'")
    ip.run_cell("6 * 7", store_history=True)
    n = ip.execution_count - 1
    result, _ = run(ip, "%%llm --max-tokens 3 -s 'Teach {topic}.'\n"
                        f"Explain {{topic}} and {{Out[{n}]}} from `{{In[{n}]}}`; "
                        "JSON looks like {{\"a\": 1}}")
    assert result.success
    assert sent(ip) == [
        {"role": "system", "content": "Teach for loops."},
        {"role": "user", "content": 'Explain for loops and 42 from `6 * 7`; JSON looks like {"a": 1}'}]


def test_an_undefined_variable_is_one_clear_error(ip, llm):
    result, _ = run(ip, "%%llm --max-tokens 3\nExplain {undefined_thing}")
    line = one_line_error(result, InvalidRequest)
    assert "'undefined_thing' is not defined" in line and "{{undefined_thing}}" in line


def test_last_error_and_fix_explain_the_last_exception(ip, llm):
    failing = ip.run_cell("values = [1, 2]\nvalues[5]")
    assert isinstance(failing.error_in_exec, IndexError)
    result, _ = run(ip, "%%llm --max-tokens 3\nWhy? {last_error}")
    assert result.success
    content = sent(ip)[-1]["content"]
    assert "IndexError: list index out of range" in content and "values[5]" in content
    assert "interactiveshell.py" not in content  # IPython's own frames are left out
    result, outputs = run(ip, "%llm fix")
    assert result.success and outputs
    messages = result.result.request.messages
    assert messages[0]["role"] == "system" and "tutor" in messages[0]["content"]
    assert "values[5]" in messages[1]["content"] and "IndexError" in messages[1]["content"]


def test_fix_without_an_error_says_what_to_do(ip, llm):
    magics_of(ip).session.last_error = None
    assert run(ip, "%%llm --temperature warm\nhi")[0].error_in_exec is not None  # UsageError
    line = one_line_error(run(ip, "%llm fix")[0], InvalidRequest)
    assert "run a cell that fails" in line


def test_options_reach_the_model_and_bad_ones_are_one_line(ip, llm):
    result, _ = run(ip, "%%llm --temperature 0.5 --seed 7 --max-tokens 4 -o top_k=5 -o stop='[\"zz\"]'\nhi")
    assert result.success
    options = result.result.request.options
    assert (options.temperature, options.seed, options.max_tokens, options.top_k,
            options.stop) == (0.5, 7, 4, 5, ["zz"])
    line = one_line_error(run(ip, "%%llm -o bogus=1\nhi")[0], InvalidOptions)
    assert "bogus" in line and "Known options" in line
    line = one_line_error(run(ip, "%%llm --temperature 9\nhi")[0], InvalidOptions)
    assert "temperature" in line
    line = one_line_error(run(ip, "%%llm -o notapair\nhi")[0], InvalidOptions)
    assert "key=value" in line


def test_unknown_and_uninstalled_models_say_what_to_run_next(ip, llm):
    line = one_line_error(run(ip, "%%llm -m tiny-chatt\nhi")[0], UnknownModel)
    assert "'tiny-chat'" in line and "`%llm models`" in line
    line = one_line_error(run(ip, "%%llm -m tiny-remote-only\nhi")[0], ModelNotReady)
    assert "`%llm pull tiny-remote-only`" in line


def test_with_no_model_installed_the_error_says_pull(ip, tiny_registry, monkeypatch):
    monkeypatch.delenv("JUPYTER_LLM_DEFAULT_MODEL")
    client = LocalClient()
    magics_of(ip).session = Session(client_=client, live=True)
    try:
        ip.run_line_magic("llm", "rm tiny-chat")
        line = one_line_error(run(ip, "%%llm\nhi")[0], ModelNotReady)
        assert "`%llm pull" in line
    finally:
        client.host.close()


def test_model_by_alias_and_capability_query(ip, llm):
    assert run(ip, "%%llm -m tiny --max-tokens 2\nhi")[0].success
    assert ip.user_ns["_"].model_id == "tiny-chat"
    assert run(ip, "%%llm -m tags:CONVERSATIONAL,2024_BASIC --max-tokens 2\nhi")[0].success
    assert ip.user_ns["_"].model_id == "tiny-chat"
    ip.run_line_magic("llm", "alias teacher tiny-chat")
    assert run(ip, "%%llm -m teacher --max-tokens 2\nhi")[0].success
    assert ip.user_ns["_"].model_id == "tiny-chat"
    with pytest.raises(UnknownModel):
        ip.run_line_magic("llm", "alias x not-a-model")


def test_continue_keeps_the_conversation_and_new_forgets_it(ip, llm):
    run(ip, "%%llm -s 'Be terse.' --max-tokens 3\nfirst")
    first = ip.user_ns["_"].text()
    assert run(ip, "%%llm -c --max-tokens 3\nsecond")[0].success
    second = ip.user_ns["_"].text()
    assert sent(ip) == [{"role": "system", "content": "Be terse."},
                        {"role": "user", "content": "first"},
                        {"role": "assistant", "content": first},
                        {"role": "user", "content": "second"}]
    assert run(ip, "%%llm -c --max-tokens 3\nthird")[0].success
    assert [m["content"] for m in sent(ip)] == ["Be terse.", "first", first, "second", second,
                                                  "third"]
    assert run(ip, "%%llm --new --max-tokens 3\nfresh")[0].success
    assert sent(ip) == [{"role": "user", "content": "fresh"}]
    assert run(ip, "%%llm --max-tokens 3\nalso fresh")[0].success
    assert len(sent(ip)) == 1
    one_line_error(run(ip, "%%llm -c --new\nx")[0], InvalidRequest)


def test_template_fills_variables_from_flags_the_namespace_and_defaults(ip, llm):
    line = one_line_error(run(ip, "%%llm -t mark-rubric --max-tokens 2\nx = 1")[0], InvalidRequest)
    assert "rubric" in line
    ip.run_cell("rubric = '2 points: uses a loop'")
    result, _ = run(ip, "%%llm -t mark-rubric --var question='Sum a list' --max-tokens 2\n"
                        "total = sum(xs)")
    assert result.success
    system, user = sent(ip)
    assert "fair, consistent marker" in system["content"]
    assert "Question: Sum a list" in user["content"] and "2 points: uses a loop" in user["content"]
    assert user["content"].endswith("total = sum(xs)")
    assert result.result.request.options.temperature == 0.0  # the template's default option
    assert run(ip, "%%llm -t socratic-tutor --temperature 0.9 --max-tokens 2\nhelp")[0].success
    assert ip.user_ns["_"].request.options.temperature == 0.9  # flags win over the template
    from jupyter_llm.errors import NotFound

    line = one_line_error(run(ip, "%%llm -t socratic\nhi")[0], NotFound)
    assert "'socratic-tutor'" in line and "%llm templates" in line


def test_code_format_puts_the_code_in_the_next_cell(ip, llm, monkeypatch):
    placed = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: placed.append(text))
    result, outputs = run(ip, "%%llm -f code --max-tokens 8\nWrite a loop.")
    assert result.success and placed == [extract_code(result.result.text())]
    assert outputs[-1].data["text/markdown"].startswith("```python\n")


def test_extract_code_prefers_the_python_block():
    text = "Here:\n```bash\nls\n```\nand\n```python\nfor i in range(3):\n    print(i)\n```\n"
    assert extract_code(text) == "for i in range(3):\n    print(i)"
    assert extract_code("```\nx = 1\n```") == "x = 1"
    assert extract_code("```py\nunterminated") == "unterminated"
    assert extract_code("no fences") == "no fences"


def test_json_and_text_formats(ip, llm):
    result, outputs = run(ip, "%%llm -f json --max-tokens 6\nGive JSON.")
    assert result.success and result.result.request.options.json_mode is True
    assert "text/markdown" not in outputs[-1].data
    result, outputs = run(ip, "%%llm -f text --max-tokens 6\nplain")
    assert outputs[-1].data == {"text/plain": result.result.text()}


def test_schema_returns_the_parsed_json_enforced_by_a_grammar(ip, llm):
    """Random weights still answer valid JSON: the schema becomes a llama.cpp grammar."""
    ip.user_ns["flag_schema"] = {"type": "object", "properties": {"ok": {"type": "boolean"}},
                                 "required": ["ok"]}
    result, outputs = run(ip, "%%llm --schema flag_schema --max-tokens 60\nIs it ok?")
    assert result.success, result.error_in_exec
    assert isinstance(result.result, dict) and isinstance(result.result["ok"], bool)
    assert outputs[-1].data["application/json"] == result.result
    assert llm.last_response.request.options.json_schema == ip.user_ns["flag_schema"]

    from pydantic import BaseModel

    class Flag(BaseModel):
        ok: bool

    ip.user_ns["Flag"] = Flag
    result, _ = run(ip, "%%llm --schema Flag --max-tokens 60\nIs it ok?")
    assert isinstance(result.result, Flag)
    inline = '''%%llm --schema '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}' --max-tokens 60\nA number?'''
    result, _ = run(ip, inline)
    assert isinstance(result.result["n"], int)


def test_a_bad_schema_or_a_cut_answer_is_one_clear_error(ip, llm):
    line = one_line_error(run(ip, "%%llm --schema no_such_name\nx")[0], InvalidRequest)
    assert "notebook variable holding a JSON schema" in line
    ip.user_ns["flag_schema"] = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    line = one_line_error(run(ip, "%%llm --schema flag_schema --max-tokens 1\nx")[0],
                          InvalidRequest)
    assert "not complete JSON" in line and "--max-tokens" in line
    assert "drop --schema" in one_line_error(run(ip, "%%llm -g course --schema flag_schema\nx")[0],
                                             InvalidRequest)


def test_continue_leaves_out_the_oldest_turns_when_they_do_not_fit_and_says_so(ip, llm):
    words = " ".join(f"w{i}" for i in range(20))  # about 60 tokens of the tiny vocabulary
    assert run(ip, f"%%llm --new -o n_ctx=128 --max-tokens 2\nfirst {words}")[0].success
    with capture_output() as captured:
        result = ip.run_cell(f"%%llm -c -o n_ctx=128 --max-tokens 2\nsecond {words}")
    assert result.success, result.error_in_exec
    response = ip.user_ns["_"]
    assert response.request.options.trim_history is True
    (warning,) = response.warnings
    assert warning["type"] == "context_trimmed" and warning["details"]["dropped_messages"] == 2
    assert "warning: The conversation did not fit" in captured.stderr


def test_no_log_keeps_the_request_out_of_the_history(ip, llm):
    history = llm.client.host.history
    before = len(history.entries(100))
    run(ip, "%%llm --max-tokens 2\nlogged")
    assert len(history.entries(100)) == before + 1
    run(ip, "%%llm --no-log --max-tokens 2\nnot logged")
    assert len(history.entries(100)) == before + 1
    _, outputs = run(ip, "%llm history 5")
    table = outputs[0].data["text/markdown"]
    assert "| tiny-chat | logged |" in table and "not logged" not in table


def test_line_commands_manage_models(ip, llm):
    _, outputs = run(ip, "%llm models")
    table = outputs[0].data["text/markdown"]
    assert "| tiny-chat | installed |" in table and "| tiny-remote-only | available |" in table
    assert "| size |" in table and re.search(r"\| [0-9.]+ [KM]B \|", table), table
    assert "size_bytes" not in table
    _, outputs = run(ip, "%llm models --tag EMBEDDING")
    assert "tiny-embed" in outputs[0].data["text/markdown"]
    assert "tiny-chat" not in outputs[0].data["text/markdown"]
    assert run(ip, "%llm load tiny-chat")[0].success
    assert [m["id"] for m in llm.client.ps()] == ["tiny-chat"]
    _, outputs = run(ip, "%llm ps")
    table = outputs[0].data["text/markdown"]
    assert "tiny-chat" in table and " MB |" in table
    assert re.search(r"\| (just now|\d+ s ago) \|", table), table
    assert not re.search(r"\d{9,}", table), table  # no epoch seconds, no raw byte counts
    run(ip, "%llm unload tiny-chat")
    assert llm.client.ps() == []
    run(ip, "%llm rm tiny-embed")
    assert {m["id"]: m["state"] for m in llm.client.models()}["tiny-embed"] == "available"
    line = one_line_error(run(ip, "%llm pull")[0], InvalidRequest)
    assert "%llm pull qwen2.5-0.5b-instruct-q4_k_m" in line
    line = one_line_error(run(ip, "%llm modls")[0], InvalidRequest)
    assert "`%llm models`" in line


def test_use_sets_the_default_model(ip, llm, capsys):
    ip.run_line_magic("llm", "use tiny")
    assert llm.default_model == "tiny"
    run(ip, "%%llm --max-tokens 2\nhi")
    assert ip.user_ns["_"].model_id == "tiny-chat"
    ip.run_line_magic("llm", "use tiny-remote-only")
    assert "%llm pull tiny-remote-only" in capsys.readouterr().out
    line = one_line_error(run(ip, "%%llm --max-tokens 2\nhi")[0], ModelNotReady)
    assert "%llm pull tiny-remote-only" in line
    with pytest.raises(UnknownModel):
        ip.run_line_magic("llm", "use nope")
    ip.run_line_magic("llm", "use none")
    assert llm.default_model is None


def test_pull_shows_a_progress_bar(ip, llm, tiny_gguf, http_server, tmp_path, monkeypatch):
    import json

    from jupyter_llm.testing.tiny_gguf import sha256_file

    http_server.serve("/tiny.gguf", file=tiny_gguf)
    registry = tmp_path / "pull.json"
    registry.write_text(json.dumps({"models": [{
        "id": "pulled", "name": "p", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
        "url": http_server.url("/tiny.gguf"), "sha256": sha256_file(tiny_gguf),
        "size_bytes": tiny_gguf.stat().st_size}]}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(registry))
    client = LocalClient()
    magics_of(ip).session = Session(client_=client, live=True)
    try:
        result, outputs = run(ip, "%llm pull pulled")
        assert result.success
        box = outputs[0].data["application/vnd.jupyter.widget-view+json"]["model_id"]
        from ipywidgets.widgets.widget import _instances

        bar, label = _instances[box].children
        assert (bar.value, bar.bar_style) == (100, "success") and "done" in label.value
        assert {m["id"]: m["state"] for m in client.models()}["pulled"] == "installed"
    finally:
        client.host.close()


def test_templates_and_help_are_listed(ip, llm):
    _, outputs = run(ip, "%llm templates")
    text = outputs[0].data["text/markdown"]
    for name in ("socratic-tutor", "explain-code", "quiz", "mark-rubric", "explain-level"):
        assert f"| {name} |" in text
    assert "rubric, question=" in text
    _, outputs = run(ip, "%llm")
    assert "%llm pull ID" in outputs[0].data["text/markdown"]


def test_structured_hints_render_as_magics_after_the_message():
    err = cell_error(ModelNotReady("Model 'm' is not installed; download it first.",
                                   details=hint("pull", model="m")))
    assert err._render_traceback_() == [
        "ModelNotReady: Model 'm' is not installed; download it first. Run `%llm pull m`."]
    err = cell_error(NotFound("No collection 'c'.", details={"known": [],
                                                             **hint("ingest", collection="c")}))
    assert err._render_traceback_()[0].endswith("Run `%llm ingest c PATH`.")
    err = cell_error(Busy("The queue is full.", retry_after=7))
    assert err._render_traceback_()[0].endswith("The queue is full. Try again in 7 s.")
    err = cell_error(InvalidRequest("Bad.", details={"action": "no-such-action"}))
    assert err._render_traceback_() == ["InvalidRequest: Bad."]  # unknown actions add nothing


def test_an_error_from_the_server_renders_its_hint_in_the_magic(ip, llm):
    line = one_line_error(run(ip, "%llm load tiny-remote-only")[0], ModelNotReady)
    assert line.endswith("Run `%llm pull tiny-remote-only`.") and "jupyter llm" not in line


def test_import_and_load_ext_stay_light():
    """`import jupyter_llm` and `%load_ext` import no host, model or widget machinery."""
    code = textwrap.dedent("""
        import sys
        import jupyter_llm
        after_import = set(sys.modules)
        from IPython.testing.globalipapp import get_ipython, start_ipython
        start_ipython().run_line_magic("load_ext", "jupyter_llm")
        heavy = ("llama_cpp", "torch", "sentence_transformers", "ipywidgets", "httpx", "pydantic",
                 "jupyter_llm.host", "jupyter_llm.client.local", "jupyter_llm.retrieval.collection")
        print(sorted(m for m in heavy if m in after_import))
        print(sorted(m for m in heavy if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[-2:] == ["[]", "[]"]


def test_ground_on_a_missing_collection_is_one_clear_error(ip, llm):
    result, _ = run(ip, "%%llm -g no-such-collection\nHow do I undo a commit?")
    err = result.error_in_exec
    assert err is not None and len(err._render_traceback_()) == 1
    assert "no-such-collection" in err._render_traceback_()[0]


def test_cell_help_lists_every_option(ip):
    doc = ip.find_cell_magic("llm").__doc__
    for flag in ("--model", "--system", "--template", "--ground", "--format", "--temperature",
                 "--max-tokens", "--seed", "--option", "--continue", "--new", "--no-stream",
                 "--no-log"):
        assert flag in doc


def test_every_command_and_flag_is_in_the_notebook_docs():
    from pathlib import Path

    from jupyter_llm.magics.arguments import cell_arguments
    from jupyter_llm.magics.line import COMMANDS

    docs = (Path(__file__).resolve().parent.parent / "docs" / "notebooks.md").read_text()
    for command in COMMANDS:
        if command != "remove":  # an alias of rm
            assert f"`%llm {command}" in docs, command
    for action in cell_arguments.parser._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}`" in docs, flag


def _notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "loops.md").write_text("# Loops\n\nA for loop repeats a block for each item.\n")
    (folder / "lists.md").write_text("# Lists\n\nA list holds items in order; append adds one.\n")
    return folder


def test_ingest_and_search_magics_build_and_query_a_collection(ip, llm, tmp_path):
    folder = _notes(tmp_path)
    line = f"%llm ingest notes {folder} --embedder tiny-embed"
    result, outputs = run(ip, line)
    assert result.error_in_exec is None
    assert "2 added" in outputs[-1].data["text/markdown"]
    _, again = run(ip, line)
    assert "2 unchanged" in again[-1].data["text/markdown"]
    results = run(ip, "%llm search notes for loop -k 1 --mode lexical")[0].result
    assert len(results) == 1 and results[0].source.endswith("loops.md")
    assert "[1] [" in results._repr_markdown_() and "loops.md" in results._repr_markdown_()
    line = one_line_error(run(ip, "%llm search no-such-notes loops")[0], NotFound)
    assert "no-such-notes" in line and "notes" in line
    assert "Give a query" in one_line_error(run(ip, "%llm search notes")[0], InvalidRequest)


def test_ground_answers_through_the_client_and_abstains_when_not_covered(ip, llm, tmp_path):
    run(ip, f"%llm ingest notes {_notes(tmp_path)} --embedder tiny-embed")
    coll = llm.client.collections_service.open("notes")
    coll.set_support_threshold(-1.0)  # everything is covered: the chat model answers
    result, _ = run(ip, "%%llm -g notes -k 2\nWhat does a for loop do?")
    response = result.result
    assert response.model_id == "tiny-chat" and response.text()
    assert {c.source.rsplit("/", 1)[-1] for c in response.citations} <= {"loops.md", "lists.md"}
    prompt = llm.client.history(1)[0]["messages"][-1]["content"]
    assert "[1]" in prompt and "for loop repeats" in prompt
    coll.set_support_threshold(1.0)  # (almost) nothing is covered: no invented answer
    response = run(ip, "%%llm -g notes\nWho won the 1966 World Cup?")[0].result
    assert response.text().startswith("The course materials do not cover this question.")
    assert response.finish_reason == "not_covered"


def test_feedback_rates_the_last_answer_and_lands_in_the_history(ip, llm):
    result, _ = run(ip, "%%llm -m tiny-chat --max-tokens 4 --temperature 0\nhello")
    assert result.success
    result, outputs = run(ip, "%llm feedback down --score 2 too vague")
    assert result.success
    assert "score 2" in outputs[-1].data["text/markdown"]
    entry = llm.client.history(1)[0]
    assert (entry["rating"], entry["score"], entry["comment"]) == (-1, 2, "too vague")
    stats = llm.client.history_stats(by="user")
    assert sum(u["thumbs_down"] for u in stats["users"].values()) == 1


def test_feedback_without_an_answer_says_what_to_do(ip, llm):
    llm.last_response = None
    result, _ = run(ip, "%llm feedback up")
    assert "run a `%%llm` cell" in one_line_error(result, InvalidRequest)
