"""The pipe protocol between the host and its workers: length-prefixed pickled tuples.

Each frame is a 4-byte little-endian length and a pickle of one tuple. Both ends are
our own code, started by us, so pickle is safe here (no untrusted peer).

    parent → child   ("load", rid, kwargs)   ("exec", rid, Request)   ("embed", rid, texts)
                     ("cancel", rid)         ("quit",)
    child → parent   ("ok", rid, value)      ("tok", rid, text)       ("err", rid, error)
                     ("fin", rid, reason, usage[, warnings[, batch stats]])
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

from .. import errors

__all__ = ["write_frame", "read_frame", "error_to_wire", "error_from_wire"]

_HEADER = struct.Struct("<I")


def write_frame(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    """Write one message (the caller serialises writers) and flush it."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """Read one message; None at end of file (the other side is gone)."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exact(stream, size)
    return None if body is None else pickle.loads(body)


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    """``size`` bytes (looping over short reads of unbuffered pipes); None at end of file."""
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """A picklable description of an exception raised in a worker."""
    if isinstance(exc, errors.JupyterLLMError):
        return {"type": type(exc).__name__, "message": exc.message, "details": exc.details}
    return {"type": None, "message": f"{type(exc).__name__}: {exc}", "details": None}


def error_from_wire(data: dict[str, Any], *, model_id: str) -> errors.JupyterLLMError:
    """Rebuild the worker's error in the parent, as the same class when it is one of ours."""
    cls = getattr(errors, data.get("type") or "", None)
    if isinstance(cls, type) and issubclass(cls, errors.JupyterLLMError):
        return cls(data["message"], details=data.get("details"))
    return errors.BackendError(
        f"The worker of model {model_id!r} failed: {data['message']}",
        details={"model": model_id})
