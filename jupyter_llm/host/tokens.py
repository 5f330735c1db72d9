"""Named API tokens for a shared ``jupyter llm serve``: issued by an admin, stored hashed.

    tokens = TokenStore()                        # <data dir>/tokens.json (mode 0600)
    secret = tokens.add("ada", role="student")   # shown once; only its sha256 is kept
    tokens.identify(secret)                      # -> ("ada", "student")
    tokens.revoke("ada")
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import Conflict, InvalidRequest, NotFound

__all__ = ["TokenStore", "TOKEN_PREFIX"]

TOKEN_PREFIX = "jllm-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """Named tokens with a role; the file holds only each token's sha256."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.data_dir() / "tokens.json"
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int] | None, dict[str, dict[str, Any]]] = (None, {})

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> dict[str, dict[str, Any]]:
        stamp = self._stamp()
        if stamp is None:
            return {}
        if stamp == self._cache[0]:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = dict(data.get("tokens", {}))
        except (OSError, ValueError, AttributeError) as e:
            raise InvalidRequest(f"The token file {self.path} is unreadable ({e}); restore it from "
                                 "a backup or delete it and issue the tokens again.") from None
        self._cache = (stamp, entries)
        return entries

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "tokens": entries}, f, indent=2, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._cache = (None, {})

    def add(self, name: str, role: str = "student") -> str:
        """Issue a token for ``name`` and return it (the only time it is shown)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequest(f"{name!r} is not a valid token name: use 1-64 letters, digits, "
                                 "'.', '_', '@' or '-', starting with a letter or digit.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            entries = dict(self._read())
            if name in entries:
                raise Conflict(f"A token named {name!r} exists already; revoke it first to issue "
                               "a new one.", details={"name": name})
            entries[name] = {"sha256": _digest(token), "role": role, "created_at": time.time()}
            self._write(entries)
        return token

    def revoke(self, name: str) -> bool:
        """Revoke the token named ``name``."""
        with self._lock:
            entries = dict(self._read())
            if name not in entries:
                raise NotFound(f"No token is named {name!r}.", details={"name": name})
            del entries[name]
            self._write(entries)
        return True

    def list(self) -> list[dict[str, Any]]:
        """Every token's name, role and creation time (never the token)."""
        with self._lock:
            entries = self._read()
        return [{"name": n, "role": e.get("role"), "created_at": e.get("created_at")}
                for n, e in sorted(entries.items())]

    def role_of(self, name: str) -> str | None:
        """The role of the token named ``name``, or None when there is none."""
        with self._lock:
            entry = self._read().get(name)
        return None if entry is None else str(entry.get("role") or "student")

    def identify(self, token: str) -> tuple[str, str] | None:
        """``(name, role)`` of a valid token, or None."""
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        digest = _digest(token)
        with self._lock:
            entries = self._read()
        for name, entry in entries.items():
            if secrets.compare_digest(str(entry.get("sha256", "")), digest):
                return name, str(entry.get("role") or "student")
        return None
