"""Model downloads: streaming HTTP with Range resume, sha256 check before the file becomes
visible, disk-space checks, progress events, cancellation, and one shared transfer per model.

    manager = DownloadManager()                       # files in Store() (the data directory)
    path = manager.download(spec, progress=print)     # blocks; resumes a partial file
    handle = manager.start(spec)                      # non-blocking; handle.subscribe(cb)
    manager.cancel(spec.id)                           # the partial file is kept

A partial file lives in ``downloads/<safe id>/`` with a sidecar that records the URL, ETag
and size it came from, so a resume never appends bytes of a different file.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from ._version import __version__
from .errors import (
    Cancelled,
    DownloadError,
    Forbidden,
    InvalidRequest,
    JupyterLLMError,
    options_error_from_pydantic,
)
from .registry import ModelSpec
from .store import ModelState, Store, safe_id
from .transfer import Transfer, check_url, hf_auth_headers

__all__ = [
    "DownloadProgress", "DownloadHandle", "DownloadManager", "ProgressStatus",
    "spec_from_url", "url_downloads_allowed", "hf_auth_headers",
]

log = logging.getLogger(__name__)

ProgressStatus = Literal["starting", "downloading", "verifying", "done", "error", "cancelled"]
ProgressCallback = Callable[["DownloadProgress"], None]

CHUNK_SIZE = 1 << 20
TIMEOUT = httpx.Timeout(60.0, connect=15.0)
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class DownloadProgress:
    """One progress event of a download (``total_bytes`` is None while unknown)."""

    model_id: str
    done_bytes: int = 0
    total_bytes: int | None = None
    rate_bytes_per_s: float = 0.0
    eta_s: float | None = None
    status: ProgressStatus = "starting"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the event."""
        return asdict(self)


class DownloadHandle:
    """One running (or finished) download, shared by everyone who asked for the model."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.progress = DownloadProgress(model_id)
        self._subscribers: list[ProgressCallback] = []
        self._emit_lock = threading.RLock()
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._path: Path | None = None
        self._error: BaseException | None = None

    @classmethod
    def completed(cls, model_id: str, path: Path, size: int) -> DownloadHandle:
        """A handle for a model that is already installed."""
        handle = cls(model_id)
        handle._emit(DownloadProgress(model_id, size, size, 0.0, 0.0, "done", "already installed"))
        handle._finish(path, None)
        return handle

    @property
    def done(self) -> bool:
        """True once the download finished, failed or was cancelled."""
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested."""
        return self._cancel.is_set()

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        """Call ``callback`` with the latest event now and with every later one; returns an
        unsubscribe function. Callbacks run on the download thread and must be quick."""
        with self._emit_lock:
            self._subscribers.append(callback)
            _safe_call(callback, self.progress)

        def unsubscribe() -> None:
            with self._emit_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def cancel(self) -> None:
        """Ask the transfer to stop (for every waiter); the partial file is kept."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> Path:
        """Block until done and return the installed path, or raise the download's error."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"Download of {self.model_id!r} is still running.")
        if self._error is not None:
            raise self._error
        assert self._path is not None
        return self._path

    def _emit(self, progress: DownloadProgress) -> None:
        with self._emit_lock:
            self.progress = progress
            for callback in list(self._subscribers):
                _safe_call(callback, progress)

    def _finish(self, path: Path | None, error: BaseException | None) -> None:
        self._path, self._error = path, error
        self._done.set()


def _safe_call(callback: ProgressCallback, progress: DownloadProgress) -> None:
    try:
        callback(progress)
    except Exception:  # a broken progress consumer must not break the download
        log.exception("Download progress callback failed")


class _Reporter:
    """Turns byte counts into throttled progress events (≤ 1 per ``interval`` plus changes)."""

    def __init__(self, handle: DownloadHandle, interval: float) -> None:
        self.handle, self.interval = handle, interval
        self.last_emit = 0.0
        self.session_start = time.monotonic()
        self.session_offset = 0

    def begin(self, offset: int) -> None:
        self.session_start, self.session_offset = time.monotonic(), offset

    def update(self, done: int, total: int | None, status: ProgressStatus = "downloading",
               message: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        prev = self.handle.progress
        changed = status != prev.status or message != prev.message or done == total
        if not (force or changed or now - self.last_emit >= self.interval):
            return
        elapsed = now - self.session_start
        rate = (done - self.session_offset) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if total is not None and rate > 0 else None
        if status in ("verifying", "done"):
            eta = 0.0
        self.last_emit = now
        self.handle._emit(DownloadProgress(
            self.handle.model_id, done, total, max(rate, 0.0), eta, status, message))


def url_downloads_allowed(flag: bool | None = None) -> bool:
    """True when URL downloads are enabled by ``flag`` or ``JUPYTER_LLM_ALLOW_URL_DOWNLOADS=1``."""
    env = os.environ.get("JUPYTER_LLM_ALLOW_URL_DOWNLOADS", "").strip().lower() in _TRUTHY
    return bool(flag) or env


def spec_from_url(url: str, *, model_id: str | None = None, sha256: str | None = None,
                  size_bytes: int | None = None) -> ModelSpec:
    """A ``ModelSpec`` for a GGUF file at ``url`` (id ``url:<file name>`` unless given)."""
    check_url(url, model_id or url)
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "model.gguf"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model.gguf"
    try:
        return ModelSpec(id=model_id or f"url:{name}", name=name, backend="llama_cpp", url=url,
                         filename=name, sha256=sha256, size_bytes=size_bytes)
    except ValidationError as e:
        raise options_error_from_pydantic(e, what="download field") from None


class DownloadManager:
    """Runs downloads in background threads, one transfer per model id, with shared progress."""

    def __init__(self, store: Store | None = None, *, transport: httpx.BaseTransport | None = None,
                 timeout: httpx.Timeout | float = TIMEOUT, chunk_size: int = CHUNK_SIZE,
                 progress_interval: float = 0.1) -> None:
        self.store = store if store is not None else Store()
        self.transport, self.timeout = transport, timeout
        self.chunk_size, self.progress_interval = chunk_size, progress_interval
        self._lock = threading.Lock()
        self._active: dict[str, DownloadHandle] = {}

    def start(self, spec: ModelSpec) -> DownloadHandle:
        """Start downloading ``spec`` (or join the running download) and return its handle."""
        if spec.is_remote:
            raise InvalidRequest(
                f"Model {spec.id!r} runs behind an API ({spec.backend}); there is nothing to "
                "download.", details={"model": spec.id})
        url = spec.download_url()
        if not url:
            raise DownloadError(
                f"Model {spec.id!r} has no download url. Add a url to its registry entry, or "
                "install a local file with `Store.install_file`.", details={"model": spec.id})
        check_url(url, spec.id)
        with self._lock:
            handle = self._active.get(spec.id)
            if handle is not None:
                return handle
            path = self.store.installed_path(spec)
            if path is not None:
                return DownloadHandle.completed(spec.id, path, path.stat().st_size)
            handle = self._active[spec.id] = DownloadHandle(spec.id)
        thread = threading.Thread(target=self._run, args=(spec, url, handle), daemon=True,
                                  name=f"jupyter-llm-download-{safe_id(spec.id)}")
        thread.start()
        return handle

    def download(self, spec: ModelSpec, *, progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None) -> Path:
        """Download ``spec`` (resuming a partial file), verify it, install it, return its path.

        Setting ``cancel`` stops the shared transfer for every waiter and raises ``Cancelled``.
        """
        handle = self.start(spec)
        unsubscribe = handle.subscribe(progress) if progress is not None else None
        try:
            while not handle._done.wait(0.05 if cancel is not None else 0.5):
                if cancel is not None and cancel.is_set():
                    handle.cancel()
        except KeyboardInterrupt:
            handle.cancel()
            handle._done.wait(10)
            raise
        finally:
            if unsubscribe is not None:
                unsubscribe()
        return handle.wait()

    def download_url(self, url: str, *, allow_url_downloads: bool | None = None,
                     model_id: str | None = None, sha256: str | None = None,
                     progress: ProgressCallback | None = None,
                     cancel: threading.Event | None = None) -> Path:
        """Download a file that is not in the registry; refused unless URL downloads are enabled."""
        if not url_downloads_allowed(allow_url_downloads):
            raise Forbidden(
                "URL downloads are disabled; enable c.JupyterLLM.allow_url_downloads = True or "
                "JUPYTER_LLM_ALLOW_URL_DOWNLOADS=1, or add the model to a registry file.",
                details={"url": url})
        spec = spec_from_url(url, model_id=model_id, sha256=sha256)
        return self.download(spec, progress=progress, cancel=cancel)

    def cancel(self, model_id: str) -> bool:
        """Cancel the running download of ``model_id``; False when none runs."""
        with self._lock:
            handle = self._active.get(model_id)
        if handle is None:
            return False
        handle.cancel()
        return True

    def handle(self, model_id: str) -> DownloadHandle | None:
        """The running download of ``model_id``, if any."""
        with self._lock:
            return self._active.get(model_id)

    def active(self) -> list[DownloadProgress]:
        """The latest progress event of every running download."""
        with self._lock:
            return [h.progress for h in self._active.values()]

    def state(self, spec: ModelSpec) -> ModelState:
        """``installed``, ``downloading`` (here or in another process) or ``available``."""
        if self.handle(spec.id) is not None and not self.store.is_installed(spec):
            return "downloading"
        return self.store.state(spec)

    def remove(self, spec_or_id: ModelSpec | str, *, timeout: float = 10.0) -> bool:
        """Cancel a running download of the model, then delete its files (see ``Store.remove``)."""
        model_id = spec_or_id if isinstance(spec_or_id, str) else spec_or_id.id
        handle = self.handle(model_id)
        if handle is not None:
            handle.cancel()
            handle._done.wait(timeout)
        return self.store.remove(spec_or_id)

    def _run(self, spec: ModelSpec, url: str, handle: DownloadHandle) -> None:
        path: Path | None = None
        error: BaseException | None = None
        try:
            reporter = _Reporter(handle, self.progress_interval)
            with httpx.Client(transport=self.transport, timeout=self.timeout,
                              follow_redirects=True,
                              headers={"User-Agent": f"jupyter-llm/{__version__}"}) as client:
                path = Transfer(spec, url, self.store, client=client, report=reporter.update,
                                begin=reporter.begin, cancel=handle._cancel,
                                chunk_size=self.chunk_size).run()
        except JupyterLLMError as e:
            error = e
        except Exception as e:  # never lose an error in a background thread
            log.exception("Download of %s failed unexpectedly", spec.id)
            error = DownloadError(
                f"Download of {spec.id!r} failed unexpectedly: {type(e).__name__}: {e}. Run the "
                "same command again to resume.", details={"model": spec.id, "url": url})
            error.__cause__ = e
        if error is not None:
            status: ProgressStatus = "cancelled" if isinstance(error, Cancelled) else "error"
            prev = handle.progress
            handle._emit(DownloadProgress(spec.id, prev.done_bytes, prev.total_bytes, 0.0, None,
                                          status, getattr(error, "message", str(error))))
        with self._lock:
            if self._active.get(spec.id) is handle:
                del self._active[spec.id]
        handle._finish(path, error)
