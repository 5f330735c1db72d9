"""Grounded answers from the real SmolLM2-135M-Instruct over the course excerpt: the shown
answer cites a valid source, does not loop, leaks no special tokens or source paths, and falls
back to quoted sentences of the passages when the model cites nothing.

Kept fast: one model load, three questions, small ``max_tokens``, temperature 0.
"""

from __future__ import annotations

import pytest

from jupyter_llm.backends.llama_cpp import LlamaCppModel
from jupyter_llm.retrieval.answer import ask, build_messages
from jupyter_llm.retrieval.citations import cited_numbers
from jupyter_llm.retrieval.extractive import EVIDENCE_LEAD, EXTRACTIVE_LEAD
from jupyter_llm.retrieval.repetition import find_repetition

QUESTIONS = [
    "how do i stop git from tracking my .dat files",
    "what does a for loop do in python",
    "what is a shell",
]


@pytest.fixture(scope="module")
def smol(smollm2_gguf):
    model = LlamaCppModel.from_path(smollm2_gguf, n_ctx=2048)
    yield model
    model.close()


@pytest.fixture(scope="module")
def course(course_root, memo_minilm, tmp_path_factory):
    from jupyter_llm.retrieval.collection import Collection

    from .fixtures.retrieval import copy_course_subset

    root = tmp_path_factory.mktemp("grounded_real")
    coll = Collection.create(root / "course.sqlite", embedder=memo_minilm, vector_backend="vec")
    coll.ingest([copy_course_subset(course_root, root / "course")])
    yield coll
    coll.close()


def test_the_chat_template_is_applied_to_the_grounded_prompt(smol, course):
    results = course.search(QUESTIONS[0], k=3)
    prompt, stops = smol.format_chat(build_messages(QUESTIONS[0], results))
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_end|>" in stops
    assert not any(c.source in prompt or c.path in prompt for c in results.citations())


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_real_small_model_answer_cites_valid_sources_and_does_not_loop(smol, course,
                                                                          question):
    pieces = []
    answer = ask(course, question, model=smol, k=3, temperature=0, max_tokens=96,
                 on_text=pieces.append)
    assert answer.supported and not answer.retrieval_only
    valid = {c.n for c in answer.citations}
    assert answer.cited and set(cited_numbers(answer.text)) <= valid  # shown: valid [n] only
    assert find_repetition(answer.text) is None
    streamed = "".join(pieces)
    assert "<|im" not in streamed and "<|endoftext|>" not in streamed  # no special tokens
    assert not any(c.source in streamed or c.path in streamed for c in answer.citations)
    check = answer.citation_check
    assert check is not None
    if check.action == "kept":
        # the model's answer, then the focused excerpt of the passages, each quote cited
        assert answer.text.startswith(streamed.rstrip() + "\n\n" + EVIDENCE_LEAD)
        assert check.model_text == streamed and answer.note is None
    else:  # replaced: the note says why, the model's text is kept for review
        assert answer.text.startswith(EXTRACTIVE_LEAD) and check.model_text == streamed
        assert check.reason in answer.note or answer.note


def test_a_real_model_that_cites_nothing_gets_the_extractive_answer(smol, course):
    # two tokens are too few for an answer with a citation: the check must catch it
    answer = ask(course, QUESTIONS[0], model=smol, k=3, temperature=0, max_tokens=2)
    check = answer.citation_check
    assert check.reason == "no_citation" and check.action == "extractive"
    assert check.model_text and cited_numbers(check.model_text) == []
    assert answer.text.startswith(EXTRACTIVE_LEAD) and answer.cited
    assert ".gitignore" in answer.text or "ignore" in answer.text
    assert "cited no source" in answer.note


def test_generation_stops_at_eos_before_max_tokens(smol, course):
    response = smol.prompt(messages=build_messages(QUESTIONS[2], course.search(QUESTIONS[2],
                                                                                k=2)),
                           temperature=0, max_tokens=400, repeat_penalty=1.1)
    text = response.text()
    assert response.finish_reason == "stop" and 0 < response.usage.completion_tokens < 400
    assert "<|im_end|>" not in text and "<|im_start|>" not in text
