"""Test helpers shipped with jupyter_llm: tiny GGUF models for tests, benchmarks and notebooks.

Names are imported lazily so ``import jupyter_llm.testing`` costs nothing and
``python -m jupyter_llm.testing.tiny_gguf`` runs without a double-import warning.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BROKEN_KINDS",
    "CHATML_TEMPLATE",
    "SPECIAL_TOKENS",
    "sha256_file",
    "tiny_vocab",
    "write_broken_gguf",
    "write_tiny_gguf",
]


def __getattr__(name: str) -> Any:
    """Import the public names of ``tiny_gguf`` on first use."""
    if name in __all__:
        return getattr(importlib.import_module(".tiny_gguf", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the lazily exported names."""
    return sorted(__all__)
