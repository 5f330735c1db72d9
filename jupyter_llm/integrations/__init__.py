"""Integrations with other frameworks; each imports its framework only when used.

    from jupyter_llm.integrations.langchain import ChatJupyterLLM, JupyterLLMRetriever
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChatJupyterLLM", "JupyterLLMRetriever"]


def __getattr__(name: str) -> Any:
    """Import the LangChain classes (and langchain-core) on first use."""
    if name in __all__:
        from . import langchain

        return getattr(langchain, name)
    raise AttributeError(f"module 'jupyter_llm.integrations' has no attribute {name!r}")
