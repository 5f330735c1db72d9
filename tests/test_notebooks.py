"""Every notebook in ``notebooks/`` runs top to bottom in a real kernel (nbclient) against
tiny generated models; any cell error fails the test (cells tagged ``raises-exception``
fail on purpose)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_llm.registry import ModelSpec
from jupyter_llm.store import Store
from jupyter_llm.testing.tiny_gguf import sha256_file, write_tiny_gguf
from tests.fixtures.models import tiny_registry_entries

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def notebook_models(tmp_path, tiny_gguf, tiny_embed_gguf, monkeypatch):
    """Install tiny-chat, a second chat model and tiny-embed; answers stop after 24 tokens."""
    second = write_tiny_gguf(tmp_path / "tiny-chat-2.gguf", seed=2, n_embd=64)
    entries = tiny_registry_entries(tiny_gguf, tiny_embed_gguf)
    chat = {**entries[0], "default_options": {"max_tokens": 24}}
    chat2 = {**chat, "id": "tiny-chat-2", "name": "Tiny chat 2", "aliases": [],
             "url": f"http://127.0.0.1:9/{second.name}", "sha256": sha256_file(second),
             "size_bytes": second.stat().st_size}
    entries = [chat, chat2, entries[1]]
    path = tmp_path / "notebook-registry.json"
    path.write_text(json.dumps({"models": entries}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(path))
    monkeypatch.setenv("JUPYTER_LLM_DEFAULT_MODEL", "tiny-chat")
    monkeypatch.setenv("JUPYTER_LLM_DEFAULT_EMBEDDING_MODEL", "tiny-embed")
    store = Store()
    for entry, src in zip(entries, (tiny_gguf, second, tiny_embed_gguf), strict=True):
        store.install_file(ModelSpec.model_validate(entry), src)
    return entries


def execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    """Run a notebook in a fresh python3 kernel with ``notebooks/`` as its folder."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / name)  # the executed notebook, to read on failure
    return nb


def outputs_of(nb: nbformat.NotebookNode, source_start: str) -> list[dict]:
    """The outputs of the first code cell whose source starts with ``source_start``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(source_start):
            return cell.outputs
    raise AssertionError(f"no cell starts with {source_start!r}")


def markdown_of(outputs: list[dict]) -> str:
    return "\n".join(o["data"]["text/markdown"] for o in outputs
                     if o.get("output_type") == "display_data" and "text/markdown" in o["data"])


def text_of(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def test_every_notebook_has_a_test():
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == {
        "quickstart.ipynb", "tutoring.ipynb", "comparison.ipynb"}


def test_quickstart_runs(notebook_models, tmp_path):
    nb = execute("quickstart.ipynb", tmp_path)
    first = outputs_of(nb, "%%llm\nExplain what a Python list is")
    assert "tiny-chat · 24 tokens" in markdown_of(first)
    assert "execute_result" in {o["output_type"] for o in first}
    assert "completion_tokens=24" in text_of(outputs_of(nb, "response = _"))
    assert "| tiny-chat | installed |" in markdown_of(outputs_of(nb, "%llm models"))
    failing = outputs_of(nb, "scores = [90, 85, 77]")
    assert failing[0]["ename"] == "IndexError"
    assert "tiny-chat" in markdown_of(outputs_of(nb, "%llm fix"))
    assert "tiny-chat" in markdown_of(outputs_of(nb, "%llm load $MODEL"))
    panel = outputs_of(nb, "%llm panel")
    assert "application/vnd.jupyter.widget-view+json" in panel[0]["data"]


def test_tutoring_runs_and_grounds_answers_in_the_course(notebook_models, tmp_path):
    nb = execute("tutoring.ipynb", tmp_path)
    assert "| socratic-tutor |" in markdown_of(outputs_of(nb, "%llm templates"))
    grounded = markdown_of(outputs_of(nb, "%%llm -g course-demo -k 2"))
    assert "**Sources**" in grounded and "git-05-history.md" in grounded
    assert "git-05-history.md" in text_of(outputs_of(nb, "for citation in _.citations"))
    assert "2 added" in markdown_of(outputs_of(nb, "%llm ingest course-demo"))
    found = outputs_of(nb, "%llm search course-demo")[0]["data"]["text/markdown"]
    assert "**2 results**" in found and "course/" in found
    assert "tiny-chat" in markdown_of(outputs_of(nb, "%%llm -t hint-ladder"))


def test_comparison_runs_side_by_side(notebook_models, tmp_path):
    nb = execute("comparison.ipynb", tmp_path)
    models = outputs_of(nb, "import jupyter_llm")[0]["data"]["text/plain"]
    assert "tiny-chat" in models and "tiny-chat-2" in models
    side = outputs_of(nb, "import html")[0]["data"]["text/html"]
    assert side.count("<b>tiny-chat") == 2 and side.count("200 tokens") == 2
