"""The SQLite layer: one driver choice, WAL + busy_timeout, and both vector backends."""

from __future__ import annotations

import numpy as np
import pytest

from jupyter_llm.errors import InvalidRequest
from jupyter_llm.retrieval import db as dbmod
from jupyter_llm.retrieval.vectors import BACKENDS, open_index


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_connect_uses_a_driver_that_loads_extensions_with_wal_and_busy_timeout(tmp_path):
    conn = dbmod.connect(tmp_path / "a.sqlite")
    assert conn.driver in ("sqlite3", "pysqlite3", "apsw")
    assert conn.scalar("PRAGMA journal_mode") == "wal"
    assert conn.scalar("PRAGMA busy_timeout") == dbmod.BUSY_TIMEOUT_MS
    assert hasattr(conn.raw, "enable_load_extension")
    conn.close()


def test_apsw_driver_works_when_forced(tmp_path, monkeypatch):
    pytest.importorskip("apsw")
    monkeypatch.setenv("JUPYTER_LLM_SQLITE_DRIVER", "apsw")
    monkeypatch.setattr(dbmod, "_DRIVER", None)
    conn = dbmod.connect(tmp_path / "b.sqlite")
    try:
        assert conn.driver == "apsw"
        conn.execute("CREATE TABLE t (a)")
        with conn.transaction():
            conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        assert conn.execute("SELECT a FROM t ORDER BY a") == [(1,), (2,)]
        index = open_index("vec", conn, 4)
        with conn.transaction():
            index.create()
            index.add([1, 2], unit_rows(2, 4))
        assert index.count() == 2
    finally:
        conn.close()
        monkeypatch.setattr(dbmod, "_DRIVER", None)


def test_transaction_rolls_back_on_error(tmp_path):
    conn = dbmod.connect(tmp_path / "c.sqlite")
    conn.execute("CREATE TABLE t (a)")
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert conn.scalar("SELECT count(*) FROM t") == 0
    conn.close()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_vector_backend_finds_exact_neighbours_and_forgets_deleted(tmp_path, backend):
    conn = dbmod.connect(tmp_path / f"{backend}.sqlite")
    index = open_index(backend, conn, 16)
    x = unit_rows(200, 16)
    with conn.transaction():
        index.create()
        index.add(range(1, 201), x)
    q = x[7] + 0.05 * unit_rows(1, 16, seed=1)[0]
    q /= np.linalg.norm(q)
    expected = np.argsort(-(x @ q))[:5] + 1
    hits = index.search(q, 5)
    assert [h[0] for h in hits] == list(expected)
    assert hits[0][1] == pytest.approx(float(x[7] @ q), abs=1e-4)  # cosine similarity
    within = [3, 50, 120]
    sub = index.search(q, 2, within=within)
    best = sorted(within, key=lambda i: -float(x[i - 1] @ q))[:2]
    assert [h[0] for h in sub] == best
    with conn.transaction():
        index.delete([8])
    assert 8 not in [h[0] for h in index.search(q, 5)]
    assert index.count() == 199
    conn.close()


def test_unknown_backend_is_a_clear_error(tmp_path):
    conn = dbmod.connect(tmp_path / "d.sqlite")
    with pytest.raises(InvalidRequest, match="vec, vss"):
        open_index("faiss", conn, 4)
    conn.close()
