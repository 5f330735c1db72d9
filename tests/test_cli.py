"""`jupyter llm` commands: models, pull with a progress bar, rm, prompt; one-line errors."""

import json
import subprocess
import sys

import pytest

from jupyter_llm.cli import main
from jupyter_llm.registry import Registry
from jupyter_llm.store import Store


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json_lists_state_of_each_model(tiny_registry, capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    models = {m["id"]: m for m in json.loads(out)["models"]}
    assert models["tiny-chat"]["state"] == "installed"
    assert models["tiny-remote-only"]["state"] == "available"
    assert len(models) > 10  # the built-in registry as well


def test_models_filter_by_tag_and_table_output(tiny_registry, capsys):
    code, out, _ = run(capsys, "models", "--tag", "embedding")
    assert code == 0
    assert "tiny-embed" in out and "tiny-chat" not in out
    assert out.splitlines()[0].split()[:3] == ["ID", "STATE", "BACKEND"]


def test_models_marks_a_remote_model_without_its_key_as_needing_it(tiny_registry, capsys,
                                                                  monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out, _ = run(capsys, "models")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and rows["gpt-4o-mini"].split()[1:3] == ["installed", "(needs"]
    assert "(needs OPENAI_API_KEY)" in rows["gpt-4o-mini"]
    assert "needs" not in rows["tiny-chat"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, out, _ = run(capsys, "models")
    assert "needs" not in out


def test_prompt_streams_to_stdout(tiny_registry, capsys):
    code, out, _ = run(capsys, "prompt", "-m", "tiny", "-o", "max_tokens=8", "-o", "temperature=0",
                       "Hello")
    assert code == 0 and len(out.strip()) > 0
    code2, out2, _ = run(capsys, "prompt", "-m", "tiny-chat", "-s", "You are terse.",
                         "-o", "max_tokens=8", "-o", "temperature=0", "Hello")
    assert code2 == 0 and out2 != out  # the system message changes the prompt


def test_prompt_reads_stdin_in_a_real_process(tiny_registry):
    proc = subprocess.run([sys.executable, "-m", "jupyter_llm.cli", "prompt", "-o", "max_tokens=4"],
                          input="Hi from stdin", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_invalid_option_exits_nonzero_naming_option_and_allowed(tiny_registry, capsys):
    code, out, err = run(capsys, "prompt", "-m", "tiny", "-o", "temperature=9", "hi")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "temperature" in err and "less than or equal to 2" in err
    code, _, err = run(capsys, "prompt", "-m", "tiny", "-o", "tempreature=0.1", "hi")
    assert code == 1 and "tempreature" in err and "Known options: temperature" in err


def test_unknown_model_is_one_clear_line(tiny_registry, capsys):
    code, _, err = run(capsys, "prompt", "-m", "tiny-chta", "hi")
    assert code == 1
    assert err.strip().count("\n") == 0 and "Did you mean 'tiny-chat'" in err


def test_prompt_on_a_model_that_is_not_installed_says_pull(tiny_registry, capsys):
    code, _, err = run(capsys, "prompt", "-m", "tiny-remote-only", "hi")
    assert code == 1
    assert err.rstrip("\n").endswith("download it first. Run: jupyter llm pull tiny-remote-only")


@pytest.mark.parametrize(("details", "rendered"), [
    ({"action": "pull", "model": "m"}, "Run: jupyter llm pull m"),
    ({"action": "load", "model": "m"}, "Run: jupyter llm load m"),
    ({"action": "set_key", "env": "OPENAI_API_KEY", "model": "gpt"},
     "Run: export OPENAI_API_KEY=YOUR_KEY"),
    ({"action": "ingest", "collection": "notes"}, "Run: jupyter llm ingest notes PATH..."),
    ({"action": "completion", "model": "gemma"},
     "Run: jupyter llm prompt --completion -m gemma TEXT"),
    ({"action": "retry", "retry_after": 3}, "Try again in 3 s."),
    ({"action": "list_models"}, "Run: jupyter llm models"),
    ({"action": "list_templates"}, ""),  # no such command in a terminal: the message is enough
    ({"action": "what"}, ""),
    (None, ""),
])
def test_each_hint_renders_as_a_command_in_the_cli(details, rendered):
    from jupyter_llm.display import render_hint

    assert render_hint(details, "cli") == rendered


def test_a_model_that_must_be_loaded_first_says_the_load_command(tiny_registry, capsys,
                                                                  monkeypatch):
    monkeypatch.setenv("JUPYTER_LLM_AUTO_LOAD", "0")
    code, _, err = run(capsys, "prompt", "-m", "tiny-chat", "hi")
    assert code == 1
    assert err == ("jupyter llm: error: Model 'tiny-chat' is not loaded; load it first. "
                   "Run: jupyter llm load tiny-chat\n")


def test_pull_shows_progress_and_rm_deletes(tiny_gguf, http_server, tmp_path, monkeypatch, capsys):
    from jupyter_llm.testing.tiny_gguf import sha256_file

    http_server.serve("/tiny.gguf", file=tiny_gguf)
    registry = tmp_path / "r.json"
    registry.write_text(json.dumps({"models": [{
        "id": "pulled", "name": "p", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
        "url": http_server.url("/tiny.gguf"), "sha256": sha256_file(tiny_gguf),
        "size_bytes": tiny_gguf.stat().st_size}]}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(registry))
    code, out, err = run(capsys, "pull", "pulled")
    assert code == 0 and "Installed pulled" in out
    spec = Registry.load().get("pulled")
    assert str(Store().dir_for(spec) / Store().manifest(spec)["file"]) in out  # the full path
    assert "100.0%" in err and "done" in err
    spec = Registry.load().get("pulled")
    assert Store().is_installed(spec)
    code, out, _ = run(capsys, "rm", "pulled")
    assert code == 0 and "Removed pulled" in out and not Store().is_installed(spec)


def test_usage_errors_are_one_line_with_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["prompt", "--bogus"])
    assert info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_jupyter_subcommand_is_installed():
    proc = subprocess.run(["jupyter", "llm", "--version"], capture_output=True, text=True,
                          timeout=60, env={**__import__("os").environ,
                                           "PATH": f"{sys.prefix}/bin:" + __import__("os").environ["PATH"]})
    assert proc.returncode == 0 and "jupyter-llm" in proc.stdout


def test_local_client_history_records_prompts(tiny_registry, capsys):
    from jupyter_llm.client import connect

    assert main(["prompt", "-m", "tiny", "-o", "max_tokens=3", "first"]) == 0
    assert main(["prompt", "-m", "tiny", "-o", "max_tokens=3", "--no-log", "secret"]) == 0
    entries = connect().history(10)
    assert [e["model"] for e in entries] == ["tiny-chat"]
    assert "first" in json.dumps(entries[0]) and "secret" not in json.dumps(entries)


def test_ctrl_c_during_pull_says_how_to_resume(tiny_gguf, http_server, tmp_path, monkeypatch):
    import os
    import signal
    import time

    from jupyter_llm.testing.tiny_gguf import sha256_file

    http_server.serve("/slow.gguf", file=tiny_gguf, chunk_size=4096, chunk_delay=0.05)
    registry = tmp_path / "r.json"
    registry.write_text(json.dumps({"models": [{
        "id": "slow", "name": "s", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
        "url": http_server.url("/slow.gguf"), "sha256": sha256_file(tiny_gguf),
        "size_bytes": tiny_gguf.stat().st_size}]}))
    env = {**os.environ, "JUPYTER_LLM_REGISTRY_PATH": str(registry)}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_llm.cli", "pull", "slow"],
                            stderr=subprocess.PIPE, text=True, env=env)
    part = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        part = next(iter(Store().downloads_root.glob("*/*.part")), None)
        if part is not None:  # the transfer runs (bytes reach the file in 1 MiB writes)
            time.sleep(0.3)
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert part is not None and part.exists()  # kept for the resume


def test_collections_lists_shows_and_sets_the_tutoring_guard(minilm, capsys):
    assert main(["collections"]) == 0
    assert "No collections yet: `jupyter llm ingest NAME FOLDER`" in capsys.readouterr().out
    assert main(["collections", "--tutoring-guard", "on"]) == 2  # which collection?
    assert "name the collection" in capsys.readouterr().out
    from jupyter_llm.client import connect

    connect().create_collection("course")
    assert main(["collections", "course", "--tutoring-guard", "on"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("course ") and "tutoring guard on" in out
    assert main(["collections", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["tutoring_guard"]) for c in listed] == [("course", True)]
