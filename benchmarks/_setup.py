"""Shared set-up for the server benchmarks: a scratch data directory with one generated GGUF
installed under the id ``bench`` and a registry file naming it."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so benchmarks can use tests.fixtures.server.start_serve
    sys.path.insert(0, str(ROOT))


def install_bench_model(prefix: str, *, n_embd: int, n_layer: int,
                        context_length: int, n_head: int = 8,
                        quantize: str | None = None) -> tuple[Path, Path, Path]:
    """Write and install a generated model; return (work folder, GGUF path, registry path).

    Sets ``JUPYTER_LLM_HOME`` (inside the work folder) and ``GGML_NO_BACKTRACE`` for this
    process and the servers it starts.
    """
    from jupyter_llm.registry import ModelSpec
    from jupyter_llm.store import Store
    from jupyter_llm.testing.tiny_gguf import write_tiny_gguf

    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["JUPYTER_LLM_HOME"] = str(work / "home")
    os.environ["GGML_NO_BACKTRACE"] = "1"
    gguf = write_tiny_gguf(work / "bench.gguf", n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                           context_length=context_length, quantize=quantize)
    spec = {"id": "bench", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
            "filename": gguf.name, "context_length": context_length}
    registry = work / "registry.json"
    registry.write_text(json.dumps({"models": [spec]}))
    Store().install_file(ModelSpec.model_validate(spec), gguf, verified=True)
    return work, gguf, registry


def install_model_file(prefix: str, gguf: Path) -> tuple[Path, Path, Path]:
    """A scratch data directory and a registry naming an existing GGUF (by path) ``bench``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["JUPYTER_LLM_HOME"] = str(work / "home")
    os.environ["GGML_NO_BACKTRACE"] = "1"
    spec = {"id": "bench", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
            "path": str(gguf)}
    registry = work / "registry.json"
    registry.write_text(json.dumps({"models": [spec]}))
    return work, gguf, registry
