"""Temperature 0 with a seed gives the same text on every run, whatever ran before it
(a reused prompt prefix must never change the output)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")

from jupyter_llm.backends.llama_cpp import LlamaCppModel  # noqa: E402

PROMPTS = ["Name three colours.", "What is 2 + 2?", "Say hello in French."]


def test_seeded_greedy_answers_do_not_depend_on_the_previous_request(smollm2_gguf):
    model = LlamaCppModel("smollm2", path=smollm2_gguf, n_ctx=512, n_threads=2)
    try:
        def run(prompt: str) -> str:
            return model.prompt(prompt, temperature=0, seed=42, max_tokens=16).text()

        first = {p: run(p) for p in PROMPTS}  # each follows the one before it
        again = {}
        for p in PROMPTS:  # now each follows a prompt sharing all but its last words
            run(p + " Answer briefly.")
            again[p] = run(p)
        assert again == first
        assert len(set(first.values())) > 1  # real, different answers
    finally:
        model.close()
