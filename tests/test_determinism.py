"""Temperature 0 with a seed gives the same text on every run, whatever ran before it
(a reused prompt prefix must never change the output)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")

from jupyter_llm.backends.llama_cpp import LlamaCppModel  # noqa: E402

PROMPTS = ["Name three colours.", "What is 2 + 2?", "Write a haiku about rain.",
           "Say hello in French.", "List two fruits.", "What is Python?",
           "Give me a word that rhymes with cat.", "Count from one to five."]


def test_seeded_greedy_answers_do_not_depend_on_the_previous_request(smollm2_gguf):
    model = LlamaCppModel("smollm2", path=smollm2_gguf, n_ctx=1024, n_threads=2)
    try:
        def run(prompt: str) -> str:
            return model.prompt(prompt, temperature=0, seed=42, max_tokens=24).text()

        solo = {}
        for p in PROMPTS:
            model.close()  # a fresh context: nothing cached
            solo[p] = run(p)
        again = {}
        for p in PROMPTS:  # now every prompt follows another that shares the template prefix
            run(p + " Answer briefly.")
            again[p] = run(p)
        assert again == solo
        assert len(set(solo.values())) > 1  # real, different answers
    finally:
        model.close()
