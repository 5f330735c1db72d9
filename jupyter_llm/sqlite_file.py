"""``SQLiteFile``: one SQLite file of the data directory (the history, the saved
conversations), safe for concurrent writers and processes: a connection per use, WAL and a
busy timeout, the tables set up once, and every SQLite failure turned into a clear error."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import Busy, InsufficientStorage, JupyterLLMError

__all__ = ["BUSY_TIMEOUT_MS", "SQLiteFile"]

BUSY_TIMEOUT_MS = 30_000


class SQLiteFile:
    """Base of the host's SQLite files; a subclass names itself and creates its tables."""

    what = "data file"  # how messages name the file: "history file", ...
    off = ""  # how to do without it, appended to advice: " or turn history off (...)"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self.path)!r}>"

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Create or migrate the tables (once per process, under a lock)."""
        raise NotImplementedError

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.OperationalError) as e:
            raise InsufficientStorage(
                f"Cannot open the {self.what} {self.path}: {e}. Make the data directory "
                f"writable (JUPYTER_LLM_HOME){self.off}.", details={"path": str(self.path)}) from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self._ready:
                self._init(conn)
            yield conn
        except sqlite3.DatabaseError as e:  # a full disk, a read-only or corrupt file
            raise self._storage_error(e) from e
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
                    self._setup(conn)
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) and "busy" not in str(e) or attempt == 49:
                        raise
                    time.sleep(0.02 * (attempt + 1))
            self._ready = True

    def _storage_error(self, exc: sqlite3.DatabaseError) -> JupyterLLMError:
        """A clear error for a SQLite failure of this file (never a raw traceback)."""
        text, path, details = str(exc).lower(), self.path, {"path": str(self.path)}
        if "full" in text or "disk i/o" in text:
            return InsufficientStorage(f"The disk holding the {self.what} {path} is full; free "
                                       f"some space{self.off}.", details=details)
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return InsufficientStorage(f"The {self.what} {path} cannot be written; make the data "
                                       f"directory writable (JUPYTER_LLM_HOME){self.off}.",
                                       details=details)
        if "locked" in text or "busy" in text:
            return Busy(f"The {self.what} {path} is locked by another process; retry shortly.",
                        retry_after=1, details=details)
        return JupyterLLMError(f"The {self.what} {path} is unreadable ({exc}); move it away to "
                               f"start a new one{self.off}.", details=details)
