"""One HTTP transfer of a model file into the store: Range resume from a ``.part`` file,
restart when the server ignores Range or the remote file changed, disk-space checks,
sha256 verification before the atomic install. Threads, sharing and progress fan-out live
in :mod:`jupyter_llm.downloads`; this module only moves bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import Cancelled, ChecksumMismatch, DownloadError, InsufficientStorage, InvalidRequest
from .registry import ModelSpec
from .store import Store, storage_error

__all__ = ["Transfer", "check_url", "hf_auth_headers", "is_hf_url"]

log = logging.getLogger(__name__)

_HF_HOSTS = ("huggingface.co", "hf.co")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_MAX_RESTARTS = 2

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None


def is_hf_url(url: str) -> bool:
    """True for huggingface.co / hf.co hosts and for the host:port of ``$HF_ENDPOINT``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in _HF_HOSTS):
        return True
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint:
        ep = urlsplit(endpoint)
        return (ep.hostname or "").lower() == host and ep.port == parts.port
    return False


def hf_auth_headers(url: str) -> dict[str, str]:
    """``Authorization: Bearer $HF_TOKEN`` for Hugging Face hosts (and ``$HF_ENDPOINT``), else {}."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token and is_hf_url(url) else {}


def check_url(url: str, model_id: str) -> None:
    """Raise ``InvalidRequest`` unless ``url`` is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"Cannot download {model_id!r} from {url!r}: only http:// and https:// URLs are "
            "supported. Fix the url in the registry entry (or copy a local file in with "
            "`Store.install_file`).", details={"model": model_id, "url": url})


class _Restart(Exception):
    """The partial file cannot be continued; start again from byte 0."""


class Transfer:
    """Download one model file into ``store`` (see module docstring)."""

    def __init__(self, spec: ModelSpec, url: str, store: Store, *, client: httpx.Client,
                 report: Callable[..., None], begin: Callable[[int], None],
                 cancel: threading.Event, chunk_size: int = 1 << 20) -> None:
        self.spec, self.url, self.store, self.client = spec, url, store, client
        self.report, self.begin, self.cancel, self.chunk_size = report, begin, cancel, chunk_size
        self.part, self.meta_path = store.part_path(spec), store.part_meta_path(spec)
        self.expected = spec.sha256.lower() if spec.sha256 else None

    # -- the whole job ---------------------------------------------------------------------
    def run(self) -> Path:
        """Fetch, verify and install; returns the installed path."""
        folder = self.part.parent
        self._mkdir(folder)
        with self._locked():
            path = self.store.installed_path(self.spec)
            if path is None:  # (another process may have finished it while we waited)
                path = self._fetch_verify_install()
        with contextlib.suppress(OSError):  # tidy up; only the lock file is left
            if {p.name for p in folder.iterdir()} <= {self.store.lock_path(self.spec).name}:
                shutil.rmtree(folder)
        return path

    def _fetch_verify_install(self) -> Path:
        digest, size = self._fetch()
        got = digest.hexdigest()
        self.report(size, size, "verifying", "checking sha256")
        if self.expected and got != self.expected:
            self._discard()
            raise ChecksumMismatch(
                f"The download of {self.spec.id!r} from {self.url} has sha256 {got}, but the "
                f"registry expects {self.expected}. The corrupt file was deleted and nothing was "
                "installed. Run the same command again; if it fails again the file on the server "
                "changed, so update (or remove) the sha256 in the registry entry.",
                details={"model": self.spec.id, "url": self.url, "expected": self.expected,
                         "got": got})
        if not self.expected:
            log.warning("Model %s has no sha256 in the registry; installed it unverified with "
                        "sha256 %s (add it to the registry entry to verify later downloads).",
                        self.spec.id, got)
        path = self.store.install_file(self.spec, self.part, got, bool(self.expected),
                                       source_url=self.url, move=True)
        self.meta_path.unlink(missing_ok=True)
        self.report(size, size, "done", f"installed at {path}")
        return path

    # -- network -----------------------------------------------------------------------------
    def _fetch(self) -> tuple[Any, int]:
        """Bring the part file to its full size; returns (sha256 object, size)."""
        meta = self._load_meta()
        offset = self._part_size() if meta else 0
        if not meta:
            self._discard()
        known_total = meta.get("total_bytes") or self.spec.size_bytes
        if known_total:
            self._check_space(known_total - offset, known_total)
        self.report(0, known_total, "starting", "resuming" if offset else "connecting")
        digest = self._hash_part(offset)
        if offset and meta.get("total_bytes") == offset:
            return digest, offset  # complete already (e.g. an install step failed before)
        for _ in range(_MAX_RESTARTS + 1):
            try:
                return self._stream(offset, meta, digest)
            except _Restart as why:
                log.info("Restarting the download of %s from zero: %s", self.spec.id, why)
                self._discard()
                offset, meta, digest = 0, {}, hashlib.sha256()
        raise DownloadError(
            f"The server keeps changing {self.url} while {self.spec.id!r} downloads. Try again "
            "later.", details={"model": self.spec.id, "url": self.url})

    def _stream(self, offset: int, meta: dict[str, Any], digest: Any) -> tuple[Any, int]:
        headers = {"Accept-Encoding": "identity", **hf_auth_headers(self.url)}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if meta.get("etag") and not str(meta["etag"]).startswith("W/"):
                headers["If-Range"] = meta["etag"]
        try:
            with self.client.stream("GET", self.url, headers=headers) as r:
                start, total = self._accept(r, offset, meta)
                if start == 0:
                    digest = hashlib.sha256()
                self._check_space(total - start if total else None, total)
                self._save_meta(r, total)
                self.begin(start)
                self.report(start, total, "downloading",
                            f"resuming at byte {start}" if start else "")
                return digest, self._write_body(r, start, total, digest)
        except httpx.HTTPError as e:
            done = self._part_size()
            raise DownloadError(
                f"Downloading {self.spec.id!r} from {self.url} failed: {type(e).__name__}: {e}. "
                f"{done} bytes are kept; run the same command again to resume.",
                details={"model": self.spec.id, "url": self.url, "done_bytes": done}) from e

    def _accept(self, r: httpx.Response, offset: int, meta: dict[str, Any]) -> tuple[int, int | None]:
        """Check the response; returns (first byte offset of the body, total size or None)."""
        length = _int(r.headers.get("Content-Length"))
        if r.status_code == 206 and offset:
            m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
            if not m or int(m.group(1)) != offset:
                raise _Restart(f"unexpected Content-Range {r.headers.get('Content-Range')!r}")
            total = None if m.group(3) == "*" else int(m.group(3))
            etag = r.headers.get("ETag")
            if meta.get("etag") and etag and etag != meta["etag"]:
                raise _Restart(f"the remote file changed (ETag {meta['etag']} -> {etag})")
            if meta.get("total_bytes") and total and total != meta["total_bytes"]:
                raise _Restart(f"the remote file changed size ({meta['total_bytes']} -> {total})")
            return offset, total
        if r.status_code == 200:
            if offset:
                log.info("The server ignored the Range request for %s; restarting from zero",
                         self.spec.id)
                self._discard()
            return 0, length
        if r.status_code == 416 and offset:
            raise _Restart("the server rejected the resume range")
        raise self._http_error(r)

    def _http_error(self, r: httpx.Response) -> DownloadError:
        status, hint = r.status_code, "Run the same command again to resume."
        if status in (401, 403) and is_hf_url(self.url):
            hint = ("The model may be gated: accept its license on huggingface.co and set "
                    "HF_TOKEN to an access token, then run the same command again.")
        elif status in (401, 403):
            hint = "The server refused access; check the URL and your access rights."
        elif status == 404:
            hint = "The registry entry's url may be out of date; check it."
        return DownloadError(
            f"Downloading {self.spec.id!r} failed: the server answered HTTP {status} for "
            f"{self.url}. {hint}", details={"model": self.spec.id, "url": self.url,
                                            "status": status})

    def _write_body(self, r: httpx.Response, start: int, total: int | None, digest: Any) -> int:
        flags = (os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
                 | (os.O_APPEND if start else os.O_TRUNC))
        done, buf = start, bytearray()
        try:
            fd = os.open(self.part, flags, 0o644)
        except OSError as e:
            raise self._storage(e) from e
        try:
            try:
                for chunk in r.iter_raw():
                    buf += chunk
                    if len(buf) >= self.chunk_size:
                        done = self._flush(fd, buf, digest, done)
                        self.report(done, total)
                    if self.cancel.is_set():
                        done = self._flush(fd, buf, digest, done)
                        raise Cancelled(
                            f"The download of {self.spec.id!r} was cancelled; {done} bytes are "
                            "kept and the same command resumes it.",
                            details={"model": self.spec.id, "done_bytes": done})
            except httpx.HTTPError:
                self._flush(fd, buf, digest, done)  # keep every good byte for the resume
                raise
            done = self._flush(fd, buf, digest, done)
            os.fsync(fd)
        except OSError as e:
            raise self._storage(e) from e
        finally:
            os.close(fd)
        if total is not None and done != total:
            raise DownloadError(
                f"The connection for {self.spec.id!r} ended after {done} of {total} bytes. "
                "Run the same command again to resume.",
                details={"model": self.spec.id, "url": self.url, "done_bytes": done})
        self.report(done, total if total is not None else done)
        return done

    def _flush(self, fd: int, buf: bytearray, digest: Any, done: int) -> int:
        view = memoryview(buf)
        written = 0
        try:
            while written < len(view):
                written += os.write(fd, view[written:])
        finally:
            digest.update(view[:written])
            view.release()
            del buf[:written]
        return done + written

    # -- disk --------------------------------------------------------------------------------
    def _storage(self, e: OSError) -> Exception:
        err = storage_error(e, self.part.parent, f"write the download of {self.spec.id!r}",
                            model=self.spec.id, partial=str(self.part))
        return err if err is not None else e

    def _mkdir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._storage(e) from e

    def _check_space(self, remaining: int | None, total: int | None) -> None:
        """Raise ``InsufficientStorage`` when the download or the install will not fit."""
        checks = [(self.part.parent, remaining)]
        models = self.store.root
        try:
            models.mkdir(parents=True, exist_ok=True)
            if models.stat().st_dev != self.part.parent.stat().st_dev:
                checks.append((models, total))  # the install will copy, not rename
        except OSError as e:
            raise self._storage(e) from e
        for folder, needed in checks:
            if not needed or needed <= 0:
                continue
            free = shutil.disk_usage(folder).free
            if needed > free:
                raise InsufficientStorage(
                    f"Not enough disk space for {self.spec.id!r} in {folder}: it needs "
                    f"{_fmt(needed)} ({needed} bytes) but only {_fmt(free)} ({free} bytes) are "
                    "free. Free some space or set JUPYTER_LLM_HOME to a larger disk, then run the "
                    "same command again.",
                    details={"model": self.spec.id, "folder": str(folder), "needed_bytes": needed,
                             "free_bytes": free})

    def _part_size(self) -> int:
        try:
            return self.part.stat().st_size
        except OSError:
            return 0

    def _hash_part(self, offset: int) -> Any:
        digest = hashlib.sha256()
        if offset:
            with open(self.part, "rb") as f:
                while chunk := f.read(self.chunk_size):
                    digest.update(chunk)
                    if self.cancel.is_set():
                        raise Cancelled(f"The download of {self.spec.id!r} was cancelled.",
                                        details={"model": self.spec.id})
        return digest

    def _load_meta(self) -> dict[str, Any]:
        """The sidecar of a partial file that may be continued, else {}."""
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        size = self._part_size()
        if (not isinstance(meta, dict) or meta.get("url") != self.url or not size
                or meta.get("sha256") != self.expected
                or (meta.get("total_bytes") and size > meta["total_bytes"])):
            return {}
        return meta

    def _save_meta(self, r: httpx.Response, total: int | None) -> None:
        meta = {"url": self.url, "etag": r.headers.get("ETag"),
                "last_modified": r.headers.get("Last-Modified"), "total_bytes": total,
                "sha256": self.expected}
        try:
            self.meta_path.write_text(json.dumps(meta), encoding="utf-8")
        except OSError as e:
            raise self._storage(e) from e

    def _discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the model's download lock (other processes wait; cancel stops the wait)."""
        if _fcntl is None:  # pragma: no cover - Windows
            yield
            return
        lock = self.store.lock_path(self.spec)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise self._storage(e) from e
        try:
            waited = False
            while True:
                try:
                    _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
                    break
                except OSError:
                    if not waited:
                        self.report(0, self.spec.size_bytes, "starting",
                                    "waiting for another process that downloads this model")
                        waited = True
                    if self.cancel.wait(0.2):
                        raise Cancelled(f"The download of {self.spec.id!r} was cancelled.",
                                        details={"model": self.spec.id}) from None
            yield
        finally:
            os.close(fd)  # releases the lock


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _fmt(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1000
    return f"{size:.1f} TB"

