"""Third-party models arrive through the ``register_models`` hook on the ``jupyter_llm``
entry-point group, exactly like the built-in backends."""

import os

import psutil
import pytest

from jupyter_llm import plugins
from jupyter_llm.cli import main

from .fixtures.waiting import wait_for

PLUGIN = '''
from jupyter_llm.hookspecs import hookimpl
from jupyter_llm.models import EmbeddingModel, Finish, Model, Usage
from jupyter_llm.registry import ModelSpec


class Reverse(Model):
    """Answers with the last user message reversed, one character at a time."""
    backend = "reverse"

    def execute(self, request):
        text = request.prompt_text()[::-1]
        yield from text
        yield Finish("stop", Usage(len(text), len(text)))


class Lengths(EmbeddingModel):
    def embed_batch(self, texts):
        return [[float(len(t)), 1.0] for t in texts]


@hookimpl
def register_models(register):
    spec = ModelSpec(id="reverse", name="Reverse", backend="reverse", tags=["CONVERSATIONAL"])
    register(Reverse("reverse"), spec=spec, aliases=["rev"])


@hookimpl
def register_embedding_models(register):
    register(Lengths("lengths"))
'''


LOCAL_PLUGIN = '''
"""A third-party local backend: its "weights" are a text file, read into memory at load."""
import os
from pathlib import Path

from jupyter_llm.hookspecs import hookimpl
from jupyter_llm.models import Backend, Finish, Model, Usage
from jupyter_llm.options import Options


class WordBankOptions(Options):
    shout: bool | None = None


class WordBank(Model):
    """Answers with the first max_tokens words of its file, then the pid that ran it."""
    backend = "wordbank"
    Options = WordBankOptions

    def __init__(self, spec, path, n_ctx):
        super().__init__(spec.id, spec)
        self.path, self.n_ctx, self.words = Path(path), n_ctx, None

    def load(self, n_ctx=None, n_threads=None):
        self.words = self.path.read_text().split()

    @property
    def context_size(self):
        return self.n_ctx

    def execute(self, request):
        words = self.words[: request.options.max_tokens or len(self.words)]
        for word in words:
            yield (word.upper() if request.options.shout else word) + " "
        yield f"[pid {os.getpid()}]"
        yield Finish("stop", Usage(1, len(words) + 1))


class WordBankBackend(Backend):
    name = "wordbank"
    in_worker = True
    Options = WordBankOptions

    def create(self, spec, *, path, n_ctx=None, n_threads=None):
        return WordBank(spec, path, n_ctx)


@hookimpl
def register_models(register):
    register(WordBankBackend())
'''


def _install_plugin(tmp_path, monkeypatch, name: str, source: str) -> None:
    """Install a plugin module with an entry point, as ``pip install`` would (also for
    worker processes, through PYTHONPATH)."""
    (tmp_path / f"{name}_plugin.py").write_text(source)
    dist = tmp_path / f"{name}_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[jupyter_llm]\n{name} = {name}_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p))
    plugins.reset(rescan_entry_points=True)


@pytest.fixture
def third_party_plugin(tmp_path, monkeypatch):
    _install_plugin(tmp_path, monkeypatch, "reverse", PLUGIN)
    yield
    if plugins.pm.has_plugin("reverse"):
        plugins.pm.unregister(name="reverse")
    plugins.reset()


@pytest.fixture
def local_plugin(tmp_path, monkeypatch):
    _install_plugin(tmp_path, monkeypatch, "wordbank", LOCAL_PLUGIN)
    yield
    if plugins.pm.has_plugin("wordbank"):
        plugins.pm.unregister(name="wordbank")
    plugins.reset()


def test_builtin_backends_are_default_plugins():
    found = plugins.plugins()
    assert {"llama_cpp", "openai"} <= set(found.backends)


def test_entry_point_plugin_registers_a_model(third_party_plugin):
    model = plugins.get_model("reverse")
    response = model.prompt("hello")
    assert response.text() == "olleh" and response.usage.completion_tokens == 5
    assert plugins.get_model("rev") is model
    result = model.prompt("abc").to_dict()  # the text, Response.summary() and citations
    assert result["text"] == "cba" and result["model"] == "reverse"
    assert result["finish_reason"] == "stop" and result["usage"]["completion_tokens"] == 3
    assert result["timings"]["duration_s"] > 0 and result["citations"] == []
    assert plugins.get_embedding_model("lengths").embed(["abc", "a"]) == [[3.0, 1.0], [1.0, 1.0]]


def test_plugin_models_appear_in_the_cli(third_party_plugin, capsys):
    assert main(["models", "--json", "--tag", "CONVERSATIONAL"]) == 0
    out = capsys.readouterr().out
    assert '"id": "reverse"' in out and '"state": "installed"' in out
    assert main(["prompt", "-m", "reverse", "stressed"]) == 0
    assert capsys.readouterr().out == "desserts\n"


def test_unknown_backend_names_the_entry_and_the_known_backends(tmp_path):
    from jupyter_llm.errors import RegistryError
    from jupyter_llm.registry import ModelSpec

    spec = ModelSpec(id="odd", backend="nonesuch", source="my.json")
    with pytest.raises(RegistryError, match="nonesuch.*llama_cpp"):
        plugins.create_model(spec)


def test_a_plugin_backend_in_worker_gets_a_worker_the_budget_and_keep_alive(local_plugin, tmp_path):
    from jupyter_llm.config import Settings
    from jupyter_llm.errors import InvalidOptions
    from jupyter_llm.host import ModelHost
    from jupyter_llm.registry import ModelSpec, Registry

    registry = Registry()
    for model_id, words in (("bank", "alpha beta gamma delta"), ("other", "one two three")):
        (tmp_path / f"{model_id}.txt").write_text(words)
        registry.add(ModelSpec(id=model_id, backend="wordbank", tags=["CONVERSATIONAL"],
                               path=str(tmp_path / f"{model_id}.txt"), ram_bytes=1 << 20))
    host = ModelHost(Settings(history=False, max_loaded_models=1), registry=registry)
    hi = [{"role": "user", "content": "hi"}]
    try:
        text = host.chat(hi, "bank", max_tokens=3).text()
        (entry,) = host.ps()
        pid = entry["pid"]
        assert entry["id"] == "bank" and entry["backend"] == "wordbank"
        assert pid != os.getpid() and psutil.Process(pid).ppid() == os.getpid()
        assert text == f"alpha beta gamma [pid {pid}]"  # it ran in the worker process
        assert host.chat(hi, "bank", max_tokens=1, shout=True).text() == f"ALPHA [pid {pid}]"
        with pytest.raises(InvalidOptions, match="colour"):  # the backend's own options
            host.chat(hi, "bank", colour="red")

        other = host.chat(hi, "other", max_tokens=1).text()  # max_loaded_models=1: evicts bank
        assert [p["id"] for p in host.ps()] == ["other"] and other.startswith("one [pid ")
        assert wait_for(lambda: not psutil.pid_exists(pid))

        host.load("bank", keep_alive=0.2)  # keep-alive unloads it when idle
        assert wait_for(lambda: "bank" not in host.loaded_ids())
    finally:
        host.close()
