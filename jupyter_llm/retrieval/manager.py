"""``CollectionManager``: named collections in ``paths.collections_dir()`` (or any ``.sqlite`` path).

The one entry point for faces (CLI, magics, REST handlers, LangChain): resolve a
name or path, create/open (cached, thread-safe), list and delete collections.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from jupyter_llm import paths
from jupyter_llm.errors import InvalidRequest, NotFound
from jupyter_llm.retrieval.chunking import ChunkerSettings
from jupyter_llm.retrieval.collection import Collection
from jupyter_llm.retrieval.embedders import Embedder
from jupyter_llm.retrieval.vectors import DEFAULT_BACKEND

__all__ = ["CollectionManager", "resolve_collection_path"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SUFFIX = ".sqlite"


def resolve_collection_path(name_or_path: str | os.PathLike[str],
                            root: Path | None = None) -> Path:
    """A ``.sqlite`` path (or any existing file / path with a folder) as is; else a name in ``root``."""
    text = os.fspath(name_or_path)
    p = Path(text).expanduser()
    if text.endswith((SUFFIX, ".db", ".sqlite3")) or "/" in text or os.sep in text or p.is_file():
        return p
    if not _NAME.match(text):
        raise InvalidRequest(
            f"{text!r} is not a valid collection name: use letters, digits, '.', '_' or '-', "
            f"or give a path ending in {SUFFIX}.")
    return (root or paths.collections_dir()) / f"{text}{SUFFIX}"


class CollectionManager:
    """Creates, opens (once per file), lists and deletes collections."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = Path(root) if root is not None else None
        self._open: dict[Path, Collection] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The folder of named collections."""
        return self._root or paths.collections_dir()

    def path(self, name_or_path: str | os.PathLike[str]) -> Path:
        """Resolve a name or path to the collection file."""
        return resolve_collection_path(name_or_path, self.root)

    def open(self, name_or_path: str | os.PathLike[str], *,
             embedder: Embedder | str | None = None) -> Collection:
        """Open an existing collection (cached); a given embedder must match the recorded one."""
        path = self.path(name_or_path).resolve()
        with self._lock:
            coll = self._open.get(path)
            if coll is None:
                if not path.is_file():
                    raise NotFound(
                        f"No collection {os.fspath(name_or_path)!r} (looked for {path}). Build it "
                        f"with `jupyter llm ingest {os.fspath(name_or_path)} FOLDER`.",
                        details={"collection": os.fspath(name_or_path), "path": str(path)})
                coll = Collection.open(path, embedder=embedder)
                self._open[path] = coll
            elif embedder is not None:
                coll.use_embedder(embedder)
            return coll

    def create(self, name_or_path: str | os.PathLike[str], *,
               embedder: Embedder | str | None = None, vector_backend: str = DEFAULT_BACKEND,
               chunking: ChunkerSettings | None = None, exist_ok: bool = True) -> Collection:
        """Create a collection, or open it when it exists and ``exist_ok``."""
        path = self.path(name_or_path).resolve()
        with self._lock:
            coll = self._open.get(path)
            if coll is not None and exist_ok:
                if embedder is not None:
                    coll.use_embedder(embedder)
                return coll
            coll = Collection.create(path, embedder=embedder, vector_backend=vector_backend,
                                     chunking=chunking, exist_ok=exist_ok)
            self._open[path] = coll
            return coll

    def list(self) -> list[dict[str, Any]]:
        """Describe each collection in the collections folder."""
        out = []
        if not self.root.is_dir():
            return out
        for file in sorted(self.root.glob(f"*{SUFFIX}")):
            try:
                out.append(self.open(file).info())
            except Exception as e:  # a broken file is listed, not fatal
                out.append({"name": file.stem, "path": str(file), "error": str(e)})
        return out

    def close(self, name_or_path: str | os.PathLike[str]) -> None:
        """Close a cached collection."""
        path = self.path(name_or_path).resolve()
        with self._lock:
            coll = self._open.pop(path, None)
        if coll is not None:
            coll.close()

    def delete(self, name_or_path: str | os.PathLike[str]) -> None:
        """Delete a collection file (and its WAL files)."""
        path = self.path(name_or_path).resolve()
        if not path.exists():
            raise NotFound(f"No collection at {path}.")
        self.close(path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def close_all(self) -> None:
        """Close every cached collection."""
        with self._lock:
            colls, self._open = list(self._open.values()), {}
        for c in colls:
            c.close()
