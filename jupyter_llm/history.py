"""The request history: one SQLite file (WAL, ``busy_timeout``) that several processes append to.

    history = History()                      # paths.history_path()
    history.record(model="m", face="api", prompt="hi", response="hello", duration_s=0.2)
    history.entries(limit=20)                # newest first
    history.stats()                          # per model: counts, tokens, mean ttft, tokens/s
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import sqlite3
import time
from pathlib import Path
from typing import IO, Any

from . import paths
from .errors import InvalidRequest, NotFound
from .redact import redact, redact_obj
from .sqlite_file import BUSY_TIMEOUT_MS, SQLiteFile

__all__ = ["History", "BUSY_TIMEOUT_MS", "parse_time"]

MAX_LIMIT = 1_000_000
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
    citations TEXT,
    guard TEXT,
    rating INTEGER,
    score REAL,
    comment TEXT,
    feedback_at REAL,
    request_id TEXT,
    cached_tokens INTEGER
);
CREATE INDEX IF NOT EXISTS requests_model ON requests (model, created_at);
CREATE INDEX IF NOT EXISTS requests_user ON requests (user, created_at);
CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);
"""
# Columns added after the first release: (name, type) added to older files on open.
_ADDED_COLUMNS = (("guard", "TEXT"), ("rating", "INTEGER"), ("score", "REAL"),
                  ("comment", "TEXT"), ("feedback_at", "REAL"), ("request_id", "TEXT"),
                  ("cached_tokens", "INTEGER"))
_JSON_FIELDS = ("messages", "options", "citations")
_COLUMNS = ("id", "created_at", "model", "face", "user", "messages", "prompt", "response",
            "options", "prompt_tokens", "completion_tokens", "ttft_s", "duration_s", "error",
            "collection", "citations", "guard", "rating", "score", "comment", "feedback_at",
            "request_id", "cached_tokens")


class History(SQLiteFile):
    """An append-only log of requests in SQLite, safe for concurrent writers."""

    what = "history file"
    off = " or turn history off (JUPYTER_LLM_HISTORY=0)"

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(path if path is not None else paths.history_path())

    def _setup(self, conn: sqlite3.Connection) -> None:
        have = {r[1] for r in conn.execute("PRAGMA table_info(requests)")}
        for name, kind in _ADDED_COLUMNS if have else ():
            if name not in have:
                conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {kind}")
        conn.executescript(_SCHEMA)

    def record(self, *, model: str | None = None, face: str | None = None,
               user: str | None = None, messages: list[dict[str, Any]] | None = None,
               prompt: str | None = None, response: str | None = None,
               options: dict[str, Any] | None = None, prompt_tokens: int | None = None,
               completion_tokens: int | None = None, ttft_s: float | None = None,
               duration_s: float | None = None, error: str | None = None,
               created_at: float | None = None, collection: str | None = None,
               citations: list[Any] | None = None, guard: str | None = None,
               request_id: str | None = None, cached_tokens: int | None = None) -> int:
        """Append one request (every text redacted of secrets) and return its id."""
        values = {
            "created_at": time.time() if created_at is None else float(created_at),
            "model": model, "face": face, "user": user,
            "messages": _dumps(redact_obj(messages)), "prompt": redact(prompt),
            "response": redact(response), "options": _dumps(redact_obj(options)),
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "ttft_s": ttft_s, "duration_s": duration_s, "error": redact(error),
            "collection": collection, "citations": _dumps(redact_obj(citations)),
            "guard": guard, "request_id": request_id, "cached_tokens": cached_tokens,
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

    def entries(self, limit: int = 20, model: str | None = None, *, user: str | None = None,
                collection: str | None = None, since: float | None = None,
                until: float | None = None) -> list[dict[str, Any]]:
        """The most recent entries, newest first, filtered by model, user, collection and a
        ``[since, until)`` time range (epoch seconds)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}.",
                                 details={"field": "limit"})
        if not self.path.exists():
            return []
        where, args = _filters(model=model, user=user, collection=collection, since=since,
                               until=until)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM requests {where} "
                "ORDER BY created_at DESC, id DESC LIMIT ?", [*args, limit]).fetchall()
        return [_row(r) for r in rows]

    def get(self, key: int | str) -> dict[str, Any] | None:
        """One entry by its id, or by the ``request_id`` its response carried; or None."""
        if not self.path.exists():
            return None
        column, value = _key(key)
        with self._connect() as conn:
            row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM requests WHERE {column} = ?",
                               [value]).fetchone()
        return _row(row) if row else None

    def feedback(self, key: int | str, *, rating: int | None = None, score: float | None = None,
                 comment: str | None = None) -> dict[str, Any]:
        """Store feedback on an entry (by id or request id): a thumbs up (1) or down (-1), a
        score from 0 to 10, a comment; returns the updated entry."""
        if rating not in (None, 1, -1, 0):
            raise InvalidRequest("rating must be 1 (thumbs up), -1 (thumbs down) or 0 (none).",
                                 details={"field": "rating"})
        if score is not None and not (isinstance(score, int | float) and 0 <= score <= 10):
            raise InvalidRequest("score must be a number from 0 to 10.", details={"field": "score"})
        if comment is not None and (not isinstance(comment, str) or len(comment) > 4000):
            raise InvalidRequest("comment must be text of at most 4000 characters.",
                                 details={"field": "comment"})
        if rating is None and score is None and comment is None:
            raise InvalidRequest("Give a rating, a score or a comment.")
        entry = self.get(key)
        if entry is None:
            raise NotFound(f"No history entry is {key!r}.", details={"id": key})
        with self._connect() as conn:
            conn.execute("UPDATE requests SET rating = COALESCE(?, rating), "
                         "score = COALESCE(?, score), comment = COALESCE(?, comment), "
                         "feedback_at = ? WHERE id = ?",
                         [rating, score, comment, time.time(), entry["id"]])
        return self.get(entry["id"]) or {}

    def stats(self, *, by: str = "model", user: str | None = None,
              collection: str | None = None, since: float | None = None,
              until: float | None = None) -> dict[str, Any]:
        """Per model (or per ``user``) and in total: requests, errors, refusals, tokens (with
        the prompt tokens the prefix cache served, and its hit rate), mean ttft and tokens/s,
        and feedback (thumbs up/down, mean score)."""
        if by not in ("model", "user"):
            raise InvalidRequest("stats are grouped by 'model' or 'user'.", details={"field": "by"})
        groups = "models" if by == "model" else "users"
        if not self.path.exists():
            return {"requests": 0, "errors": 0, "refusals": 0, groups: {}}
        where, args = _filters(user=user, collection=collection, since=since, until=until)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {by}, COUNT(*), SUM(error IS NOT NULL AND error NOT LIKE 'refused:%'),"
                " SUM(error LIKE 'refused:%'), COALESCE(SUM(prompt_tokens), 0),"
                " COALESCE(SUM(completion_tokens), 0), AVG(ttft_s),"
                " AVG(CASE WHEN duration_s - COALESCE(ttft_s, 0) > 0 AND completion_tokens > 0"
                "     THEN completion_tokens / (duration_s - COALESCE(ttft_s, 0)) END),"
                " SUM(rating = 1), SUM(rating = -1), AVG(score), COALESCE(SUM(cached_tokens), 0)"
                f" FROM requests {where} GROUP BY {by} ORDER BY {by}", args).fetchall()
        table = {
            str(key): {"requests": n, "errors": int(errors or 0), "refusals": int(refused or 0),
                       "prompt_tokens": pt, "completion_tokens": ct, "mean_ttft_s": ttft,
                       "mean_tokens_per_s": tps, "thumbs_up": int(up or 0),
                       "thumbs_down": int(down or 0), "mean_score": score,
                       "cached_tokens": cached,
                       "prefix_cache_hit_rate": round(cached / pt, 4) if pt else None}
            for key, n, errors, refused, pt, ct, ttft, tps, up, down, score, cached in rows
        }
        return {"requests": sum(m["requests"] for m in table.values()),
                "errors": sum(m["errors"] for m in table.values()),
                "refusals": sum(m["refusals"] for m in table.values()), groups: table}

    def export(self, out: IO[str], fmt: str = "jsonl", *, limit: int = MAX_LIMIT,
               **filters: Any) -> int:
        """Write the (filtered) entries, oldest first, as ``jsonl`` or ``csv``; returns the count."""
        if fmt not in ("jsonl", "csv"):
            raise InvalidRequest("export format must be 'jsonl' or 'csv'.", details={"field": "format"})
        entries = list(reversed(self.entries(limit=limit, **filters)))
        if fmt == "jsonl":
            for entry in entries:
                out.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(out, fieldnames=list(_COLUMNS))
            writer.writeheader()
            for entry in entries:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if k in _JSON_FIELDS
                                 and v is not None else v for k, v in entry.items()})
        return len(entries)

    def clear(self) -> int:
        """Delete every entry; returns how many were deleted."""
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return conn.execute("DELETE FROM requests").rowcount


def parse_time(value: str | float | None, field: str = "since") -> float | None:
    """Epoch seconds from a number, or an ISO 8601 date or time (local time unless it names a
    zone), for the ``since``/``until`` filters; ``InvalidRequest`` naming ``field`` otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return _dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidRequest(
            f"{field} must be a date or time such as 2026-11-27 or 2026-11-27T14:30 (or epoch "
            f"seconds), not {text!r}.",
            details={"fields": [{"field": field, "message": "is not a date"}]}) from None


def _key(key: int | str) -> tuple[str, int | str]:
    """The column and value that find one entry: an integer id or a request id."""
    if isinstance(key, int) and not isinstance(key, bool):
        return "id", key
    if isinstance(key, str) and key.isdigit():
        return "id", int(key)
    if isinstance(key, str) and key:
        return "request_id", key
    raise InvalidRequest(f"{key!r} is neither a history id nor a request id.")


def _filters(**given: Any) -> tuple[str, list[Any]]:
    """A WHERE clause for the given filters (None: not filtered)."""
    clauses, args = [], []
    for name, value in given.items():
        if value is None:
            continue
        if name == "since":
            clauses.append("created_at >= ?")
        elif name == "until":
            clauses.append("created_at < ?")
        else:
            clauses.append(f"{name} = ?")
        args.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    entry = dict(zip(_COLUMNS, row, strict=True))
    for name in _JSON_FIELDS:
        if entry[name] is not None:
            entry[name] = json.loads(entry[name])
    return entry
