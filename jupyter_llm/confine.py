"""The one confinement helper: every file a request names, or that a folder walk reaches,
must resolve (symlinks followed, ``..`` collapsed) inside its root, or it is refused.

Used by ingest (named paths and files reached through symlinks inside folders), citations,
downloads and the model store, and by model references given as paths over HTTP.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import Forbidden, InvalidRequest

__all__ = ["confine", "is_inside", "check_path_text", "safe_file_name", "escape_id",
           "unescape_id"]

_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


def check_path_text(text: str | os.PathLike[str], *, field: str = "path") -> str:
    """The path as text; a NUL byte, a lone surrogate or an empty path is a 400."""
    raw = os.fspath(text)
    if not isinstance(raw, str):
        raw = os.fsdecode(raw)
    if not raw or "\x00" in raw:
        raise InvalidRequest(f"{field} must be a non-empty path without NUL bytes.",
                             details={"field": field})
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{field} is not valid Unicode (it holds a lone surrogate).",
                             details={"field": field}) from None
    return raw


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when ``path`` (resolved, symlinks followed) lies in ``root`` (resolved).

    The comparison is exact (case-sensitive): on a case-insensitive disk a differently
    cased spelling of an inside path is refused, never an outside one accepted.
    """
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return False


def confine(path: str | os.PathLike[str], root: str | os.PathLike[str], *,
            what: str = "path", shown: str | None = None) -> Path:
    """Resolve ``path`` (relative to ``root``, or absolute) and return it when inside ``root``.

    Raises ``InvalidRequest`` (400) for a NUL byte or invalid text, ``Forbidden`` (403) for
    anything that resolves outside ``root`` (through ``..``, an absolute path or a symlink).
    The message never says whether the outside path exists.
    """
    text = check_path_text(path, field=what)
    base = Path(root).expanduser().resolve()
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise Forbidden(f"{what} {shown or text!r} cannot be resolved ({type(e).__name__}).",
                        details={"path": shown or text}) from None
    if not is_inside(resolved, base):
        raise Forbidden(
            f"{what} {shown or text!r} is outside the folder this server may read; "
            "give a path inside it (relative to it).", details={"path": shown or text})
    return resolved


def safe_file_name(name: str) -> bool:
    """True for a plain file name: no folder part, no ``..``, not hidden, no NUL or control."""
    return (bool(name) and name not in (".", "..") and not name.startswith(".")
            and "/" not in name and "\\" not in name and "\x00" not in name
            and not any(ord(c) < 32 for c in name) and len(name.encode("utf-8", "replace")) <= 255
            and not _WINDOWS_RESERVED.match(name))


_ID_SAFE = re.compile(r"[A-Za-z0-9.\-]")


def escape_id(model_id: str) -> str:
    """A reversible folder name for a model id: characters other than letters, digits,
    ``.`` and ``-`` become ``_XX`` (hex), so ``ns/slash`` and ``ns_slash`` never collide."""
    out = "".join(c if _ID_SAFE.fullmatch(c) else "".join(f"_{b:02x}" for b in c.encode())
                  for c in model_id)
    return "_2e" + out[1:] if out.startswith(".") else out


def unescape_id(name: str) -> str:
    """The model id of a folder name made by :func:`escape_id`."""
    data = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "_" and re.fullmatch(r"[0-9a-f]{2}", name[i + 1:i + 3]):
            data.append(int(name[i + 1:i + 3], 16))
            i += 3
        else:
            data.extend(name[i].encode())
            i += 1
    return data.decode("utf-8", "replace")
