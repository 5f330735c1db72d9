"""Vector indexes inside the collection file: ``vec`` (sqlite-vec, default) and ``vss`` (sqlite-vss).

Both sit behind :class:`VectorIndex`. Vectors are L2-normalised float32, so every
backend reports cosine similarity (higher is better) whatever its native distance.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from jupyter_llm.errors import InvalidRequest, MissingDependency
from jupyter_llm.retrieval.db import Database

__all__ = ["VectorIndex", "VecIndex", "VssIndex", "BACKENDS", "DEFAULT_BACKEND", "open_index"]

DEFAULT_BACKEND = "vec"


class VectorIndex(ABC):
    """A nearest-neighbour index of chunk vectors keyed by chunk id, stored in the same file."""

    name: str = ""

    def __init__(self, db: Database, dimensions: int) -> None:
        self.db = db
        self.dimensions = int(dimensions)

    @abstractmethod
    def load_extension(self) -> None:
        """Load the SQLite extension this backend needs into the connection."""

    @abstractmethod
    def create(self) -> None:
        """Create the index tables (inside the caller's transaction)."""

    @abstractmethod
    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add one vector per chunk id."""

    @abstractmethod
    def delete(self, ids: Sequence[int]) -> None:
        """Remove the vectors of these chunk ids."""

    @abstractmethod
    def search(self, query: np.ndarray, k: int,
               within: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Return up to ``k`` ``(chunk_id, cosine_similarity)`` pairs, best first.

        With ``within``, only those chunk ids are candidates (exact search).
        """

    @abstractmethod
    def count(self) -> int:
        """Return the number of vectors in the index."""

    def _blob(self, vector: np.ndarray) -> bytes:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dimensions:
            raise InvalidRequest(
                f"Vector has {vector.shape[0]} dimensions but the index expects {self.dimensions}.")
        return vector.tobytes()


class VecIndex(VectorIndex):
    """sqlite-vec ``vec0`` table with cosine distance: exact (brute-force) KNN in SQLite."""

    name = "vec"
    table = "chunks_vec"

    def load_extension(self) -> None:
        """Load sqlite-vec."""
        try:
            import sqlite_vec
        except ImportError as e:
            raise MissingDependency.from_package("sqlite-vec", "The 'vec' vector backend", "retrieval") from e
        self.db.load_extension(sqlite_vec.loadable_path())

    def create(self) -> None:
        """Create the ``vec0`` virtual table."""
        self.db.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.table} USING vec0("
            f"embedding float[{self.dimensions}] distance_metric=cosine)")

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Insert vectors with ``executemany``."""
        self.db.executemany(f"INSERT INTO {self.table}(rowid, embedding) VALUES (?, ?)",
                            [(int(i), self._blob(v)) for i, v in zip(ids, vectors, strict=True)])

    def delete(self, ids: Sequence[int]) -> None:
        """Delete vectors by chunk id."""
        self.db.executemany(f"DELETE FROM {self.table} WHERE rowid = ?", [(int(i),) for i in ids])

    def search(self, query: np.ndarray, k: int,
               within: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """KNN through ``MATCH … AND k = ?``, optionally restricted to ``within``."""
        if k <= 0:
            return []
        sql = (f"SELECT rowid, distance FROM {self.table} "
               f"WHERE embedding MATCH ? AND k = ?")
        params: list = [self._blob(query), int(k)]
        if within is not None:
            if not within:
                return []
            sql += " AND rowid IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([int(i) for i in within]))
        sql += " ORDER BY distance"
        return [(int(r), 1.0 - float(d)) for r, d in self.db.execute(sql, params)]

    def count(self) -> int:
        """Count vectors."""
        return int(self.db.scalar(f"SELECT count(*) FROM {self.table}"))


class VssIndex(VectorIndex):
    """sqlite-vss ``vss0`` table (Faiss ``Flat,IDMap2``, squared-L2 on unit vectors).

    A side table keeps the raw vectors too, for exact search restricted to a subset
    (a source filter), which ``vss0`` cannot do.
    """

    name = "vss"
    table = "chunks_vss"
    side = "chunks_vss_vectors"

    def load_extension(self) -> None:
        """Load sqlite-vss (``vector0`` then ``vss0``)."""
        try:
            import sqlite_vss
        except ImportError as e:
            raise MissingDependency.from_package("sqlite-vss", "The 'vss' vector backend", "retrieval") from e
        try:
            self.db.load_extension(sqlite_vss.vector_loadable_path())
            self.db.load_extension(sqlite_vss.vss_loadable_path())
        except Exception as e:  # the shared library needs BLAS/LAPACK/OpenMP from the system
            raise MissingDependency.from_package(
                "sqlite-vss (with system libraries libblas3 liblapack3 libgomp1)",
                f"The 'vss' vector backend could not load its extension ({e}); on Debian/Ubuntu "
                "run `apt-get install -y libblas3 liblapack3 libgomp1`, or use --vector-backend vec."
                " The backend",
                "retrieval") from e

    def create(self) -> None:
        """Create the ``vss0`` virtual table and the side table of raw vectors."""
        self.db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.table} USING vss0("
                        f"embedding({self.dimensions}))")
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {self.side} "
                        "(rowid INTEGER PRIMARY KEY, embedding BLOB NOT NULL)")

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Insert vectors into ``vss0`` and the side table."""
        rows = [(int(i), self._blob(v)) for i, v in zip(ids, vectors, strict=True)]
        self.db.executemany(f"INSERT INTO {self.table}(rowid, embedding) VALUES (?, ?)", rows)
        self.db.executemany(f"INSERT INTO {self.side}(rowid, embedding) VALUES (?, ?)", rows)

    def delete(self, ids: Sequence[int]) -> None:
        """Delete vectors by chunk id."""
        rows = [(int(i),) for i in ids]
        self.db.executemany(f"DELETE FROM {self.table} WHERE rowid = ?", rows)
        self.db.executemany(f"DELETE FROM {self.side} WHERE rowid = ?", rows)

    def search(self, query: np.ndarray, k: int,
               within: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """KNN with ``vss_search``; exact numpy scoring over the side table for ``within``."""
        if k <= 0:
            return []
        blob = self._blob(query)
        if within is not None:
            if not within:
                return []
            rows = self.db.execute(
                f"SELECT rowid, embedding FROM {self.side} "
                "WHERE rowid IN (SELECT value FROM json_each(?))",
                (json.dumps([int(i) for i in within]),))
            if not rows:
                return []
            mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            sims = mat.reshape(len(rows), self.dimensions) @ np.frombuffer(blob, np.float32)
            order = np.argsort(-sims)[:k]
            return [(int(rows[i][0]), float(sims[i])) for i in order]
        rows = self.db.execute(
            f"SELECT rowid, distance FROM {self.table} "
            "WHERE vss_search(embedding, vss_search_params(?, ?))", (blob, int(k)))
        return sorted(((int(r), 1.0 - float(d) / 2.0) for r, d in rows), key=lambda t: -t[1])

    def count(self) -> int:
        """Count vectors."""
        return int(self.db.scalar(f"SELECT count(*) FROM {self.side}"))


BACKENDS: dict[str, type[VectorIndex]] = {"vec": VecIndex, "vss": VssIndex}


def open_index(name: str, db: Database, dimensions: int) -> VectorIndex:
    """Return the backend called ``name`` bound to ``db``, with its extension loaded."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise InvalidRequest(
            f"Unknown vector backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}.",
            details={"backend": name}) from None
    index = cls(db, dimensions)
    index.load_extension()
    return index
