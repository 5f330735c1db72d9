"""Connecting to SQLite with extensions: the ONE place that picks the SQLite driver.

The stdlib ``sqlite3`` of many Python builds (this project's CI, macOS system
Pythons) cannot load extensions. We use the first driver that can:
stdlib ``sqlite3`` → ``pysqlite3`` (pysqlite3-binary) → ``apsw``.
Every connection runs in WAL mode with a ``busy_timeout``, in autocommit mode,
with explicit transactions through :meth:`Database.transaction`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_llm.errors import MissingDependency

__all__ = ["Database", "connect", "driver_name"]

BUSY_TIMEOUT_MS = 10_000
_DRIVER: tuple[str, Any] | None = None


def _stdlib_can_load_extensions() -> bool:
    import sqlite3

    return hasattr(sqlite3.Connection, "enable_load_extension")


def _pick_driver() -> tuple[str, Any]:
    """Return ``(name, module)`` of the first SQLite driver that can load extensions."""
    global _DRIVER
    if _DRIVER is not None:
        return _DRIVER
    forced = os.environ.get("JUPYTER_LLM_SQLITE_DRIVER", "").strip().lower()
    candidates = [forced] if forced else ["sqlite3", "pysqlite3", "apsw"]
    for name in candidates:
        try:
            if name == "sqlite3":
                if not _stdlib_can_load_extensions():
                    continue
                import sqlite3 as module
            elif name == "pysqlite3":
                import pysqlite3.dbapi2 as module  # type: ignore[import-not-found]
            elif name == "apsw":
                import apsw as module  # type: ignore[import-not-found]
            else:
                continue
        except ImportError:
            continue
        _DRIVER = (name, module)
        return _DRIVER
    raise MissingDependency.from_package(
        "pysqlite3-binary or apsw",
        "Retrieval collections (SQLite with vector extensions, since this Python's sqlite3 "
        "cannot load extensions)",
        extra="retrieval",
    )


def driver_name() -> str:
    """Return the name of the SQLite driver in use: ``sqlite3``, ``pysqlite3`` or ``apsw``."""
    return _pick_driver()[0]


class Database:
    """A thin, thread-safe wrapper over one SQLite connection of whichever driver was picked."""

    def __init__(self, raw: Any, driver: str, path: str) -> None:
        self.raw = raw
        self.driver = driver
        self.path = path
        self.lock = threading.RLock()
        self._depth = 0
        self._extensions: set[str] = set()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
        """Run one statement and return all its rows."""
        with self.lock:
            return list(self.raw.execute(sql, params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        with self.lock:
            if self.driver == "apsw":
                self.raw.cursor().executemany(sql, list(rows))
            else:
                self.raw.executemany(sql, rows)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Return the first column of the first row, or None."""
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """Run the block in one transaction (``BEGIN IMMEDIATE``); nested blocks join it."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self.raw.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self.raw.execute("ROLLBACK")
                raise
            self._depth = 0
            self.raw.execute("COMMIT")

    def load_extension(self, path: str) -> None:
        """Load a SQLite extension from a shared-library path (once per connection)."""
        with self.lock:
            if path in self._extensions:
                return
            self.raw.enable_load_extension(True)
            try:
                self.raw.load_extension(path)
                self._extensions.add(path)
            finally:
                self.raw.enable_load_extension(False)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.raw.close()


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> Database:
    """Open (or create) a SQLite file with WAL mode and a busy timeout, ready for extensions."""
    name, module = _pick_driver()
    path = str(path)
    if name == "apsw":
        flags = module.SQLITE_OPEN_READONLY if readonly else (
            module.SQLITE_OPEN_READWRITE | module.SQLITE_OPEN_CREATE)
        raw = module.Connection(path, flags=flags)
        raw.set_busy_timeout(BUSY_TIMEOUT_MS)
    else:
        target = f"file:{Path(path).as_posix()}?mode=ro" if readonly else path
        raw = module.connect(target, isolation_level=None, check_same_thread=False,
                             timeout=BUSY_TIMEOUT_MS / 1000, uri=readonly)
    db = Database(raw, name, path)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly and path != ":memory:":
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db
