"""Options are validated at the edge and errors name the field and the allowed values."""

import pytest

from jupyter_llm.backends.llama_cpp import LlamaCppOptions
from jupyter_llm.backends.openai import OpenAIOptions
from jupyter_llm.errors import InvalidOptions
from jupyter_llm.options import Options, parse_option_pairs, validate_options


def test_valid_options_keep_only_what_was_set():
    opts = validate_options(Options, {"temperature": 0, "stop": "###", "max_tokens": 5})
    assert opts.set_options() == {"temperature": 0.0, "stop": ["###"], "max_tokens": 5}


def test_out_of_range_value_names_the_field():
    with pytest.raises(InvalidOptions) as info:
        validate_options(Options, {"temperature": 7})
    assert "temperature" in info.value.message
    assert info.value.details["fields"][0]["field"] == "temperature"
    assert info.value.status == 422


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(InvalidOptions) as info:
        validate_options(Options, {"temprature": 0.5})
    assert "temprature" in info.value.message
    assert "Known options: temperature" in info.value.message
    assert "temperature" in info.value.details["allowed"]


def test_backends_add_their_own_options():
    assert "min_p" in LlamaCppOptions.model_fields
    assert "frequency_penalty" in OpenAIOptions.model_fields
    with pytest.raises(InvalidOptions):
        validate_options(Options, {"min_p": 0.1})
    assert validate_options(LlamaCppOptions, {"min_p": 0.1}).min_p == 0.1


def test_option_pairs_parse_json_values():
    assert parse_option_pairs(["temperature=0.2", "stop=[\"a\",\"b\"]", "max-tokens=3", "x=hi"]) == {
        "temperature": 0.2, "stop": ["a", "b"], "max_tokens": 3, "x": "hi"}


def test_option_pair_without_equals_is_a_clear_error():
    with pytest.raises(InvalidOptions, match="key=value"):
        parse_option_pairs(["temperature"])
