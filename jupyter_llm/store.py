"""Installed model files: one folder per model with the file and a ``manifest.json``.

Layout (under the data directory)::

    models/<safe id>/<spec.file_name>          the installed file
    models/<safe id>/manifest.json             id, file, sha256, sha256_verified, size_bytes,
                                               source_url, installed_at
    downloads/<safe id>/<file_name>.part       a partial download, kept for a resume
    downloads/<safe id>/<file_name>.part.json  where the partial came from (URL, ETag, size)
    downloads/<safe id>/.lock                  held (flock) while a download runs

The manifest is written last, so a model is installed exactly when its manifest exists
and names a file of the recorded size.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from . import paths
from .confine import escape_id, is_inside, safe_file_name
from .errors import ChecksumMismatch, Conflict, InsufficientStorage, RegistryError, hint
from .registry import ModelSpec

__all__ = ["Store", "ModelState", "safe_id", "sha256_file", "storage_error", "is_locked"]

log = logging.getLogger(__name__)

ModelState = Literal["available", "downloading", "installed"]

MANIFEST = "manifest.json"
LOCK = ".lock"
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                   errno.EEXIST, errno.EISDIR, getattr(errno, "EDQUOT", errno.ENOSPC)}

try:  # POSIX advisory locks; on Windows downloads are deduplicated within one process only
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None


def safe_id(model_id: str) -> str:
    """The folder name of a model id, escaped reversibly (``ns/slash`` -> ``ns_2fslash``,
    ``ns_slash`` -> ``ns_5fslash``), so two ids never share a folder."""
    return escape_id(model_id)


def legacy_id(model_id: str) -> str:
    """The folder name that releases before 0.2 used (``/`` and ``:`` as ``_``; collides)."""
    return model_id.replace("/", "_").replace(":", "_")


def sha256_file(path: Path, *, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def storage_error(exc: OSError, folder: Path, action: str, **details: Any) -> InsufficientStorage | None:
    """Map a disk-full / read-only / permission / not-a-folder ``OSError`` to
    ``InsufficientStorage`` with a message that says how to fix it; ``None`` for other errors."""
    if exc.errno not in _STORAGE_ERRNOS:
        return None
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a file is in the way where a folder should be",
        errno.EEXIST: "a file is in the way where a folder should be",
        errno.EISDIR: "a folder is in the way where a file should be",
    }.get(exc.errno, "the disk quota is exceeded")
    return InsufficientStorage(
        f"Cannot {action} in {folder}: {reason} ({exc.strerror}). Free some space or make "
        f"{folder} a writable folder (or set JUPYTER_LLM_HOME to another data directory), "
        "then run the same command again; a partial download is kept and resumes.",
        details={"folder": str(folder), "errno": exc.errno, **details})


def is_locked(lock_path: Path) -> bool:
    """True when some process (this one included) holds the download lock ``lock_path``."""
    if _fcntl is None or not lock_path.is_file():
        return False
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return False
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        _fcntl.flock(fd, _fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Store:
    """The installed-model store: paths, manifests, atomic installs and removal."""

    def __init__(self, root: Path | None = None, downloads_root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.models_dir()
        if downloads_root is not None:
            self.downloads_root = Path(downloads_root)
        elif root is not None:
            self.downloads_root = self.root.parent / "downloads"
        else:
            self.downloads_root = paths.downloads_dir()

    # -- paths ---------------------------------------------------------------------------
    def dir_for(self, spec_or_id: ModelSpec | str) -> Path:
        """The folder of one installed model (an install in the old folder name moves here)."""
        model_id = _model_id(spec_or_id)
        folder = self.root / safe_id(model_id)
        if not folder.exists():
            self._migrate(model_id, folder)
        return folder

    def _migrate(self, model_id: str, folder: Path) -> None:
        """Move an install from its legacy folder, when that folder's manifest names this id."""
        old = self.root / legacy_id(model_id)
        if old == folder or not old.is_dir() or old.is_symlink():
            return
        try:
            owner = json.loads((old / MANIFEST).read_text(encoding="utf-8")).get("id")
        except (OSError, ValueError, AttributeError):
            return
        if owner != model_id:
            return  # another id's folder (``ns_slash`` is not ``ns/slash``)
        try:
            old.rename(folder)
            log.info("Moved model %s from %s to %s", model_id, old.name, folder.name)
        except OSError:  # a concurrent migration won, or the folder appeared meanwhile
            pass

    def path_for(self, spec: ModelSpec) -> Path:
        """Where the model's file is (or will be) installed; always inside the model folder."""
        folder = self.dir_for(spec)
        path = folder / _file_name(spec)
        if not is_inside(path, self.root):  # the model folder itself is a symlink out
            raise RegistryError(f"The folder of model {spec.id!r} ({folder}) leads outside "
                                f"{self.root}; remove it and pull the model again.",
                                details={"model": spec.id})
        return path

    def manifest_path(self, spec_or_id: ModelSpec | str) -> Path:
        """The ``manifest.json`` beside the installed file."""
        return self.dir_for(spec_or_id) / MANIFEST

    def partial_dir(self, spec_or_id: ModelSpec | str) -> Path:
        """The folder of a model's partial download."""
        return self.downloads_root / safe_id(_model_id(spec_or_id))

    def part_path(self, spec: ModelSpec) -> Path:
        """The partial-download file (``<file_name>.part``)."""
        return self.partial_dir(spec) / (_file_name(spec) + ".part")

    def part_meta_path(self, spec: ModelSpec) -> Path:
        """The sidecar that records where the partial file came from (URL, ETag, size)."""
        return self.partial_dir(spec) / (_file_name(spec) + ".part.json")

    def lock_path(self, spec_or_id: ModelSpec | str) -> Path:
        """The lock file held while a download of this model runs."""
        return self.partial_dir(spec_or_id) / LOCK

    # -- queries -------------------------------------------------------------------------
    def manifest(self, spec_or_id: ModelSpec | str) -> dict[str, Any] | None:
        """The manifest of an installed model, or ``None`` when not (fully) installed."""
        path = self.manifest_path(spec_or_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("file"), str) \
                or not safe_file_name(data["file"]):
            return None
        file = path.parent / data["file"]
        try:
            if file.stat().st_size != data.get("size_bytes"):
                return None
        except OSError:
            return None
        return data

    def is_installed(self, spec: ModelSpec) -> bool:
        """True for remote models and for local models whose file and manifest are in place."""
        return spec.is_remote or self.manifest(spec) is not None

    def installed_path(self, spec: ModelSpec) -> Path | None:
        """The file of an installed local model (even if ``file_name`` changed since), else None."""
        data = self.manifest(spec)
        return None if data is None else self.dir_for(spec) / data["file"]

    def installed_ids(self) -> set[str]:
        """The ids of every installed local model."""
        found: set[str] = set()
        if not self.root.is_dir():
            return found
        for manifest in self.root.glob(f"*/{MANIFEST}"):
            try:
                model_id = json.loads(manifest.read_text(encoding="utf-8")).get("id")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(model_id, str) and self.manifest(model_id) is not None:
                found.add(model_id)
        return found

    def installed(self) -> list[dict[str, Any]]:
        """The manifests of every installed local model, sorted by id."""
        return [m for i in sorted(self.installed_ids()) if (m := self.manifest(i)) is not None]

    def partial_bytes(self, spec: ModelSpec) -> int:
        """How many bytes of a partial download are on disk (0 when none)."""
        try:
            return self.part_path(spec).stat().st_size
        except OSError:
            return 0

    def is_downloading(self, spec_or_id: ModelSpec | str) -> bool:
        """True while a download of this model runs in any process on this machine."""
        return is_locked(self.lock_path(spec_or_id))

    def state(self, spec: ModelSpec) -> ModelState:
        """``installed`` (remote models always), ``downloading`` (a live download) or ``available``."""
        if self.is_installed(spec):
            return "installed"
        if self.is_downloading(spec):
            return "downloading"
        return "available"

    # -- changes -------------------------------------------------------------------------
    def install_file(self, spec: ModelSpec, src: Path, sha256: str | None = None,
                     verified: bool | None = None, *, source_url: str | None = None,
                     move: bool = False) -> Path:
        """Install ``src`` as the file of ``spec`` atomically and write its manifest.

        ``sha256`` is computed when not given; ``verified`` defaults to "matches the registry's
        sha256". A known registry sha256 that differs raises ``ChecksumMismatch`` and installs
        nothing. ``move=True`` renames ``src`` into place (downloads); otherwise it is copied.
        """
        src = Path(src)
        digest = (sha256 or sha256_file(src)).lower()
        expected = spec.sha256.lower() if spec.sha256 else None
        if expected and digest != expected:
            raise ChecksumMismatch(
                f"The file for {spec.id!r} has sha256 {digest}, but the registry expects "
                f"{expected}. Nothing was installed; check that this is the right file or fix "
                "the registry entry's sha256.",
                details={"model": spec.id, "expected": expected, "got": digest})
        if verified is None:
            verified = expected is not None
        folder = self.dir_for(spec)
        dest = folder / spec.file_name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            old = self.manifest_path(spec)
            old.unlink(missing_ok=True)  # not installed while the file is being replaced
            if move:
                try:
                    os.replace(src, dest)
                except OSError as e:
                    if e.errno != errno.EXDEV:
                        raise
                    self._copy_into(src, dest)
                    src.unlink(missing_ok=True)
            else:
                self._copy_into(src, dest)
            size = dest.stat().st_size
            for stale in folder.iterdir():  # files of an earlier install under another name
                if stale.name not in (dest.name, MANIFEST) and not stale.name.startswith(".tmp-"):
                    _remove_path(stale)
            _write_json_atomic(old, {
                "id": spec.id,
                "file": dest.name,
                "sha256": digest,
                "sha256_verified": bool(verified),
                "size_bytes": size,
                "source_url": source_url,
                "installed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            })
            _fsync_dir(folder)
        except OSError as e:
            err = storage_error(e, folder, f"install {spec.id!r}", model=spec.id)
            if err is None:
                raise
            raise err from e
        log.info("Installed %s at %s (sha256 %s%s)", spec.id, dest, digest,
                 "" if verified else ", not verified against the registry")
        return dest

    def remove(self, spec_or_id: ModelSpec | str) -> bool:
        """Delete an installed model and any partial download; True when something was removed.

        Raises ``Conflict`` while a download of the model runs (cancel it first).
        """
        model_id = _model_id(spec_or_id)
        if self.is_downloading(model_id):
            raise Conflict(
                f"Model {model_id!r} is being downloaded right now. Cancel the download first, "
                "then remove it.", details=hint("cancel_pull", model=model_id))
        removed = False
        for folder in (self.dir_for(model_id), self.partial_dir(model_id)):
            if folder.exists():
                _remove_path(folder)
                removed = True
        if removed:
            log.info("Removed model %s", model_id)
        return removed

    @staticmethod
    def _copy_into(src: Path, dest: Path) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _file_name(spec: ModelSpec) -> str:
    """The spec's file name, refused unless it is a plain name (never a path)."""
    name = spec.file_name
    if not safe_file_name(name):
        raise RegistryError(
            f"Model {spec.id!r} has the file name {name!r}, which is not a plain file name."
            f" Fix `filename` in {spec.source or 'its registry entry'}.",
            details={"model": spec.id, "filename": name})
    return name


def _model_id(spec_or_id: ModelSpec | str) -> str:
    return spec_or_id if isinstance(spec_or_id, str) else spec_or_id.id


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
