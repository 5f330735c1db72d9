"""Ingesting files into a collection: idempotent (content hash), one transaction per document.

Embeddings are computed in batches that span several documents (fast), but each
document is written in its own transaction, so an interrupted ingest leaves a
consistent collection that the next run completes. Unreadable files are
reported and skipped.

Files that are not course content (licences, codes of conduct, contributor and citation
files, attribution notes) are left out of folders by default (:data:`DEFAULT_SKIP`) and
listed in the report's ``excluded``; to ingest one anyway, give the file itself or an
``include`` glob that names it (``LICENSE*`` does, ``*.md`` does not).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_llm.confine import check_path_text, is_inside
from jupyter_llm.errors import NotFound
from jupyter_llm.retrieval.chunking import Chunk, chunk_sections
from jupyter_llm.retrieval.loaders import LoaderError, load_file, walk

if TYPE_CHECKING:
    from jupyter_llm.retrieval.storage import CollectionFile

__all__ = ["IngestProgress", "IngestReport", "ingest", "EMBED_BATCH_CHUNKS", "DEFAULT_SKIP",
           "is_boilerplate"]

EMBED_BATCH_CHUNKS = 256
# File names (case-insensitive, any extension) left out of folders by default: not course content.
DEFAULT_SKIP = ("license", "licence", "copying", "code_of_conduct", "code-of-conduct", "conduct",
                "contributing", "contributors", "authors", "citation", "security", "changelog",
                "source", "sources")
_PROSE_ONLY = {"source", "sources"}  # source.py is code, SOURCE.md an attribution note


def is_boilerplate(path: str | os.PathLike[str]) -> bool:
    """Whether a file is a licence, code of conduct, authors list, ... (:data:`DEFAULT_SKIP`)."""
    name = Path(path).name.lower()
    stem, _, suffix = name.partition(".")
    if stem in _PROSE_ONLY:
        return suffix in ("md", "txt", "rst", "")
    return stem in DEFAULT_SKIP


@dataclass
class IngestProgress:
    """One step of an ingest: ``done`` of ``total`` files, and what happened to ``path``."""

    done: int
    total: int
    path: str
    status: str  # added | updated | unchanged | skipped | removed
    chunks: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    """What an ingest did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    chunks: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "removed": self.removed, "skipped": self.skipped, "excluded": self.excluded,
                "chunks": self.chunks}

    def summary(self) -> str:
        """One line: counts of each outcome."""
        left_out = (f", {len(self.excluded)} left out as not course content"
                    if self.excluded else "")
        return (f"{len(self.added)} added, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, "
                f"{len(self.skipped)} skipped{left_out} ({self.chunks} chunks embedded)")


@dataclass
class _Pending:
    key: str
    status: str
    title: str
    kind: str
    sha256: str
    mtime: float
    size: int
    chunks: list[Chunk]


def _files(paths: Iterable[str | os.PathLike[str]], include: Iterable[str],
           exclude: Iterable[str]) -> tuple[list[Path], list[Path], list[str], list[Path]]:
    """Return (files, folder roots, links skipped, boilerplate left out); a missing path is an error.

    A file reached through a folder must resolve inside that folder: a symlink to a file
    elsewhere (``docs/x.md -> /outside/secret.md``) is skipped, never read. Boilerplate
    (:func:`is_boilerplate`) found in a folder is left out unless an ``include`` glob names it
    (``LICENSE*``, not ``*.md``).
    """
    files: list[Path] = []
    roots: list[Path] = []
    outside: list[str] = []
    boilerplate: list[Path] = []
    include = list(include)
    seen: set[Path] = set()
    for p in paths:
        root = Path(check_path_text(p)).expanduser().resolve()
        if not root.exists():
            raise NotFound(f"{p} does not exist; give a file or folder to ingest.",
                           details={"path": str(p)})
        if root.is_dir():
            roots.append(root)
        for f in walk(root, include, exclude):
            if root.is_dir() and not is_inside(f, root):
                outside.append(str(f))
                continue
            if root.is_dir() and is_boilerplate(f) and not _named(f, include):
                boilerplate.append(f.resolve())
                continue
            f = f.resolve()
            if f not in seen:
                seen.add(f)
                files.append(f)
    return files, roots, outside, [b for b in dict.fromkeys(boilerplate) if b not in seen]


def _named(path: Path, include: list[str]) -> bool:
    """Whether an ``include`` glob names this file: it matches and its name part starts literally."""
    name = path.name.lower()
    for pattern in include:
        last = pattern.replace("\\", "/").rsplit("/", 1)[-1]
        if last and last[0] not in "*?[" and fnmatch.fnmatchcase(name, last.lower()):
            return True
    return False


def ingest(collection: CollectionFile, paths: Iterable[str | os.PathLike[str]], *,
           include: Iterable[str] = (), exclude: Iterable[str] = (),
           progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
    """Add new files, replace changed ones, drop deleted ones; return what happened.

    ``progress`` is called after each file is settled; an exception it raises stops the
    ingest, leaving every finished document committed and the collection consistent.
    """
    paths = list(paths)
    files, roots, outside, boilerplate = _files(paths, list(include), list(exclude))
    collection.settle_base([Path(check_path_text(p)).expanduser() for p in paths])
    report = IngestReport()
    report.excluded = [collection.source_key(b) for b in boilerplate]
    for link in outside:
        report.skipped.append({"path": link, "error": "a link to a file outside the folder "
                               "being ingested; ingest that file itself if it should be in"})
    known = collection.document_hashes()
    embedder = collection.embedder
    settings = collection.chunking
    existing_keys = set(known)
    seen_keys: set[str] = set()
    total = len(files)
    done = 0
    batch: list[_Pending] = []

    def emit(path: str, status: str, chunks: int = 0, error: str | None = None) -> None:
        if progress is not None:
            progress(IngestProgress(done, total, path, status, chunks, error))

    def flush() -> None:
        nonlocal done
        texts = [c.embedding_text(p.title) for p in batch for c in p.chunks]
        vectors = embedder.embed(texts)
        offset = 0
        pending = list(batch)
        batch.clear()
        for p in pending:
            n = len(p.chunks)
            collection.write_document(p.key, title=p.title, kind=p.kind, sha256=p.sha256,
                                      mtime=p.mtime, size=p.size, chunks=p.chunks,
                                      vectors=vectors[offset:offset + n])
            offset += n
            report.chunks += n
            (report.added if p.status == "added" else report.updated).append(p.key)
            done += 1
            emit(p.key, p.status, n)

    for path in files:
        key = collection.source_key(path)
        seen_keys.add(key)
        try:
            data = path.read_bytes()
            stat = path.stat()
        except OSError as e:
            report.skipped.append({"path": key, "error": f"cannot read: {e}"})
            done += 1
            emit(key, "skipped", error=str(e))
            continue
        digest = hashlib.sha256(data).hexdigest()
        old = known.get(key)
        if old is not None and old[1] == digest:
            if old[2] != stat.st_mtime:
                collection.touch_document(key, stat.st_mtime)
            report.unchanged.append(key)
            done += 1
            emit(key, "unchanged")
            continue
        try:
            loaded = load_file(path, data if path.suffix.lower() != ".pdf" else None)
            chunks = chunk_sections(loaded.sections, settings, embedder.count_tokens)
        except LoaderError as e:
            report.skipped.append({"path": key, "error": e.message})
            done += 1
            emit(key, "skipped", error=e.message)
            continue
        batch.append(_Pending(key, "updated" if old else "added", loaded.title, loaded.kind,
                              digest, stat.st_mtime, stat.st_size, chunks))
        if sum(len(p.chunks) for p in batch) >= EMBED_BATCH_CHUNKS:
            flush()
    if batch:
        flush()

    # files deleted from disk, under the folders we walked, leave the collection too
    for key in sorted(existing_keys - seen_keys):
        source = collection.resolve_source(key).resolve()
        if any(source.is_relative_to(r) for r in roots) and not source.exists():
            collection.remove_document(key)
            report.removed.append(key)
            emit(key, "removed")
    return report
