"""``CollectionFile``: one portable SQLite file of documents, chunks, an FTS5 index and a vector
index (the storage under :class:`~jupyter_llm.retrieval.collection.Collection`)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from jupyter_llm.errors import (
    Conflict,
    EmbedderMismatch,
    InvalidOptions,
    ModelNotReady,
    NotACollection,
    NotFound,
    hint,
    options_error_from_pydantic,
)
from jupyter_llm.retrieval.chunking import Chunk, ChunkerSettings
from jupyter_llm.retrieval.db import Database, connect
from jupyter_llm.retrieval.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from jupyter_llm.retrieval.schema import (
    SCHEMA_VERSION,
    CollectionMeta,
    create_tables,
    read_meta,
    write_meta,
)
from jupyter_llm.retrieval.support import (
    DEFAULT_CONFIDENT_SIMILARITY,
    DEFAULT_TERM_CENTRALITY,
    SupportSettings,
)
from jupyter_llm.retrieval.vectors import DEFAULT_BACKEND, VectorIndex, open_index

__all__ = ["CollectionFile", "EmbedderMismatch", "NotACollection", "DEFAULT_SUPPORT_THRESHOLD"]

_C = TypeVar("_C", bound="CollectionFile")

# Calibrated on the course corpus with all-MiniLM-L6-v2 (see docs/retrieval.md).
DEFAULT_SUPPORT_THRESHOLD = 0.45


class CollectionFile:
    """A collection's SQLite file: its documents, chunks, indexes and embedder (the storage that
    ingest, search and answers work on); open with :meth:`open` or :meth:`create`."""

    def __init__(self, db: Database, meta: CollectionMeta, path: Path,
                 embedder: Embedder | None = None) -> None:
        self.db = db
        self.meta = meta
        self.path = path
        self._embedder = embedder
        self.index: VectorIndex = open_index(meta.vector_backend, db, meta.dimensions)

    # --- opening --------------------------------------------------------------------------

    @classmethod
    def create(cls: type[_C], path: str | os.PathLike[str], *, embedder: Embedder | str | None = None,
               vector_backend: str = DEFAULT_BACKEND, chunking: ChunkerSettings | None = None,
               exist_ok: bool = True) -> _C:
        """Create a collection file (or open it if it exists and ``exist_ok``).

        The file is built under a temporary name and linked into place complete, so a
        concurrent creator sees either nothing or a whole collection, and a failed create
        leaves nothing behind.
        """
        path = Path(path).expanduser()
        if path.exists() and path.stat().st_size == 0:
            path.unlink(missing_ok=True)  # an empty file left by an older, failed create
        if not path.exists():
            emb = get_embedder(embedder)
            chunking = chunking or ChunkerSettings()
            if cls._create_file(path, emb, vector_backend, chunking):
                return cls.open(path, embedder=emb)
        if not exist_ok:
            raise Conflict(f"The collection {path} already exists; open it or delete it.")
        coll = cls.open(path, embedder=embedder)
        if vector_backend != coll.meta.vector_backend:
            coll.close()
            raise Conflict(
                f"The collection {path} uses the {coll.meta.vector_backend!r} vector backend, "
                f"not {vector_backend!r}; use a new file to change the backend.")
        return coll

    @staticmethod
    def _create_file(path: Path, emb: Embedder, vector_backend: str,
                     chunking: ChunkerSettings) -> bool:
        """Build a new collection file at ``path``; False when another creator got there first."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            now = time.time()
            meta = CollectionMeta(embedder_id=emb.id, dimensions=emb.dimensions,
                                  vector_backend=vector_backend, chunk_size=chunking.chunk_size,
                                  chunk_overlap=chunking.chunk_overlap,
                                  tokenizer=emb.tokenizer_id(), created_at=now, updated_at=now)
            db = connect(tmp)
            try:
                index = open_index(vector_backend, db, meta.dimensions)
                with db.transaction():
                    create_tables(db)
                    index.create()
                    write_meta(db, meta, touch=False)
                db.execute("PRAGMA journal_mode = DELETE")  # fold the WAL into the file
            finally:
                db.close()
            try:
                os.link(tmp, path)  # atomic, and never replaces a collection created meanwhile
            except FileExistsError:
                return False
            except OSError:  # a disk without hard links: rename (a lost race stays possible)
                if path.exists():
                    return False
                os.replace(tmp, path)
            return True
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    @classmethod
    def open(cls: type[_C], path: str | os.PathLike[str], *,
             embedder: Embedder | str | None = None) -> _C:
        """Open an existing collection; a given ``embedder`` must match the recorded one."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise NotFound(f"No collection at {path}. Build it by ingesting files or folders "
                           "into it.", details={"path": str(path),
                                                **hint("ingest", collection=str(path))})
        db = connect(path)
        meta = read_meta(db)
        if meta is None:
            db.close()
            raise NotACollection(f"{path} is not a jupyter-llm collection (no metadata table).")
        if meta.schema_version < SCHEMA_VERSION:
            _migrate(db, meta, path)
        emb = None
        if embedder is not None:
            emb = get_embedder(embedder)
            try:
                _check_embedder(meta, emb, path)
            except EmbedderMismatch:
                db.close()
                raise
        try:
            return cls(db, meta, path, emb)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        """Close the file."""
        self.db.close()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} {self.meta.embedder_id} {self.meta.vector_backend}>"

    @property
    def name(self) -> str:
        """The file name without ``.sqlite``."""
        return self.path.stem

    @property
    def chunking(self) -> ChunkerSettings:
        """The chunker settings this collection was built with."""
        return ChunkerSettings(chunk_size=self.meta.chunk_size,
                               chunk_overlap=self.meta.chunk_overlap)

    @property
    def embedder(self) -> Embedder:
        """The embedder, rebuilt from the recorded id on first use."""
        if self._embedder is None:
            if self.meta.embedder_id.startswith("openai:") or "/" in self.meta.embedder_id:
                emb = get_embedder(self.meta.embedder_id)
            else:
                raise ModelNotReady(
                    f"This collection was built with the embedding model "
                    f"{self.meta.embedder_id!r}, which cannot be loaded automatically; open it "
                    "with embedder=<that model>.")
            _check_embedder(self.meta, emb, self.path)
            self._embedder = emb
        return self._embedder

    def use_embedder(self, embedder: Embedder | str) -> None:
        """Query with this embedder from now on (must match the recorded one)."""
        emb = get_embedder(embedder)
        _check_embedder(self.meta, emb, self.path)
        self._embedder = emb

    @property
    def support_threshold(self) -> float:
        """Minimum top cosine similarity for a query to count as covered by the collection."""
        if self.meta.support_threshold is not None:
            return self.meta.support_threshold
        return DEFAULT_SUPPORT_THRESHOLD if self.meta.embedder_id == DEFAULT_EMBEDDER else 0.0

    def set_support_threshold(self, value: float | None) -> None:
        """Record a support threshold in the file (None restores the default)."""
        self.set_support_settings(min_similarity=value)

    @property
    def support_settings(self) -> SupportSettings:
        """The thresholds of the "not covered" verdict (see :mod:`jupyter_llm.retrieval.support`)."""
        m = self.meta
        return SupportSettings(
            min_similarity=self.support_threshold,
            term_centrality=(DEFAULT_TERM_CENTRALITY if m.term_centrality is None
                             else m.term_centrality),
            confident_similarity=(DEFAULT_CONFIDENT_SIMILARITY if m.confident_similarity is None
                                  else m.confident_similarity))

    def set_support_settings(self, **values: float | None) -> None:
        """Record support thresholds in the file (``min_similarity``, ``term_centrality``,
        ``confident_similarity``); a None value restores that default."""
        fields = {"min_similarity": "support_threshold", "term_centrality": "term_centrality",
                  "confident_similarity": "confident_similarity"}
        unknown = set(values) - set(fields)
        if unknown:
            raise InvalidOptions(f"Unknown support settings: {', '.join(sorted(unknown))}; "
                                 f"use {', '.join(fields)}.")
        from pydantic import ValidationError

        try:
            SupportSettings(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as e:
            raise options_error_from_pydantic(e, what="support setting") from None
        for key, value in values.items():
            setattr(self.meta, fields[key], None if value is None else float(value))
        with self.db.transaction():
            write_meta(self.db, self.meta)

    def set_tutoring_guard(self, on: bool) -> None:
        """Record whether answers from this collection are tutoring-guarded for students."""
        self.meta.tutoring_guard = bool(on)
        with self.db.transaction():
            write_meta(self.db, self.meta)

    # --- paths ----------------------------------------------------------------------------

    @property
    def base(self) -> Path:
        """The folder sources are recorded relative to: first where it lies relative to the
        collection file (a collection copied along with its course folder), then where it was
        ingested; the collection file's folder when nothing was ingested yet."""
        here = self.path.resolve().parent
        near = (here / self.meta.base_from_file).resolve() if self.meta.base_from_file else None
        if near is not None and near.is_dir():
            return near
        if self.meta.base is not None and Path(self.meta.base).is_dir():
            return Path(self.meta.base)
        return near or (Path(self.meta.base) if self.meta.base else here)

    def source_key(self, file: str | os.PathLike[str]) -> str:
        """How a file is recorded: relative to :attr:`base` (absolute only when outside it,
        which :meth:`settle_base` prevents for ingested files)."""
        file = Path(file).resolve()
        try:
            return file.relative_to(self.base).as_posix()
        except ValueError:
            return file.as_posix()

    def resolve_source(self, key: str) -> Path:
        """The file on disk for a recorded source key."""
        p = Path(key)
        return p if p.is_absolute() else self.base / p

    def settle_base(self, roots: Sequence[str | os.PathLike[str]]) -> str:
        """Choose the base before ingesting ``roots`` (files and folders); returns what was done.

        * ``"set"``: an empty collection takes the folder ingested (the common folder of
          several roots) as its base;
        * ``"kept"``: every root is inside the base;
        * ``"moved"``: the roots hold a copy of the collection's material (at least half of its
          documents, byte for byte, at the same relative paths): the base moves there, so the
          same material ingested from a second copy is not added twice;
        * ``"widened"``: other material: the base becomes the common folder of both, and the
          recorded sources gain the old base's path below it as a prefix.
        """
        folders = [r if r.is_dir() else r.parent for r in (Path(x).resolve() for x in roots)]
        if not folders:
            return "kept"
        common = Path(os.path.commonpath(folders))
        if int(self.db.scalar("SELECT count(*) FROM documents")) == 0:
            self._set_base(common)
            return "set"
        base = self.base
        if all(f.is_relative_to(base) for f in folders):
            if self.meta.base is None:
                self._set_base(base)
            return "kept"
        if self._holds_copy(common):
            self._set_base(common)
            return "moved"
        wider = Path(os.path.commonpath([base, common]))
        prefix = base.relative_to(wider).as_posix()
        with self.db.transaction():
            self.db.execute("UPDATE documents SET path = ? || '/' || path "
                            "WHERE substr(path, 1, 1) != '/'", (prefix,))
            self._set_base(wider)
        return "widened"

    def _holds_copy(self, folder: Path) -> bool:
        """Whether ``folder`` holds at least half of the documents, byte for byte."""
        import hashlib

        docs = [(k, h) for k, (_, h, _) in self.document_hashes().items()
                if not k.startswith("/")]
        need = (len(docs) + 1) // 2
        same = 0
        for n, (key, digest) in enumerate(docs):
            f = folder / key
            try:
                if f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() == digest:
                    same += 1
            except OSError:
                pass
            if same >= need or same + len(docs) - n - 1 < need:
                break
        return need > 0 and same >= need

    def _set_base(self, folder: Path) -> None:
        self.meta.base = folder.as_posix()
        self.meta.base_from_file = Path(os.path.relpath(folder, self.path.resolve().parent)
                                        ).as_posix()
        with self.db.transaction():
            write_meta(self.db, self.meta)

    # --- documents ------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, tuple[int, str, float | None]]:
        """Map each recorded source key to ``(id, sha256, mtime)``."""
        return {p: (i, h, m) for i, p, h, m in
                self.db.execute("SELECT id, path, sha256, mtime FROM documents")}

    def documents(self) -> list[dict[str, Any]]:
        """List the documents: path, title, kind, sha256, mtime, n_chunks."""
        cols = ["id", "path", "title", "kind", "sha256", "mtime", "size", "n_chunks",
                "ingested_at"]
        rows = self.db.execute(f"SELECT {', '.join(cols)} FROM documents ORDER BY path")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def write_document(self, key: str, *, title: str, kind: str, sha256: str,
                       mtime: float | None, size: int | None, chunks: Sequence[Chunk],
                       vectors: np.ndarray) -> int:
        """Replace (or add) one document with its chunks and vectors, in one transaction."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk is required")
        with self.db.transaction():
            self._delete_document(key)
            self.db.execute(
                "INSERT INTO documents(path, title, kind, sha256, mtime, size, n_chunks, "
                "ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, title, kind, sha256, mtime, size, len(chunks), time.time()))
            doc_id = int(self.db.scalar("SELECT id FROM documents WHERE path = ?", (key,)))
            # chunk ids are never reused (AUTOINCREMENT), so vector rowids never collide
            first = int(self.db.scalar(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'chunks'), 0),"
                " coalesce((SELECT max(id) FROM chunks), 0))")) + 1
            ids = list(range(first, first + len(chunks)))
            self.db.executemany(
                "INSERT INTO chunks(id, document_id, ord, text, heading, start_line, end_line, "
                "cell_index, page, n_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(i, doc_id, n, c.text, c.heading_path, c.start_line, c.end_line, c.cell_index,
                  c.page, c.n_tokens) for n, (i, c) in enumerate(zip(ids, chunks, strict=True))])
            self.db.executemany("INSERT INTO chunks_fts(rowid, text, heading) VALUES (?, ?, ?)",
                                [(i, c.text, c.heading_path) for i, c in zip(ids, chunks, strict=True)])
            if ids:
                self.index.add(ids, vectors)
            self._touch()
        return doc_id

    def touch_document(self, key: str, mtime: float | None) -> None:
        """Record a new modification time for an unchanged document."""
        with self.db.transaction():
            self.db.execute("UPDATE documents SET mtime = ? WHERE path = ?", (mtime, key))

    def remove_document(self, key: str) -> bool:
        """Remove one document (by source key) and its chunks; True if it existed."""
        with self.db.transaction():
            removed = self._delete_document(key)
            if removed:
                self._touch()
        return removed

    def _delete_document(self, key: str) -> bool:
        doc_id = self.db.scalar("SELECT id FROM documents WHERE path = ?", (key,))
        if doc_id is None:
            return False
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE document_id = ?",
                                             (doc_id,))]
        if ids:
            self.index.delete(ids)
            self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        self.db.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
        self.db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return True

    def _touch(self) -> None:
        write_meta(self.db, self.meta)

    # --- facts ----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Summarise the collection: name, path, metadata and counts."""
        return {
            "name": self.name,
            "path": str(self.path),
            **self.meta.model_dump(),
            "support_threshold": self.support_threshold,
            "support": self.support_settings.model_dump(),
            "documents": int(self.db.scalar("SELECT count(*) FROM documents")),
            "chunks": int(self.db.scalar("SELECT count(*) FROM chunks")),
            "vectors": self.index.count(),
        }

    def check_consistency(self) -> list[str]:
        """Return a list of inconsistencies (empty when chunks, FTS, vectors and counts agree)."""
        problems = []
        n_chunks = int(self.db.scalar("SELECT count(*) FROM chunks"))
        n_fts = int(self.db.scalar("SELECT count(*) FROM chunks_fts"))
        n_vec = self.index.count()
        if n_fts != n_chunks:
            problems.append(f"{n_fts} FTS rows for {n_chunks} chunks")
        if n_vec != n_chunks:
            problems.append(f"{n_vec} vectors for {n_chunks} chunks")
        for path, expected, actual in self.db.execute(
                "SELECT d.path, d.n_chunks, count(c.id) FROM documents d "
                "LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.id "
                "HAVING d.n_chunks != count(c.id)"):
            problems.append(f"{path}: {actual} chunks, {expected} recorded")
        return problems



def _migrate(db: Database, meta: CollectionMeta, path: Path) -> None:
    """Schema 1 → 2: record a base (the common folder of the sources, which were relative to
    the collection file's folder or absolute) and store every source relative to it. A
    read-only file is left as it is: its sources still resolve."""
    here = path.resolve().parent
    try:
        with db.transaction():
            current = read_meta(db)
            if current is not None and current.schema_version >= SCHEMA_VERSION:
                for key, value in current:  # another process migrated it meanwhile
                    setattr(meta, key, value)
                return
            keys = [r[0] for r in db.execute("SELECT path FROM documents")]
            files = {k: (Path(k) if Path(k).is_absolute() else here / k) for k in keys}
            if files:
                base = Path(os.path.commonpath([f.parent for f in files.values()]))
                db.executemany("UPDATE documents SET path = ? WHERE path = ?",
                               [(f.relative_to(base).as_posix(), k) for k, f in files.items()])
                meta.base = base.as_posix()
                meta.base_from_file = Path(os.path.relpath(base, here)).as_posix()
            meta.schema_version = SCHEMA_VERSION
            write_meta(db, meta, touch=False)
    except Exception:  # noqa: BLE001 - a read-only copy keeps working with its old keys
        meta.schema_version = 1
        meta.base = meta.base_from_file = None


def _check_embedder(meta: CollectionMeta, emb: Embedder, path: Path) -> None:
    if emb.id != meta.embedder_id or emb.dimensions != meta.dimensions:
        raise EmbedderMismatch(
            f"The collection {path.name} was built with the embedding model "
            f"{meta.embedder_id!r} ({meta.dimensions} dimensions), but the query embedder is "
            f"{emb.id!r} ({emb.dimensions} dimensions). Query it with {meta.embedder_id!r} "
            "(the default when no embedder is given), or re-ingest into a new collection.",
            details={"collection_embedder": meta.embedder_id,
                     "collection_dimensions": meta.dimensions,
                     "query_embedder": emb.id, "query_dimensions": emb.dimensions})
