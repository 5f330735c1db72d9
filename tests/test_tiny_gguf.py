"""The tiny-GGUF generator writes models that real llama.cpp loads, chats with and embeds."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_llm.testing.tiny_gguf import (
    BROKEN_KINDS,
    CHATML_TEMPLATE,
    SPECIAL_TOKENS,
    sha256_file,
    tiny_vocab,
    write_broken_gguf,
    write_tiny_gguf,
)
from tests.fixtures.gguf import TINY_N_EMBD

PROMPTS = ["The shell is", "def hello(name):", "git commit -m"]

_LOAD_AND_DECODE = """
import sys
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], verbose=False, n_ctx=64)
print("loaded", flush=True)
llm.create_completion("hello", max_tokens=4)
print("decoded", flush=True)
"""


@pytest.fixture(scope="module")
def llama_cpp():
    """The real llama_cpp module (the ``llama`` extra)."""
    return pytest.importorskip("llama_cpp")


def _load(llama_cpp, path: Path, **kwargs):
    return llama_cpp.Llama(model_path=str(path), verbose=False, n_ctx=512, **kwargs)


def _greedy(llm, prompt: str, max_tokens: int = 32) -> dict:
    return llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)


# --- the file itself -------------------------------------------------------------------


def test_vocab_has_every_byte_symbol_unique_tokens_and_chatml_specials():
    tokens, merges, types = tiny_vocab()
    assert len(set(tokens)) == len(tokens)
    assert 300 <= len(tokens) <= 400
    assert len(merges) >= 50
    assert tokens[-3:] == list(SPECIAL_TOKENS)
    assert types[-3:] == [3, 3, 3] and set(types[:-3]) == {1}
    byte_symbols = tokens[:256]
    assert len({len(s) for s in byte_symbols}) == 1  # one character per byte
    for merge in merges:
        left, right = merge.split(" ")
        assert left in tokens and right in tokens and left + right in tokens


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    a = write_tiny_gguf(tmp_path / "a.gguf", seed=7)
    b = write_tiny_gguf(tmp_path / "b.gguf", seed=7)
    c = write_tiny_gguf(tmp_path / "c.gguf", seed=8)
    assert sha256_file(a) == sha256_file(b)
    assert sha256_file(a) != sha256_file(c)


def test_default_file_is_tiny_and_carries_the_recommended_keys(tiny_gguf):
    import gguf

    assert 100_000 < tiny_gguf.stat().st_size < 400_000
    reader = gguf.GGUFReader(tiny_gguf)

    def value(key: str):
        return reader.get_field(key).contents()

    assert value("general.architecture") == "llama"
    assert value("llama.embedding_length") == TINY_N_EMBD
    assert value("llama.pooling_type") == int(gguf.PoolingType.MEAN)
    assert value("tokenizer.ggml.model") == "gpt2"
    assert value("tokenizer.ggml.pre") == "default"
    assert value("tokenizer.chat_template") == CHATML_TEMPLATE
    tokens = value("tokenizer.ggml.tokens")
    assert tokens[value("tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert tokens[value("tokenizer.ggml.bos_token_id")] == "<|endoftext|>"


def test_q8_0_file_is_smaller_than_f16(tmp_path):
    f16 = write_tiny_gguf(tmp_path / "f16.gguf")
    q8 = write_tiny_gguf(tmp_path / "q8.gguf", quantize="q8_0")
    assert q8.stat().st_size < 0.7 * f16.stat().st_size


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_embd": 60, "n_head": 8}, "divisible by n_head"),
        ({"quantize": "q4_k"}, "not supported"),
        ({"n_embd": 48, "n_head": 4, "quantize": "q8_0"}, "divisible by 32"),
        ({"n_layer": 0}, "n_layer"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_fix(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_tiny_gguf(tmp_path / "bad.gguf", **kwargs)
    assert not (tmp_path / "bad.gguf").exists()


def test_cli_prints_path_size_and_sha256(tmp_path):
    out = tmp_path / "cli.gguf"
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_llm.testing.tiny_gguf", str(out), "--seed", "3",
         "--n-embd", "32", "--n-layer", "1", "--n-head", "2"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stderr == ""
    assert str(out) in result.stdout
    assert f"{out.stat().st_size} bytes" in result.stdout
    assert sha256_file(out) in result.stdout
    assert sha256_file(out) == sha256_file(
        write_tiny_gguf(tmp_path / "api.gguf", seed=3, n_embd=32, n_layer=1, n_head=2)
    )


# --- real llama.cpp --------------------------------------------------------------------


def test_llama_cpp_loads_it_with_the_embedded_chatml_template(llama_cpp, tiny_gguf):
    llm = _load(llama_cpp, tiny_gguf)
    assert llm.metadata["tokenizer.chat_template"] == CHATML_TEMPLATE
    assert llm.n_embd() == TINY_N_EMBD
    assert llm.n_vocab() == len(tiny_vocab()[0])
    # every byte survives a tokenize/detokenize round trip (all 256 byte symbols exist)
    text = "Hello, wörld! ✓ 日本 \t\n{}".encode()
    assert llm.detokenize(llm.tokenize(text, add_bos=False)) == text
    # the ChatML specials are single control tokens
    im_end = llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
    assert im_end == [llm.token_eos()]


def test_chat_completion_through_the_template_returns_text(llama_cpp, tiny_gguf):
    llm = _load(llama_cpp, tiny_gguf)
    response = llm.create_chat_completion(
        messages=[
            {"role": "system", "content": "You are tiny."},
            {"role": "user", "content": "Say something."},
        ],
        max_tokens=16,
        temperature=0.0,
    )
    choice = response["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip() != ""
    assert choice["finish_reason"] == "length"


def test_greedy_generation_runs_32_printable_tokens_without_stopping(llama_cpp, tiny_gguf):
    llm = _load(llama_cpp, tiny_gguf)
    for prompt in PROMPTS:
        result = _greedy(llm, prompt)
        assert result["usage"]["completion_tokens"] == 32
        assert result["choices"][0]["finish_reason"] == "length"
        text = result["choices"][0]["text"]
        assert text.strip() != ""
        assert text.isascii() and text.isprintable()


def test_greedy_generation_is_identical_across_fresh_loads(llama_cpp, tiny_gguf):
    first = [_greedy(_load(llama_cpp, tiny_gguf), p)["choices"][0]["text"] for p in PROMPTS]
    second = [_greedy(_load(llama_cpp, tiny_gguf), p)["choices"][0]["text"] for p in PROMPTS]
    assert first == second


def test_different_prompts_give_different_outputs(llama_cpp, tiny_gguf):
    llm = _load(llama_cpp, tiny_gguf)
    outputs = {_greedy(llm, p)["choices"][0]["text"] for p in PROMPTS}
    assert len(outputs) == len(PROMPTS)


def test_another_seed_gives_another_model(llama_cpp, tiny_gguf, tiny_embed_gguf):
    a = _greedy(_load(llama_cpp, tiny_gguf), PROMPTS[0])["choices"][0]["text"]
    b = _greedy(_load(llama_cpp, tiny_embed_gguf), PROMPTS[0])["choices"][0]["text"]
    assert a != b


def test_q8_0_model_loads_and_generates(llama_cpp, tmp_path):
    llm = _load(llama_cpp, write_tiny_gguf(tmp_path / "q8.gguf", quantize="q8_0"))
    assert _greedy(llm, PROMPTS[0], max_tokens=8)["usage"]["completion_tokens"] == 8


def test_embedding_returns_one_vector_of_n_embd_per_input(llama_cpp, tiny_embed_gguf):
    llm = _load(llama_cpp, tiny_embed_gguf, embedding=True)
    texts = ["the shell runs commands", "git records history", "python lists"]
    vectors = llm.embed(texts)
    assert len(vectors) == len(texts)
    assert all(len(v) == TINY_N_EMBD for v in vectors)
    assert all(math.isfinite(x) for v in vectors for x in v)
    assert vectors[0] != vectors[1] != vectors[2]
    single = llm.embed(texts[0])
    assert len(single) == TINY_N_EMBD
    assert single == pytest.approx(vectors[0], abs=1e-4)
    assert len(llm.embed("")) == TINY_N_EMBD  # BOS alone still pools to one vector


def test_embeddings_of_overlapping_texts_are_closer(llama_cpp, tiny_embed_gguf):
    llm = _load(llama_cpp, tiny_embed_gguf, embedding=True)
    a, near, far = llm.embed(
        ["the shell runs commands", "the shell runs many commands", "git records history"],
        normalize=True,
    )

    def cosine(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))

    assert cosine(a, near) > cosine(a, far) + 0.2


# --- broken files ----------------------------------------------------------------------


def test_every_broken_kind_is_documented_and_unknown_kinds_are_refused(broken_gguf):
    assert set(BROKEN_KINDS.values()) <= {"value_error", "abort_on_load", "abort_on_decode"}
    with pytest.raises(ValueError, match="unknown broken GGUF kind"):
        broken_gguf("nonsense")


def test_broken_files_are_written_deterministically(tmp_path):
    for kind in BROKEN_KINDS:
        a = write_broken_gguf(tmp_path / f"a-{kind}.gguf", kind)
        b = write_broken_gguf(tmp_path / f"b-{kind}.gguf", kind)
        assert sha256_file(a) == sha256_file(b), kind


@pytest.mark.parametrize("kind", [k for k, v in BROKEN_KINDS.items() if v == "value_error"])
def test_unloadable_kinds_raise_value_error_in_python(llama_cpp, broken_gguf, kind):
    with pytest.raises(ValueError, match="Failed to load model"):
        _load(llama_cpp, broken_gguf(kind))


@pytest.mark.parametrize("kind", [k for k, v in BROKEN_KINDS.items() if v.startswith("abort")])
def test_aborting_kinds_kill_the_process_with_sigabrt(llama_cpp, broken_gguf, kind):
    env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_DECODE, str(broken_gguf(kind))],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == -6, result.stderr[-2000:]
    loaded = "loaded" in result.stdout
    assert loaded == (BROKEN_KINDS[kind] == "abort_on_decode")
    assert "decoded" not in result.stdout
