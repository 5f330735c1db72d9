"""``jupyter llm ingest | search | ask`` end to end: in-process, and against a running
Jupyter server through ``JUPYTER_LLM_URL`` (the same commands, the same Client)."""

from __future__ import annotations

import asyncio
import json

import pytest

from jupyter_llm.cli import main
from tests.fixtures.retrieval import COURSE, copy_course_subset

FILES = ["git-novice/episodes/06-ignore.md", "git-novice/episodes/11-licensing.md"]


@pytest.fixture
def small_course(course_root, tmp_path, minilm):
    return copy_course_subset(course_root, tmp_path / "course", FILES)


def test_ingest_search_and_batch_search_on_a_named_collection(small_course, tmp_path, capsys,
                                                              llm_home):
    assert main(["ingest", "course", str(small_course), "--exclude", "*licensing*"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and str(llm_home / "collections" / "course.sqlite") in out
    assert main(["ingest", "course", str(small_course), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["added"]) == 1 and len(report["unchanged"]) == 1

    assert main(["search", "course", "ignore files with .gitignore", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[1] ") and "06-ignore.md" in out

    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"id": "a", "question": "Which license should I use?"}) + "\n"
                       + json.dumps({"id": "b", "question": "How do I bake bread?"}) + "\n")
    assert main(["search", "course", "--queries", str(queries), "-k", "3", "--json",
                 "--mode", "dense"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["id"] for x in lines] == ["a", "b"]
    assert lines[0]["supported"] is True and lines[1]["supported"] is False
    assert set(lines[0]["results"][0]) == {"source", "text", "score", "heading", "start_line",
                                           "end_line"}
    assert lines[0]["results"][0]["source"].endswith("11-licensing.md")
    assert len(lines[0]["results"]) == 3


def test_ask_without_a_model_prints_passages_and_sources(small_course, tmp_path, capsys):
    coll = tmp_path / "c.sqlite"
    assert main(["ingest", str(coll), str(small_course), "--vector-backend", "vss"]) == 0
    capsys.readouterr()
    assert main(["ask", str(coll), "What does a .gitignore file do?", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Retrieval only") and "Sources:" in out and "06-ignore.md" in out
    assert main(["ask", str(coll), "What is the capital of France?", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["supported"] is False and "do not cover" in data["answer"]


def test_errors_are_one_clear_line(tmp_path, capsys, minilm):
    assert main(["search", "missing", "anything"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "jupyter llm ingest missing" in err
    assert main(["ingest", str(tmp_path / "x.sqlite"), str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_text("# A\n\nalpha\n")
    assert main(["ingest", str(tmp_path / "y.sqlite"), str(tmp_path / "d")]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "y.sqlite"), "--queries", str(bad)]) == 1
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_a_registry_gguf_embedder_and_chat_model_run_in_the_host(tiny_registry, tmp_path,
                                                                  capsys, llm_home):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "loops.md").write_text("# Loops\n\nA for loop repeats a block for each item.\n")
    assert main(["ingest", "notes", str(folder), "--embedder", "tiny-embed"]) == 0
    assert "1 added" in capsys.readouterr().out
    assert main(["search", "notes", "for loop", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["results"][0]["source"].endswith("loops.md")
    assert main(["ingest", "notes", str(folder), "--embedder", "all-MiniLM-L6-v2"]) == 1
    assert "built with the embedding model 'tiny-embed'" in capsys.readouterr().err
    from jupyter_llm.retrieval import Collection

    with Collection.open(llm_home / "collections" / "notes.sqlite") as coll:
        coll.set_support_threshold(-1.0)  # covered: the model answers
    assert main(["ask", "notes", "What does a for loop do?", "-m", "tiny-chat", "-k", "1",
                 "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"] == "tiny-chat" and not answer["retrieval_only"] and answer["answer"]
    assert answer["citations"][0]["source"].endswith("loops.md")
    # streamed: the tiny model's random text cites nothing, so the note and a quote follow
    assert main(["ask", "notes", "What does a for loop do?", "-m", "tiny-chat", "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "; quoted sentences of the passages are shown instead.)\n\nFrom the course " \
           "materials:\n\n- “A for loop repeats a block for each item.” [1]" in out
    assert main(["ask", "notes", "What does a for loop do?", "-m", "nope"]) == 1
    assert "Unknown model 'nope'" in capsys.readouterr().err
    # without -m the default chat model answers; --retrieval-only skips it
    assert main(["ask", "notes", "What does a for loop do?", "-k", "1", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"] == "tiny-chat" and not answer["retrieval_only"]
    assert main(["ask", "notes", "What does a for loop do?", "-k", "1", "--retrieval-only",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retrieval_only"] is True


async def test_the_commands_work_against_a_running_server(tiny_registry, jp_root_dir, llm_url,
                                                          llm_token, monkeypatch, capsys, minilm,
                                                          tmp_path):
    """With JUPYTER_LLM_URL set, ingest, search, ask and history go to the server: sources are
    relative to its root_dir, a .sqlite path is refused (names only), and it records the user."""
    course = copy_course_subset(COURSE, jp_root_dir / "course", FILES)
    monkeypatch.setenv("JUPYTER_LLM_URL", llm_url)
    monkeypatch.setenv("JUPYTER_LLM_TOKEN", llm_token)

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(argv))  # the server runs on this loop
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await cli("ingest", "course", str(course), "--chunk-size", "120",
                               "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert sorted(summary["added"]) == ["course/" + f for f in FILES]  # relative to root_dir
    code, out, _ = await cli("search", "course", "ignore files with .gitignore", "-k", "2",
                             "--json")
    found = json.loads(out)
    assert code == 0 and found["results"][0]["source"] == "course/" + FILES[0]
    code, out, _ = await cli("search", "course", "ignore files", "--threshold", "0.99",
                             "--json")
    assert json.loads(out)["supported"] is False and json.loads(out)["threshold"] == 0.99

    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"id": "a", "question": "Which license should I use?"}) + "\n"
                       + json.dumps({"id": "b", "question": "How do I bake bread?"}) + "\n")
    code, out, _ = await cli("search", "course", "--queries", str(queries), "-k", "1",
                             "--mode", "dense")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["id"] for x in lines] == ["a", "b"]
    assert lines[0]["supported"] is True and lines[1]["supported"] is False
    assert lines[0]["results"][0]["source"] == "course/" + FILES[1]

    code, out, _ = await cli("ask", "course", "What does a .gitignore file do?", "-k", "1",
                             "--retrieval-only")
    assert code == 0 and out.startswith("Retrieval only") and "course/" + FILES[0] in out
    code, out, err = await cli("ask", "course", "What does a .gitignore file do?", "-m",
                               "tiny-chat", "-k", "1", "--threshold", "-1", "--json")
    answer = json.loads(out)
    assert code == 0 and answer["model"] == "tiny-chat" and not answer["retrieval_only"]

    code, out, _ = await cli("history", "--model", "tiny-chat", "--since", "2000-01-01",
                             "--json")
    entries = json.loads(out)
    assert code == 0 and len(entries) == 1 and entries[0]["face"] == "api"
    code, out, _ = await cli("history", "--until", "2000-01-01T00:00", "--json")
    assert code == 0 and json.loads(out) == []
    code, _, err = await cli("history", "--since", "soon")
    assert code == 1 and "--since must be a date" in err
    user = entries[0]["user"]
    assert user  # recorded by the server for its authenticated user
    code, out, _ = await cli("history", "--stats", "--user", user, "--json")
    assert json.loads(out)["models"]["tiny-chat"]["requests"] == 1
    code, out, _ = await cli("history", "--stats", "--by", "user", "--json")
    assert json.loads(out)["users"][user]["requests"] == 1
    code, out, err = await cli("history", "--model", "tiny-chat", "--export",
                               str(tmp_path / "h.csv"))
    assert code == 0, err
    assert (tmp_path / "h.csv").read_text().count("tiny-chat") == 1

    code, _, err = await cli("search", str(tmp_path / "x.sqlite"), "anything")
    assert code == 1 and "not a valid collection name" in err  # the server takes names only
    code, _, err = await cli("search", "missing", "anything")
    assert code == 1 and err.rstrip().endswith("Run: jupyter llm ingest missing PATH...")
