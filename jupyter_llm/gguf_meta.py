"""A small, dependency-free reader of GGUF header metadata (scalars and strings).

It is a cheap pre-check before llama.cpp sees a file: it rejects empty, truncated and
foreign files with a clear error, and tells the trained context length without loading.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ModelLoadError

__all__ = ["read_gguf_metadata", "GGUF_MAGIC"]

GGUF_MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 64 << 20


class _Truncated(Exception):
    pass


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Truncated
    return data


def _read_string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(f, 8))
    if length > _MAX_STRING:
        raise ValueError(f"string of {length} bytes")
    return _read(f, length).decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]
    if vtype == _STRING:
        return _read_string(f)
    if vtype == _ARRAY:
        (item_type,) = struct.unpack("<I", _read(f, 4))
        (count,) = struct.unpack("<Q", _read(f, 8))
        if item_type in _SCALARS:  # skip numeric arrays without decoding them
            f.seek(count * struct.calcsize(_SCALARS[item_type]), 1)
        else:
            for _ in range(count):
                _read_value(f, item_type)
        return {"array_of": item_type, "length": count}
    raise ValueError(f"unknown value type {vtype}")


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """Return the header key/values of a GGUF file (arrays summarised by type and length).

    Raises ``ModelLoadError`` naming the file when it is empty, truncated or not GGUF.
    """
    path = Path(path)
    hint = "Delete it and download it again."
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            if magic != GGUF_MAGIC:
                what = "is empty" if not magic else "is not a GGUF file (wrong magic bytes)"
                raise ModelLoadError(f"{path.name} {what}. {hint}", details={"path": str(path)})
            version, _tensors, kv_count = struct.unpack("<IQQ", _read(f, 20))
            meta: dict[str, Any] = {"gguf.version": version}
            for _ in range(kv_count):
                key = _read_string(f)
                (vtype,) = struct.unpack("<I", _read(f, 4))
                meta[key] = _read_value(f, vtype)
            return meta
    except _Truncated:
        raise ModelLoadError(f"{path.name} is truncated (its header ends early). {hint}",
                             details={"path": str(path)}) from None
    except (ValueError, UnicodeDecodeError, struct.error) as e:
        raise ModelLoadError(f"{path.name} has a corrupt GGUF header ({e}). {hint}",
                             details={"path": str(path)}) from None


def trained_context_length(meta: dict[str, Any]) -> int | None:
    """The ``<arch>.context_length`` of a model's metadata, if present."""
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length") if arch else None
    return int(value) if isinstance(value, int) and value > 0 else None
