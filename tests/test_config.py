"""Settings from ``JUPYTER_LLM_*`` variables: bad values name the variable to fix."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_llm.cli import main
from jupyter_llm.config import Settings
from jupyter_llm.errors import InvalidOptions
from jupyter_llm.server.app import JupyterLLM


def test_environment_values_are_parsed_and_overrides_win():
    settings = Settings.from_env({"JUPYTER_LLM_QUEUE_SIZE": "4", "JUPYTER_LLM_HISTORY": "0"},
                                 queue_size=8)
    assert settings.queue_size == 8 and settings.history is False


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(InvalidOptions) as e:
        Settings.from_env({"JUPYTER_LLM_MEMORY_BUDGET_MB": "abc"})
    assert "memory_budget_mb" in e.value.message
    assert "JUPYTER_LLM_MEMORY_BUDGET_MB" in e.value.message
    with pytest.raises(InvalidOptions) as e:
        Settings.from_env({}, queue_size=0)
    assert "queue_size" in e.value.message and "JUPYTER_LLM_" not in e.value.message


def test_serve_with_a_bad_setting_exits_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("JUPYTER_LLM_QUEUE_SIZE", "none")
    assert main(["serve", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "JUPYTER_LLM_QUEUE_SIZE" in err and "Traceback" not in err


def test_stopping_an_extension_whose_settings_failed_does_not_raise():
    asyncio.run(JupyterLLM().stop_extension())


def test_the_server_passes_open_browser_without_an_unrecognized_option_warning():
    """ServerApp hands ``open_browser`` to every extension's config; it must be a trait here
    (a plain attribute logged "Config option `open_browser` not recognized" on start)."""
    import io
    import logging

    from traitlets.config import Config

    app = JupyterLLM()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    app.log.addHandler(handler)
    try:
        app.update_config(Config({"JupyterLLM": {"open_browser": False}}))
    finally:
        app.log.removeHandler(handler)
    assert "not recognized" not in buffer.getvalue()
    assert app.open_browser is False
