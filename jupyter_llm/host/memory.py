"""Memory for loaded models: the budget, per-model estimates, LRU eviction and the reaper.

A model's need is the registry's ``ram_bytes`` when given, else the file size (weights
are mapped into memory) plus its KV cache, computed from the GGUF header when it can be
read: ``2 (K and V) * n_layer * n_ctx * n_embd * n_head_kv / n_head * 2 bytes (f16)``,
once per batch slot (``parallel``: each slot holds a context of its own).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models import Model
    from ..registry import ModelSpec
    from .scheduler import ModelQueue

__all__ = ["Resident", "default_budget_bytes", "estimate_model_bytes", "read_gguf_dims", "process_rss",
           "Candidate", "choose_victims", "Reaper", "kv_cache_bytes", "default_parallel"]

log = logging.getLogger(__name__)

MB = 1024 * 1024
BUDGET_FRACTION = 0.7
OVERHEAD_BYTES = 64 * MB  # a worker's Python, llama.cpp buffers and compute graph
MAX_DEFAULT_PARALLEL = 8  # batch slots a model gets unless configured
KV_SHARE = 0.25  # the slots' KV cache may take this share of the budget by default


def available_memory_bytes() -> int:
    """Memory available to new processes now (psutil, else the OS's page counts)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a dependency of the llama extra
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 8 * 1024 * MB


def default_budget_bytes(memory_budget_mb: int | None) -> int:
    """The configured budget, or 70% of the memory available now."""
    if memory_budget_mb:
        return memory_budget_mb * MB
    return int(available_memory_bytes() * BUDGET_FRACTION)


def process_rss(pid: int | None) -> int | None:
    """Resident memory of a process in bytes, or None when unknown."""
    if pid is None:
        return None
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # noqa: BLE001 - gone, no permission, or no psutil
        return None


# -- estimates ---------------------------------------------------------------------------
def read_gguf_dims(path: str | Path) -> dict[str, int]:
    """The architecture sizes from a GGUF header, keyed without the architecture prefix."""
    from ..errors import ModelLoadError
    from ..gguf_meta import read_gguf_metadata

    try:
        meta = read_gguf_metadata(path)
    except (ModelLoadError, OSError):
        return {}
    arch = meta.get("general.architecture")
    prefix = f"{arch}." if isinstance(arch, str) else ""
    return {key[len(prefix):]: value for key, value in meta.items()
            if prefix and key.startswith(prefix) and isinstance(value, int)}


def kv_cache_bytes(path: str | Path | None, *, n_ctx: int | None = None,
                   size: int | None = None) -> int:
    """Bytes of one sequence's KV cache (f16) from the GGUF header; a share of the file
    size (``size``) when the header cannot tell."""
    dims = read_gguf_dims(path) if path else {}
    ctx = n_ctx or min(dims.get("context_length") or 4096, 4096)
    if "block_count" in dims and "embedding_length" in dims:
        heads = dims.get("attention.head_count") or 1
        kv_heads = dims.get("attention.head_count_kv") or heads
        return 2 * dims["block_count"] * ctx * dims["embedding_length"] * kv_heads // heads * 2
    if size is None:
        try:
            size = os.path.getsize(path) if path else 0
        except OSError:
            size = 0
    return size // 8  # no header: a rough share of the weights


def estimate_model_bytes(path: str | Path | None, *, ram_bytes: int | None = None,
                         n_ctx: int | None = None, parallel: int = 1) -> int:
    """Bytes a loaded model needs: ``ram_bytes`` (one context), else file + KV cache +
    overhead; each further batch slot adds a KV cache."""
    kv = kv_cache_bytes(path, n_ctx=n_ctx)
    if ram_bytes:
        return ram_bytes + (parallel - 1) * kv
    try:
        size = os.path.getsize(path) if path else 0
    except OSError:
        size = 0
    return size + parallel * kv + OVERHEAD_BYTES


def default_parallel(path: str | Path | None, *, n_ctx: int | None, budget: int,
                     ram_bytes: int | None = None) -> int:
    """Batch slots for a model when none are configured: up to ``MAX_DEFAULT_PARALLEL``,
    as many as keep the slots' KV cache within ``KV_SHARE`` of the budget and the whole
    model within the budget; at least 1."""
    kv = max(1, kv_cache_bytes(path, n_ctx=n_ctx))
    parallel = max(1, min(MAX_DEFAULT_PARALLEL, int(budget * KV_SHARE // kv)))
    while parallel > 1 and estimate_model_bytes(path, ram_bytes=ram_bytes, n_ctx=n_ctx,
                                                parallel=parallel) > budget:
        parallel -= 1
    return parallel


@dataclass
class Resident:
    """A local model in memory, with what eviction, the reaper and ``ps`` need."""

    spec: ModelSpec
    model: Model
    bytes: int
    n_ctx: int | None
    keep_alive: float | None  # idle seconds before unloading; None: never
    kv_bytes: int = 0  # the KV cache of all batch slots (estimated)
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)

    def expires_at(self, queue: ModelQueue | None) -> float | None:
        """When the reaper unloads this model (None while busy or kept for ever)."""
        if self.keep_alive is None or (queue is not None and not queue.idle):
            return None
        return max(self.last_used, queue.idle_since if queue else 0.0) + self.keep_alive

    def ps_entry(self, queue: ModelQueue | None) -> dict[str, Any]:
        """The ``ps`` row: worker pid and resident memory, queue, last use, expiry, context."""
        pid = getattr(self.model, "pid", None)
        return {
            "id": self.spec.id, "backend": self.model.backend, "pid": pid,
            "memory_bytes": process_rss(pid), "estimated_bytes": self.bytes,
            "queue_depth": queue.depth if queue else 0, "active": queue.active if queue else 0,
            "last_used": self.last_used, "loaded_at": self.loaded_at,
            "expires_at": self.expires_at(queue), "keep_alive": self.keep_alive,
            "n_ctx": self.n_ctx, **self._batch_entry(),
        }

    def _batch_entry(self) -> dict[str, Any]:
        """Batch slots, their KV cache and the prefix cache's counters."""
        stats = getattr(self.model, "batch_stats", None)
        stats = stats() if callable(stats) else None
        return {"parallel": getattr(self.model, "parallel", 1), "kv_cache_bytes": self.kv_bytes,
                "prefix_cache": (stats or {}).get("prefix_cache")}


# -- eviction ----------------------------------------------------------------------------
@dataclass
class Candidate:
    """A loaded model as eviction sees it."""

    model_id: str
    bytes: int
    last_used: float
    idle: bool


def choose_victims(loaded: Iterable[Candidate], *, need: int, budget: int,
                   max_models: int, reserved: int = 0, reserved_count: int = 0,
                   ) -> list[str] | None:
    """The least recently used idle models to unload so ``need`` more bytes fit.

    ``reserved`` bytes and ``reserved_count`` models are loads in progress. Returns None
    when even unloading every idle model would not make room.
    """
    loaded = list(loaded)
    used = sum(c.bytes for c in loaded) + reserved
    count = len(loaded) + reserved_count
    victims: list[str] = []
    for cand in sorted((c for c in loaded if c.idle), key=lambda c: c.last_used):
        if used + need <= budget and count + 1 <= max_models:
            break
        victims.append(cand.model_id)
        used -= cand.bytes
        count -= 1
    if used + need <= budget and count + 1 <= max_models:
        return victims
    return None


class Reaper(threading.Thread):
    """Unloads idle models whose keep-alive ran out; ``poke()`` after any change."""

    def __init__(self, reap: Callable[[float], float | None]) -> None:
        super().__init__(name="jupyter-llm-reaper", daemon=True)
        self._reap = reap
        self._wake = threading.Event()
        self._stopped = False

    def run(self) -> None:
        """Reap, then sleep until the next expiry (or a poke)."""
        while not self._stopped:
            try:
                next_at = self._reap(time.time())
            except Exception:  # noqa: BLE001 - the reaper must survive
                log.exception("keep-alive reaper failed")
                next_at = None
            timeout = 60.0 if next_at is None else max(0.01, min(60.0, next_at - time.time()))
            self._wake.wait(timeout)
            self._wake.clear()

    def poke(self) -> None:
        """Re-check now (a request ended or a model was loaded)."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread."""
        self._stopped = True
        self._wake.set()
