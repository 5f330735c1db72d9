"""Which chat format a GGUF gets (its own template, the registry's, a llama.cpp built-in, or
none) and how every face says so when none applies. Tiny generated models; the real Gemma 3
base and SmolLM2 files are in test_real_models_chat.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from jupyter_llm.backends.chat_format import choose_template, says_chat_tuned
from jupyter_llm.backends.llama_cpp import LlamaCppModel
from jupyter_llm.cli import main
from jupyter_llm.client.remote import RemoteClient
from jupyter_llm.errors import InvalidRequest
from jupyter_llm.testing.tiny_gguf import write_tiny_gguf


@pytest.fixture(scope="module")
def base_gguf(tmp_path_factory):
    """A tiny llama GGUF without a chat template and nothing saying it was tuned to chat."""
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-base.gguf", seed=0,
                           chat_template=None, name="tiny-base")


@pytest.fixture
def base_registry(tiny_registry, base_gguf, tmp_path, monkeypatch):
    """The tiny registry plus ``tiny-base`` (a registry entry naming the file by ``path``)."""
    entries = json.loads(tiny_registry.path.read_text())["models"]
    entries.append({"id": "tiny-base", "backend": "llama_cpp", "tags": ["CONVERSATIONAL"],
                    "path": str(base_gguf), "context_length": 2048})
    path = tmp_path / "with-base.json"
    path.write_text(json.dumps({"models": entries}))
    monkeypatch.setenv("JUPYTER_LLM_REGISTRY_PATH", str(path))
    return path


def test_the_order_is_file_then_registry_then_builtin_by_architecture():
    def decide(**kw):
        args = {"gguf_template": None, "registry_template": None, "architecture": "gemma3",
                "chat_tuned": True, "is_single_token": lambda marker: True, **kw}
        return choose_template("m", **args)

    assert decide(gguf_template="{{x}}", registry_template="gemma").source == "gguf"
    assert (decide(registry_template="{{x}}").source, decide(registry_template="{{x}}").name) \
        == ("registry", None)
    assert decide(registry_template="gemma").name == "gemma"  # a built-in named by the registry
    builtin = decide()
    assert (builtin.source, builtin.name) == ("builtin", "gemma") and "gemma3" in builtin.warning
    # a built-in applies only to a chat-tuned file whose vocabulary has its markers
    assert decide(chat_tuned=False).source == "none"
    assert decide(is_single_token=lambda marker: False).source == "none"
    llama = decide(architecture="llama",
                   is_single_token=lambda marker: marker in ("<|im_start|>", "<|im_end|>"))
    assert llama.name == "chatml"  # llama3 and mistral markers missing: the next one that fits
    assert decide(architecture="unknown-arch").source == "none"
    assert says_chat_tuned("gemma-2-2b-it-Q4_K_M.gguf") and says_chat_tuned("Llama-3.2-1B-Instruct")
    assert not says_chat_tuned("Gemma 3 270m") and not says_chat_tuned("gemma-3-270m-q4_k_m.gguf")


def test_a_file_without_template_gets_a_plain_transcript_and_a_warning(base_gguf):
    model = LlamaCppModel.from_path(base_gguf)
    prompt, stops = model.format_chat([{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Hi"},
                                       {"role": "assistant", "content": "Hello"},
                                       {"role": "user", "content": "More"}])
    assert prompt.endswith("Be brief.\n\nUser: Hi\nAssistant: Hello\nUser: More\nAssistant:")
    assert stops == ["\nUser:"]
    response = model.prompt("Hi", max_tokens=4)
    response.text()
    assert model.chat_template_info["source"] == "none"
    model.close()


def test_a_registry_builtin_name_renders_with_llama_cpp(base_gguf):
    from jupyter_llm.registry import ModelSpec

    spec = ModelSpec(id="tiny-chatml", backend="llama_cpp", chat_template="chatml")
    model = LlamaCppModel("tiny-chatml", spec, path=base_gguf)
    prompt, stops = model.format_chat([{"role": "user", "content": "Hi"}])
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert stops == ["<|im_end|>"] and model.chat_template_info["source"] == "registry"
    model.close()


def test_a_template_that_refuses_the_messages_is_a_clear_400(base_gguf):
    from jupyter_llm.registry import ModelSpec

    strict = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}x"
    model = LlamaCppModel("strict", ModelSpec(id="strict", backend="llama_cpp",
                                              chat_template=strict), path=base_gguf)
    with pytest.raises(InvalidRequest, match="no system role") as info:
        model.format_chat([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert info.value.status == 400
    model.close()


def test_the_cli_says_so_on_stderr(base_registry, capsys):
    code = main(["prompt", "-m", "tiny-base", "-o", "max_tokens=4", "Hello"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip()
    assert err.startswith("warning: tiny-base has no chat template")
    assert "probably a base model" in err and "--completion" in err
    assert "Run: jupyter llm prompt --completion -m tiny-base TEXT" in err  # the hint, as a command
    code = main(["prompt", "--completion", "-m", "tiny-base", "-o", "max_tokens=4", "Hello"])
    assert code == 0 and capsys.readouterr().err == ""  # raw completion needs no template


async def test_the_remote_client_and_models_id_say_so(base_registry, llm_url, llm_token,
                                                      jp_fetch):
    before = json.loads((await jp_fetch("llm", "api", "models", "tiny-base")).body)
    assert before["chat_template"] == {"source": "none", "name": None, "architecture": "llama",
                                       "warning": before["chat_template"]["warning"],
                                       "loaded": False}
    client = RemoteClient(llm_url, llm_token)
    for stream in (True, False):
        response = await asyncio.to_thread(client.chat, [{"role": "user", "content": "Hi"}],
                                           "tiny-base", stream=stream, max_tokens=4)
        await asyncio.to_thread(response.text)
        (warning,) = response.warnings
        assert warning["type"] == "chat_template" and warning["details"]["action"] == "completion"
    client.close()
    after = json.loads((await jp_fetch("llm", "api", "models", "tiny-base")).body)
    assert after["chat_template"]["loaded"] is True and after["chat_template"]["source"] == "none"
    chat = json.loads((await jp_fetch("llm", "api", "models", "tiny-chat")).body)
    assert chat["chat_template"]["source"] == "gguf" and chat["chat_template"]["warning"] is None


def test_the_magics_and_the_model_panel_say_so(base_registry):
    from IPython.testing.globalipapp import get_ipython, start_ipython
    from IPython.utils.capture import capture_output

    from jupyter_llm.client.local import LocalClient
    from jupyter_llm.magics import magics_of
    from jupyter_llm.magics.session import Session
    from jupyter_llm.widgets import ModelPanel

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "jupyter_llm")
    client = LocalClient()
    magics_of(ip).session = Session(client_=client, live=True)
    try:
        with capture_output() as captured:
            assert ip.run_cell("%%llm -m tiny-base --max-tokens 4\nHello").success
        assert captured.stderr.startswith("warning: tiny-base has no chat template")
        assert "Run `jupyter_llm.connect().generate(TEXT, 'tiny-base')`." in captured.stderr
        with capture_output() as captured:
            assert ip.run_cell("%%llm -m tiny-chat --max-tokens 4\nHello").success
        assert captured.stderr == ""  # a model with its own template: nothing to say

        panel = ModelPanel(client, default_model="tiny-base")
        panel.max_tokens.value = 4
        panel.ask("Hello")
        panel.wait(120)
        assert "no chat template" in panel.status.value and panel.error == ""
    finally:
        client.host.close()
