"""Grounded answers: numbered sources, [n] citations, refusals, and the retrieval-only fallback."""

from __future__ import annotations

import re

from jupyter_llm.errors import ModelNotReady
from jupyter_llm.retrieval.answer import NOT_COVERED, RETRIEVAL_ONLY, ask, build_messages


class QuotingModel:
    """A chat model double that answers by quoting the first sentence of source [1]."""

    model_id = "quoting"

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def prompt(self, *, messages, stream=True, **options):
        self.calls.append({"messages": messages, "stream": stream, **options})
        user = messages[-1]["content"]
        first = re.search(r"\[1\] [^\n]*\n([^\n]+)", user).group(1)
        yield from ["According to the course, ", first.strip()[:80], " [1]."]


class UnavailableModel:
    model_id = "not-downloaded"

    def prompt(self, *, messages, stream=True, **options):
        raise ModelNotReady("Model 'not-downloaded' is not installed; run `jupyter llm pull`.")


QUESTION = "How do I tell Git to ignore files I don't want to track?"


def test_prompt_numbers_sources_and_asks_for_citations(course_collection):
    results = course_collection.search(QUESTION, k=3)
    messages = build_messages(QUESTION, results)
    assert messages[0]["role"] == "system" and "[1]" in messages[0]["content"]
    user = messages[1]["content"]
    for n, (c, r) in enumerate(zip(results.citations(), results), start=1):
        assert f"[{n}] {c.short_title()}\n" in user and r.source not in user
    assert user.rstrip().endswith("citing sources like [1].") and QUESTION in user


def test_answer_streams_from_the_model_and_links_cited_sources(course_collection):
    model = QuotingModel()
    pieces = []
    answer = ask(course_collection, QUESTION, model=model, k=3, on_text=pieces.append,
                 temperature=0)
    streamed = "".join(pieces)  # the model's own answer, as it streamed
    assert streamed.endswith("[1].") and answer.citation_check.model_text == streamed
    # the kept answer is shown with its evidence: quotes of the passages, each cited
    assert answer.text.startswith(streamed)
    assert answer.text[len(streamed):].lstrip().startswith("From the course materials:")
    assert model.calls[0]["stream"] is True and model.calls[0]["temperature"] == 0
    assert answer.supported and not answer.retrieval_only and answer.model == "quoting"
    assert answer.citation_check.cited == [1] and answer.cited[0] == 1  # the evidence may add more
    md = answer.to_markdown(relative_to=course_collection.path.parent)
    assert "**Sources**" in md and "(course/git-novice/episodes/06-ignore.md#" in md
    assert answer.to_dict()["citations"][0]["source"] == answer.citations[0].source


def test_without_a_model_the_answer_is_the_cited_passages(course_collection):
    answer = course_collection.ask(QUESTION, k=2)
    assert answer.retrieval_only and answer.text.startswith(RETRIEVAL_ONLY)
    assert "[1] " in answer.text and "[2] " in answer.text
    assert len(answer.citations) == 2 and "Sources" in answer._repr_markdown_()


def test_an_unavailable_model_falls_back_to_retrieval_only_with_a_note(course_collection):
    answer = ask(course_collection, QUESTION, model=UnavailableModel(), k=2)
    assert answer.retrieval_only and answer.text.startswith(RETRIEVAL_ONLY)
    assert "not installed" in answer.note


def test_questions_outside_the_course_are_refused_without_calling_the_model(course_collection):
    model = QuotingModel()
    answer = ask(course_collection, "What is the capital of France?", model=model)
    assert not answer.supported and answer.text.startswith(NOT_COVERED)
    assert model.calls == []
