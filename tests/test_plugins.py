"""Third-party models arrive through the ``register_models`` hook on the ``jupyter_llm``
entry-point group, exactly like the built-in backends."""

import textwrap

import pytest

from jupyter_llm import plugins
from jupyter_llm.cli import main

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


@pytest.fixture
def third_party_plugin(tmp_path, monkeypatch):
    (tmp_path / "reverse_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "reverse_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reverse-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""\
        [jupyter_llm]
        reverse = reverse_plugin
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset(rescan_entry_points=True)
    yield
    if plugins.pm.has_plugin("reverse"):
        plugins.pm.unregister(name="reverse")
    plugins.reset()


def test_builtin_backends_are_default_plugins():
    found = plugins.plugins()
    assert {"llama_cpp", "openai"} <= set(found.backends)


def test_entry_point_plugin_registers_a_model(third_party_plugin):
    model = plugins.get_model("reverse")
    response = model.prompt("hello")
    assert response.text() == "olleh" and response.usage.completion_tokens == 5
    assert plugins.get_model("rev") is model
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
