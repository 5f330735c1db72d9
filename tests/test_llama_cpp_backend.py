"""The llama_cpp backend runs real llama.cpp on tiny generated GGUF files."""

from pathlib import Path

import pytest

from jupyter_llm.backends.llama_cpp import LlamaCppModel
from jupyter_llm.errors import (
    ContextLengthExceeded,
    InvalidOptions,
    InvalidRequest,
    ModelLoadError,
    ModelNotReady,
)
from jupyter_llm.models import Finish, Request
from jupyter_llm.options import Options


@pytest.fixture(scope="module")
def model(tiny_gguf: Path):
    m = LlamaCppModel.from_path(tiny_gguf)
    yield m
    m.close()


def test_chat_streams_text_with_usage_and_timings(model):
    response = model.prompt("Hello there", temperature=0, max_tokens=12)
    chunks = list(response)
    assert len(chunks) == 12 and all(isinstance(c, str) and c for c in chunks)
    assert response.text() == "".join(chunks)
    assert response.finish_reason == "length"
    assert response.usage.completion_tokens == 12
    assert response.usage.prompt_tokens > 3
    timings = response.timings
    assert timings["time_to_first_token_s"] > 0 and timings["tokens_per_s"] > 0


def test_chat_uses_the_gguf_chat_template(model):
    prompt, stops = model.format_chat([{"role": "system", "content": "S"},
                                       {"role": "user", "content": "U"}])
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert "<|im_end|>" in stops


def test_temperature_zero_is_deterministic_across_loads(tiny_gguf):
    first = LlamaCppModel.from_path(tiny_gguf).prompt("Tell me", temperature=0, max_tokens=16).text()
    second = LlamaCppModel.from_path(tiny_gguf).prompt("Tell me", temperature=0, max_tokens=16).text()
    assert first == second and len(first) > 0


def test_seeded_sampling_is_reproducible(model):
    a = model.prompt("Once", temperature=1.0, seed=42, max_tokens=16).text()
    b = model.prompt("Once", temperature=1.0, seed=42, max_tokens=16).text()
    assert a == b


def test_stop_strings_end_generation(model):
    full = model.complete("abc", temperature=0, max_tokens=24).text()
    stop = full[5:8]
    cut = model.complete("abc", temperature=0, max_tokens=24, stop=[stop]).text()
    assert stop not in cut and full.startswith(cut) and len(cut) < len(full)


def test_raw_completion_matches_direct_llama_cpp(model, tiny_gguf):
    ours = model.complete("The answer is", temperature=0, max_tokens=10)
    direct = model._llama.create_completion(prompt="The answer is", temperature=0, max_tokens=10)
    assert ours.text() == direct["choices"][0]["text"]
    assert ours.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
    assert ours.usage.completion_tokens == direct["usage"]["completion_tokens"]


def test_json_mode_produces_json_start(model):
    text = model.prompt("Give JSON", json_mode=True, temperature=0, max_tokens=8).text()
    assert text.lstrip().startswith(("{", "["))


def test_invalid_grammar_is_a_clear_option_error(model):
    with pytest.raises(InvalidOptions, match="grammar"):
        model.prompt("x", grammar="root ::= (", max_tokens=2).text()


def test_invalid_option_names_field_before_running(model):
    with pytest.raises(InvalidOptions, match="top_p"):
        model.prompt("x", top_p=3)


def test_messages_are_validated(model):
    with pytest.raises(InvalidRequest, match="role"):
        model.prompt(messages=[{"role": "wizard", "content": "hi"}])


def test_conversation_continues_with_history(model):
    chat = model.conversation(system="Be brief.")
    first = chat.prompt("Hi", temperature=0, max_tokens=4).text()
    second = chat.prompt("More", temperature=0, max_tokens=4).text()
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert chat.messages[2]["content"] == first and chat.messages[4]["content"] == second
    fresh = model.prompt("More", system="Be brief.", temperature=0, max_tokens=4).text()
    assert isinstance(fresh, str)  # a one-off prompt has no memory of the conversation


def test_response_can_be_cancelled_midway(model):
    response = model.prompt("Long", temperature=0, max_tokens=200)
    got = []
    for chunk in response:
        got.append(chunk)
        if len(got) == 3:
            response.cancel()
            break
    assert response.done and response.finish_reason == "cancelled"
    assert model.prompt("next", max_tokens=2).text()  # the model is free again


def test_execute_ends_with_a_finish_event(model):
    events = list(model.execute(Request(prompt="Hi", options=Options(max_tokens=3))))
    assert isinstance(events[-1], Finish) and events[-1].usage.completion_tokens == 3


def test_embeddings_are_one_normalised_vector_per_text(tiny_embed_gguf):
    m = LlamaCppModel.from_path(tiny_embed_gguf, embedding=True)
    vectors = m.embed(["a cat", "a dog", "a cat"])
    assert len(vectors) == 3 and len(vectors[0]) == 64
    assert abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-4
    assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != pytest.approx(vectors[1])
    m.close()


def test_a_chat_model_embeds_too_and_counts_tokens(model):
    vectors, tokens = model.embed_with_usage(["hello world", "x"])
    assert len(vectors) == 2 and all(len(v) == 64 for v in vectors)
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, abs=1e-4)
    assert tokens == model.token_count("hello world") + model.token_count("x") + 2  # with BOS
    assert model.prompt("hi", max_tokens=2).text()  # the chat context still works


def test_a_prompt_that_cannot_fit_is_context_length_exceeded(tiny_gguf):
    small = LlamaCppModel.from_path(tiny_gguf, n_ctx=64)
    with pytest.raises(ContextLengthExceeded) as info:
        small.complete("word " * 200, max_tokens=4).text()
    assert info.value.status == 400 and info.value.details["n_ctx"] == small.context_size
    assert info.value.details["prompt_tokens"] > 64
    assert "n_ctx" in info.value.message and "2048" in info.value.message  # trained length
    small.close()


def test_trim_history_drops_the_oldest_turns_and_says_so(tiny_gguf):
    small = LlamaCppModel.from_path(tiny_gguf, n_ctx=128)
    turns = [{"role": "system", "content": "S"}]
    for i in range(6):
        turns += [{"role": "user", "content": f"question {i} " + "x " * 10},
                  {"role": "assistant", "content": f"answer {i} " + "y " * 10}]
    turns.append({"role": "user", "content": "last"})
    with pytest.raises(ContextLengthExceeded):
        small.prompt(messages=turns, max_tokens=4).text()
    response = small.prompt(messages=turns, max_tokens=4, trim_history=True)
    assert response.text() and response.usage.prompt_tokens < 128
    (warning,) = response.warnings
    assert warning["type"] == "context_trimmed" and warning["details"]["dropped_messages"] >= 2
    assert warning["details"]["dropped_messages"] % 2 == 0  # whole turns
    small.close()


def test_n_ctx_never_exceeds_the_trained_context(model):
    model.prompt("hi", max_tokens=1).text()
    assert model._loaded_n_ctx == 2048


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "wrong_magic"])
def test_corrupt_files_give_a_clear_load_error(broken_gguf, kind):
    with pytest.raises(ModelLoadError) as info:
        LlamaCppModel.from_path(broken_gguf(kind)).load()
    assert "re-create or re-download the file" in info.value.message or "download it again" in info.value.message


def test_missing_file_says_how_to_pull(tmp_path):
    with pytest.raises(ModelNotReady, match="download it first") as info:
        LlamaCppModel("some-model", None, path=tmp_path / "nope.gguf").load()
    assert info.value.details == {"action": "pull", "model": "some-model"}


def test_a_corrupt_registry_model_says_rm_and_pull(tmp_path, broken_gguf):
    from jupyter_llm.registry import ModelSpec

    spec = ModelSpec(id="m", backend="llama_cpp", url="https://example.org/m.gguf")
    with pytest.raises(ModelLoadError, match="delete the model 'm' and pull it again"):
        LlamaCppModel("m", spec, path=broken_gguf("truncated")).load()
