"""The request history: one SQLite file (WAL, ``busy_timeout``) that several processes append to.

    history = History()                      # paths.history_path()
    history.record(model="m", face="api", prompt="hi", response="hello", duration_s=0.2)
    history.entries(limit=20)                # newest first
    history.stats()                          # per model: counts, tokens, mean ttft, tokens/s
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import paths
from .errors import Busy, InsufficientStorage, InvalidRequest, JupyterLLMError
from .redact import redact, redact_obj

__all__ = ["History", "BUSY_TIMEOUT_MS"]

BUSY_TIMEOUT_MS = 30_000
MAX_LIMIT = 100_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    model TEXT,
    face TEXT,
    user TEXT,
    messages TEXT,
    prompt TEXT,
    response TEXT,
    options TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    ttft_s REAL,
    duration_s REAL,
    error TEXT,
    collection TEXT,
    citations TEXT
);
CREATE INDEX IF NOT EXISTS requests_model ON requests (model, created_at);
"""
_JSON_FIELDS = ("messages", "options", "citations")
_COLUMNS = ("id", "created_at", "model", "face", "user", "messages", "prompt", "response",
            "options", "prompt_tokens", "completion_tokens", "ttft_s", "duration_s", "error",
            "collection", "citations")


class History:
    """An append-only log of requests in SQLite, safe for concurrent writers."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.history_path()
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<History {str(self.path)!r}>"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.OperationalError) as e:
            raise InsufficientStorage(
                f"Cannot open the history file {self.path}: {e}. Make the data directory "
                "writable (JUPYTER_LLM_HOME) or turn history off (JUPYTER_LLM_HISTORY=0).",
                details={"path": str(self.path)}) from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self._ready:
                self._init(conn)
            yield conn
        except sqlite3.DatabaseError as e:  # a full disk, a read-only or corrupt file
            raise _storage_error(e, self.path) from e
        finally:
            conn.close()

    def _init(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if self._ready:
                return
            # Switching to WAL needs a moment of exclusive access; busy_timeout covers the wait,
            # and the retry covers the rare SQLITE_BUSY that skips the busy handler.
            for attempt in range(50):
                try:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("PRAGMA synchronous = NORMAL")
                    conn.executescript(_SCHEMA)
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) and "busy" not in str(e) or attempt == 49:
                        raise
                    time.sleep(0.02 * (attempt + 1))
            self._ready = True

    def record(self, *, model: str | None = None, face: str | None = None,
               user: str | None = None, messages: list[dict[str, Any]] | None = None,
               prompt: str | None = None, response: str | None = None,
               options: dict[str, Any] | None = None, prompt_tokens: int | None = None,
               completion_tokens: int | None = None, ttft_s: float | None = None,
               duration_s: float | None = None, error: str | None = None,
               created_at: float | None = None, collection: str | None = None,
               citations: list[Any] | None = None) -> int:
        """Append one request (every text redacted of secrets) and return its id."""
        values = {
            "created_at": time.time() if created_at is None else float(created_at),
            "model": model, "face": face, "user": user,
            "messages": _dumps(redact_obj(messages)), "prompt": redact(prompt),
            "response": redact(response), "options": _dumps(redact_obj(options)),
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "ttft_s": ttft_s, "duration_s": duration_s, "error": redact(error),
            "collection": collection, "citations": _dumps(redact_obj(citations)),
        }
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(f"INSERT INTO requests ({names}) VALUES ({marks})",
                                   list(values.values()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return int(cur.lastrowid or 0)

    def entries(self, limit: int = 20, model: str | None = None) -> list[dict[str, Any]]:
        """The most recent entries (optionally of one model), newest first."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}.",
                                 details={"field": "limit"})
        if not self.path.exists():
            return []
        where, args = ("WHERE model = ?", [model]) if model else ("", [])
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM requests {where} "
                "ORDER BY created_at DESC, id DESC LIMIT ?", [*args, limit]).fetchall()
        return [_row(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Per model and in total: request and error counts, tokens, mean ttft and tokens/s."""
        if not self.path.exists():
            return {"requests": 0, "errors": 0, "models": {}}
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT model, COUNT(*), SUM(error IS NOT NULL), COALESCE(SUM(prompt_tokens), 0),"
                " COALESCE(SUM(completion_tokens), 0), AVG(ttft_s),"
                " AVG(CASE WHEN duration_s - COALESCE(ttft_s, 0) > 0 AND completion_tokens > 0"
                "     THEN completion_tokens / (duration_s - COALESCE(ttft_s, 0)) END)"
                " FROM requests GROUP BY model ORDER BY model").fetchall()
        models = {
            str(model): {"requests": n, "errors": int(errors or 0), "prompt_tokens": pt,
                         "completion_tokens": ct, "mean_ttft_s": ttft, "mean_tokens_per_s": tps}
            for model, n, errors, pt, ct, ttft, tps in rows
        }
        return {"requests": sum(m["requests"] for m in models.values()),
                "errors": sum(m["errors"] for m in models.values()), "models": models}

    def clear(self) -> int:
        """Delete every entry; returns how many were deleted."""
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return conn.execute("DELETE FROM requests").rowcount


def _storage_error(exc: sqlite3.DatabaseError, path: Path) -> JupyterLLMError:
    """A clear error for a SQLite failure of the history file (never a raw traceback)."""
    text = str(exc).lower()
    off = "or turn history off (JUPYTER_LLM_HISTORY=0)"
    if "full" in text or "disk i/o" in text:
        return InsufficientStorage(f"The disk holding the history file {path} is full; free "
                                   f"some space {off}.", details={"path": str(path)})
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return InsufficientStorage(f"The history file {path} cannot be written; make the data "
                                   f"directory writable (JUPYTER_LLM_HOME) {off}.",
                                   details={"path": str(path)})
    if "locked" in text or "busy" in text:
        return Busy(f"The history file {path} is locked by another process; retry shortly.",
                    retry_after=1, details={"path": str(path)})
    return JupyterLLMError(f"The history file {path} is unreadable ({exc}); move it away to "
                           f"start a new one, {off}.", details={"path": str(path)})


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    entry = dict(zip(_COLUMNS, row, strict=True))
    for name in _JSON_FIELDS:
        if entry[name] is not None:
            entry[name] = json.loads(entry[name])
    return entry
