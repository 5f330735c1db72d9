"""The docs stay true: every setting, option, hook and CLI command is documented."""

import re
from pathlib import Path

import pytest

from jupyter_llm import hookspecs
from jupyter_llm.backends.llama_cpp import LlamaCppOptions
from jupyter_llm.backends.openai import OpenAIOptions
from jupyter_llm.cli import build_parser
from jupyter_llm.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_in_the_configuration_reference(field):
    text = doc("configuration.md")
    assert f"`{field}`" in text and f"`JUPYTER_LLM_{field.upper()}`" in text


@pytest.mark.parametrize("field", sorted(set(LlamaCppOptions.model_fields) | set(OpenAIOptions.model_fields)))
def test_every_option_is_in_the_user_guide(field):
    assert f"`{field}`" in doc("user-guide.md")


@pytest.mark.parametrize("hook", ["register_models", "register_embedding_models"])
def test_every_plugin_hook_is_documented(hook):
    assert hasattr(hookspecs, hook)
    assert f"`{hook}(register)`" in doc("user-guide.md")


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _commands())
def test_every_cli_command_is_in_the_user_guide(command):
    assert re.search(rf"jupyter llm {re.escape(command)}\b", doc("user-guide.md")), command


def test_readme_links_to_existing_docs():
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for link in re.findall(r"\]\((docs/[^)]+)\)", readme):
        assert (DOCS.parent / link).is_file(), link
