"""The tables of a collection file, and its metadata record."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict

from jupyter_llm.retrieval.db import Database

__all__ = ["SCHEMA_VERSION", "CollectionMeta", "create_tables", "read_meta", "write_meta"]

SCHEMA_VERSION = 2
"""2: sources are recorded relative to the collection's ``base`` folder (1: relative to the
collection file's folder when inside it, else absolute; migrated when opened)."""

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    mtime REAL,
    size INTEGER,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    text TEXT NOT NULL,
    heading TEXT NOT NULL DEFAULT '',
    start_line INTEGER,
    end_line INTEGER,
    cell_index INTEGER,
    page INTEGER,
    n_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id, ord);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, heading, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""


class CollectionMeta(BaseModel):
    """What a collection records about how it was built."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    embedder_id: str
    dimensions: int
    vector_backend: str
    chunk_size: int
    chunk_overlap: int
    tokenizer: str
    created_at: float
    updated_at: float
    support_threshold: float | None = None
    term_centrality: float | None = None
    confident_similarity: float | None = None
    base: str | None = None
    """The folder sources are relative to (absolute, where it was at the last ingest)."""
    base_from_file: str | None = None
    """The same folder relative to the collection file's folder, tried first on open."""
    tutoring_guard: bool = False


def create_tables(db: Database) -> None:
    """Create the plain and FTS5 tables (the vector index is created by its backend)."""
    for statement in _TABLES.split(";"):
        if statement.strip():
            db.execute(statement)


def read_meta(db: Database) -> CollectionMeta | None:
    """Read the metadata record, or None for a file that is not a collection."""
    try:
        rows = dict(db.execute("SELECT key, value FROM meta"))
    except Exception:
        return None
    return CollectionMeta.model_validate(rows) if rows else None


def write_meta(db: Database, meta: CollectionMeta, *, touch: bool = True) -> None:
    """Write the metadata record (and bump ``updated_at`` when ``touch``)."""
    if touch:
        meta.updated_at = time.time()
    rows = [(k, str(v)) for k, v in meta.model_dump().items() if v is not None]
    db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows)
    for key in ("support_threshold", "term_centrality", "confident_similarity", "base",
                "base_from_file"):
        if getattr(meta, key) is None:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
