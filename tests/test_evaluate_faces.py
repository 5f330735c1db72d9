"""``jupyter llm eval``, ``%llm eval`` and ``Client.evaluate``: the evaluation harness through
every face, in-process and against a real server, with real SQLite and the tiny GGUF models;
a malformed question file names its line, and Ctrl-C (a real SIGINT) keeps what was measured."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_llm.cli import main
from jupyter_llm.client.local import LocalClient
from jupyter_llm.client.remote import RemoteClient
from jupyter_llm.retrieval.evaluate import RETRIEVAL_ONLY_NAME

NOTES = {
    "loops.md": "# Loops\n\nA for loop repeats a block of code for each item of a list.\n",
    "git.md": "# Undoing\n\n`git revert HEAD` makes a new commit that undoes the last one.\n",
    "shell.md": "# Listing\n\nThe `ls` command lists the files in the current directory.\n",
}
QUESTIONS = [
    {"question": "How do I repeat code for each item?", "sources": ["loops.md"],
     "contains": ["for loop"]},
    {"question": "How can I undo my last commit?", "sources": ["notes/git.md"],
     "contains": ["git revert"]},
    {"question": "Which command shows the files in a folder?", "sources": ["shell.md"],
     "contains": ["ls"]},
    {"question": "What is the best sourdough recipe?", "unanswerable": True},
]


def write_questions(path: Path, questions=QUESTIONS, repeat: int = 1) -> Path:
    lines = ["# questions over the notes"]
    lines += [json.dumps(q) for _ in range(repeat) for q in questions]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def notes(tmp_path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def collection(tiny_registry, notes, tmp_path) -> Path:
    """A collection file of the notes, built with the tiny GGUF embedder (quality is no
    concern here) and a support threshold that lets every question through."""
    client = LocalClient()
    try:
        path = str(tmp_path / "notes.sqlite")
        client.create_collection(path, embedding_model="tiny-embed")
        client.ingest(path, [str(notes)])
        client.collections_service.open(path).set_support_threshold(0.0)
    finally:
        client.close()
    return tmp_path / "notes.sqlite"


def test_the_client_measures_models_side_by_side_and_writes_every_answer(collection, tmp_path):
    client = LocalClient()
    steps = []
    try:
        report = client.evaluate(str(collection), write_questions(tmp_path / "q.jsonl"),
                                 [None, "tiny-chat"], k=3, answers=tmp_path / "a.jsonl",
                                 progress=steps.append, max_tokens=6, temperature=0)
    finally:
        client.close()
    assert [m.model for m in report.models] == [RETRIEVAL_ONLY_NAME, "tiny-chat"]
    assert [s.done for s in steps] == list(range(1, 9)) and steps[-1].total == 8
    retrieval, chat = (m.metrics for m in report.models)
    assert retrieval["questions"] == chat["questions"] == 4
    assert retrieval["source_hit"] == chat["source_hit"]  # the same search for both
    assert retrieval["cites_valid"] is None and chat["cites_valid"] is not None
    assert chat["answer_contains"] is not None and chat["p95_s"] >= chat["p50_s"] > 0
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and [x["line"] for x in lines[:4]] == [2, 3, 4, 5]
    assert {x["model"] for x in lines} == {RETRIEVAL_ONLY_NAME, "tiny-chat"}
    assert all(not r["source"].startswith("/") for x in lines for r in x["retrieved"])
    text = report.to_text()
    assert re.search(r"metric\s+retrieval-only\s+tiny-chat", text)
    assert "source hit@3" in text and "p95 s/question" in text


def test_cli_eval_prints_the_table_and_writes_the_answers(collection, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    questions = write_questions(tmp_path / "course-q.jsonl")
    assert main(["eval", str(collection), str(questions), "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "contains@2" in out and RETRIEVAL_ONLY_NAME in out and "tiny-chat" not in out
    assert "Answers: course-q.answers.jsonl" in out  # the default, in the working directory
    assert len((tmp_path / "course-q.answers.jsonl").read_text().splitlines()) == 4
    assert main(["eval", str(collection), str(questions), "-m", "tiny-chat", "-o",
                 "max_tokens=4", "--json", "--out", str(tmp_path / "x.jsonl")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in report["models"]] == ["tiny-chat"]
    assert report["done"] == report["total"] == 4 and not report["interrupted"]
    assert report["models"][0]["metrics"]["cites_valid"] is not None


@pytest.mark.parametrize(("line", "problem"), [
    ('{"question": "x", "contains": ["a"]', "not valid JSON"),
    ('{"question": "x", "expected": ["a"]}', "unknown field 'expected'"),
    ('{"question": "x", "unanswerable": true, "sources": ["a.md"]}', "cannot list 'sources'"),
])
def test_cli_eval_names_the_bad_line_of_a_question_file(tmp_path, capsys, line, problem):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QUESTIONS[0]) + "\n\n" + line + "\n")
    assert main(["eval", "whatever", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"jupyter llm: error: {bad} line 3: ") and problem in err
    assert len(err.splitlines()) == 1


def test_ctrl_c_in_a_real_cli_run_keeps_and_prints_what_was_measured(collection, tmp_path):
    questions = write_questions(tmp_path / "many.jsonl", repeat=300)  # 1200 questions
    answers = tmp_path / "answers.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_llm.cli", "eval", str(collection), str(questions),
         "--out", str(answers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if answers.exists() and answers.read_text().count("\n") >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    done = int(re.search(r"Interrupted: measured (\d+) of 1200", out).group(1))
    assert 5 <= done < 1200
    assert f"Answers: {answers}" in out and "source hit@5" in out
    lines = answers.read_text().splitlines()
    assert len(lines) == done and all(json.loads(x)["question"] for x in lines)


async def test_eval_runs_on_the_server_through_the_remote_client_and_cli(
        minilm, tiny_registry, jp_root_dir, llm_url, llm_token, monkeypatch, capsys, tmp_path):
    folder = jp_root_dir / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    remote = RemoteClient(llm_url, llm_token)
    try:
        await asyncio.to_thread(remote.create_collection, "notes",
                                embedding_model="sentence-transformers/all-MiniLM-L6-v2")
        await asyncio.to_thread(remote.ingest, "notes", ["notes"])
        questions = write_questions(tmp_path / "q.jsonl")
        report = await asyncio.to_thread(
            remote.evaluate, "notes", questions, [None, "tiny-chat"], k=3,
            answers=tmp_path / "a.jsonl", max_tokens=4, temperature=0)
    finally:
        remote.close()
    assert [m.model for m in report.models] == [RETRIEVAL_ONLY_NAME, "tiny-chat"]
    assert report.done == report.total == 8 and not report.interrupted
    retrieval = report.models[0]
    assert retrieval.metrics["source_hit"] == 1.0 and retrieval.metrics["uncovered_flagged"] == 1.0
    assert [i.line for i in retrieval.items] == [2, 3, 4, 5]  # lines of the caller's file
    sources = {r["source"] for i in retrieval.items for r in i.retrieved}
    assert sources <= {"notes/" + n for n in NOTES}  # relative to the server's root
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 8

    monkeypatch.setenv("JUPYTER_LLM_URL", llm_url)
    monkeypatch.setenv("JUPYTER_LLM_TOKEN", llm_token)
    code = await asyncio.to_thread(main, ["eval", "notes", str(questions), "--json", "--out",
                                          str(tmp_path / "b.jsonl")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["models"][0]["metrics"]["source_hit"] == 1.0
    code = await asyncio.to_thread(main, ["eval", "missing", str(questions)])
    assert code == 1 and "No collection 'missing'" in capsys.readouterr().err


def test_llm_eval_magic_shows_the_table(collection, tmp_path, monkeypatch):
    from IPython.testing.globalipapp import get_ipython, start_ipython
    from IPython.utils.capture import capture_output

    from jupyter_llm.magics import magics_of
    from jupyter_llm.magics.session import Session

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "jupyter_llm")
    client = LocalClient()
    magics_of(ip).session = Session(client_=client, live=True)
    monkeypatch.chdir(tmp_path)
    questions = write_questions(tmp_path / "q.jsonl")
    try:
        with capture_output() as captured:
            result = ip.run_cell(f"%llm eval {collection} {questions} -k 2")
    finally:
        client.close()
    assert result.error_in_exec is None
    table = captured.outputs[-1].data["text/markdown"]
    assert "| metric | retrieval-only |" in table and "| source hit@2 |" in table
    assert "q.answers.jsonl" in table
    assert len((tmp_path / "q.answers.jsonl").read_text().splitlines()) == 4
