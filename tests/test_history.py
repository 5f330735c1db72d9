"""The request history: SQLite in WAL mode, safe for several writing processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pytest

from jupyter_llm import paths
from jupyter_llm.cli import main
from jupyter_llm.errors import InvalidRequest
from jupyter_llm.history import History


def test_record_and_read_back_newest_first(tmp_path):
    history = History(tmp_path / "h.sqlite")
    first = history.record(model="a", face="api", messages=[{"role": "user", "content": "hi"}],
                           response="hello", options={"temperature": 0}, prompt_tokens=3,
                           completion_tokens=2, ttft_s=0.1, duration_s=0.5, created_at=100.0)
    second = history.record(model="b", face="magic", prompt="raw", response="text",
                            citations=[{"source": "a.md"}], collection="course",
                            created_at=200.0)
    assert second > first
    entries = history.entries(10)
    assert [e["model"] for e in entries] == ["b", "a"]
    assert entries[1]["messages"] == [{"role": "user", "content": "hi"}]
    assert entries[1]["options"] == {"temperature": 0}
    assert entries[0]["citations"] == [{"source": "a.md"}] and entries[0]["collection"] == "course"
    assert [e["model"] for e in history.entries(10, model="a")] == ["a"]
    assert len(history.entries(1)) == 1
    with pytest.raises(InvalidRequest):
        history.entries(0)


def test_the_file_is_in_wal_mode_with_a_busy_timeout(tmp_path):
    history = History(tmp_path / "h.sqlite")
    history.record(model="m")
    conn = sqlite3.connect(history.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_default_path_is_in_the_data_dir():
    assert History().path == paths.history_path()
    assert History().entries() == []  # no file yet: empty, and nothing created
    assert not paths.history_path().exists()


def test_stats_per_model(tmp_path):
    history = History(tmp_path / "h.sqlite")
    history.record(model="a", prompt_tokens=10, completion_tokens=20, ttft_s=0.5, duration_s=2.5)
    history.record(model="a", prompt_tokens=5, completion_tokens=10, ttft_s=0.1, duration_s=1.1)
    history.record(model="b", error="BackendError: down")
    stats = history.stats()
    assert stats["requests"] == 3 and stats["errors"] == 1
    a = stats["models"]["a"]
    assert (a["requests"], a["prompt_tokens"], a["completion_tokens"]) == (2, 15, 30)
    assert a["mean_ttft_s"] == pytest.approx(0.3)
    assert a["mean_tokens_per_s"] == pytest.approx(10.0)  # 20/2.0 and 10/1.0
    assert stats["models"]["b"]["errors"] == 1 and stats["models"]["b"]["mean_tokens_per_s"] is None


def _writer(path: str, worker: int, count: int, start, errors) -> None:
    history = History(path)
    start.wait()
    try:
        for i in range(count):
            history.record(model=f"w{worker}", prompt=f"{worker}-{i}", response="x" * 200)
    except Exception as e:  # reported to the parent
        errors.put(f"{type(e).__name__}: {e}")


def test_four_processes_writing_at_once_never_see_a_locked_database(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    start, errors = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, w, 150, start, errors)) for w in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    assert all(p.exitcode == 0 for p in procs)
    stats = History(path).stats()
    assert stats["requests"] == 600
    assert {m: s["requests"] for m, s in stats["models"].items()} == {
        "w0": 150, "w1": 150, "w2": 150, "w3": 150}


def test_cli_history_json_and_table(capsys):
    history = History()
    history.record(model="tiny", face="cli", prompt="What is 2+2?", response="4",
                   prompt_tokens=5, completion_tokens=1, created_at=1.0)
    history.record(model="tiny", face="api", messages=[{"role": "user", "content": "Hi"}],
                   response="Hello", created_at=2.0)
    assert main(["history", "--json", "-n", "1"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["response"] for e in entries] == ["Hello"]
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert "What is 2+2?" in out and "5→1 tok" in out
    assert main(["history", "--stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"]["tiny"]["requests"] == 2


@pytest.mark.parametrize("jp_server_config", [{"ServerApp": {
    "jpserver_extensions": {"jupyter_llm": True}}, "JupyterLLM": {"history": False}}])
async def test_history_can_be_turned_off_for_the_server(tiny_registry, jp_server_config,
                                                        jp_fetch):
    body = {"messages": [{"role": "user", "content": "x"}], "stream": False,
            "options": {"max_tokens": 2}}
    r = await jp_fetch("llm", "api", "chat", method="POST", body=json.dumps(body))
    assert r.code == 200
    r = await jp_fetch("llm", "api", "history")
    assert json.loads(r.body) == {"entries": []}


class _FullDisk(sqlite3.Connection):
    """A real SQLite connection on a disk with no space left: every statement that needs
    space fails as SQLite fails there (reads too, once the -shm file cannot be made)."""

    def execute(self, sql, *args):  # noqa: D102
        raise sqlite3.OperationalError("database or disk is full")


def test_a_full_disk_is_one_clear_line_in_the_cli_never_a_sqlite_traceback(monkeypatch, capsys):
    history = History(paths.history_path())
    history.record(model="m", face="cli", prompt="before", response="ok")
    real_connect = sqlite3.connect
    with monkeypatch.context() as patched:
        patched.setattr(sqlite3, "connect",
                        lambda *a, **kw: real_connect(*a, **{**kw, "factory": _FullDisk}))
        for argv in (["history"], ["history", "--json"], ["history", "--export", "h.csv"]):
            assert main(argv) == 1, argv
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "is full" in err, err
            assert "JUPYTER_LLM_HISTORY=0" in err and "Traceback" not in err
            assert "sqlite3" not in err and "OperationalError" not in err
        with pytest.raises(Exception, match="is full") as info:
            History(paths.history_path()).record(model="m", face="cli", prompt="p", response="r")
        assert info.value.status == 507
    assert [e["prompt"] for e in History(paths.history_path()).entries()] == ["before"]
