"""Where jupyter_llm keeps its data: models, partial downloads, collections, history, registries."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "models_dir", "downloads_dir", "collections_dir", "registries_dir",
           "history_path", "conversations_path", "builtin_registry_dir"]


def data_dir() -> Path:
    """Return the data directory: ``$JUPYTER_LLM_HOME`` or ``jupyter_data_dir()/llm``."""
    home = os.environ.get("JUPYTER_LLM_HOME")
    if home:
        return Path(home).expanduser()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "llm"


def models_dir() -> Path:
    """Return the folder of installed model files."""
    return data_dir() / "models"


def downloads_dir() -> Path:
    """Return the folder of partial downloads, kept so a later attempt can resume."""
    return data_dir() / "downloads"


def collections_dir() -> Path:
    """Return the folder of named retrieval collections (``*.sqlite``)."""
    return data_dir() / "collections"


def registries_dir() -> Path:
    """Return the folder of the user's own registry files."""
    return data_dir() / "registries"


def history_path() -> Path:
    """Return the SQLite file of the request history."""
    return data_dir() / "history.sqlite"


def conversations_path() -> Path:
    """Return the SQLite file of the saved chat conversations (per user)."""
    return data_dir() / "conversations.sqlite"


def builtin_registry_dir() -> Path:
    """Return the built-in ``registry/`` folder, in a wheel or in a source checkout."""
    packaged = Path(__file__).parent / "_registry"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "registry"
