"""Test-suite configuration: every test runs with its own data directory."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GGML_NO_BACKTRACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "tests.fixtures.gguf",
    "tests.fixtures.http_server",
    "tests.fixtures.retrieval",
    "tests.fixtures.server",
    "tests.fixtures.models",
    "tests.fixtures.real_models",
    "tests.lab.fixtures",
]


@pytest.fixture(autouse=True)
def llm_home(tmp_path_factory, monkeypatch):
    """Give each test an empty ``JUPYTER_LLM_HOME`` and no extra registries."""
    home = tmp_path_factory.mktemp("llm_home")
    monkeypatch.setenv("JUPYTER_LLM_HOME", str(home))
    monkeypatch.delenv("JUPYTER_LLM_REGISTRY_PATH", raising=False)
    monkeypatch.delenv("JUPYTER_LLM_URL", raising=False)
    monkeypatch.delenv("JUPYTER_LLM_TOKEN", raising=False)
    for name in ("DEFAULT_MODEL", "DEFAULT_EMBEDDING_MODEL", "ALLOW_URL_DOWNLOADS"):
        monkeypatch.delenv("JUPYTER_LLM_" + name, raising=False)
    import jupyter_llm.client

    monkeypatch.setattr(jupyter_llm.client, "_default", None)
    yield home
    client = jupyter_llm.client._default
    host = getattr(client, "host", None)
    if host is not None:  # stop the worker processes an in-process client started
        host.close()
