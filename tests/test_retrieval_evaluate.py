"""The evaluation harness: question files validated by line, metrics per model, partial runs."""

from __future__ import annotations

import io
import json
import re

import pytest

from jupyter_llm.errors import InvalidOptions, NotFound, QuestionFileError
from jupyter_llm.retrieval.evaluate import RETRIEVAL_ONLY_NAME, evaluate
from jupyter_llm.retrieval.questions import Question, load_questions, matches, parse_questions

GOOD = [
    "# a comment, then a blank line",
    "",
    '{"question": "How do I ignore files in git?", "sources": ["git-novice/episodes/06-ignore.md"],'
    ' "contains": [".gitignore"]}',
    '{"question": "Which loop prints each letter?", "contains": [["for letter", "for char"]],'
    ' "id": 7}',
    '{"question": "How do I bake sourdough bread?", "unanswerable": true}',
]


def test_a_question_file_parses_comments_alternatives_and_unanswerable():
    qs = parse_questions(GOOD, "q.jsonl")
    assert [q.line for q in qs] == [3, 4, 5]
    assert qs[0].sources == ["git-novice/episodes/06-ignore.md"] and qs[0].contains == [".gitignore"]
    assert qs[1].id == "7" and qs[1].contains == [["for letter", "for char"]]
    assert qs[2].unanswerable and not qs[2].sources
    assert qs[0].source_matches("course/git-novice/episodes/06-ignore.md")
    assert qs[0].source_matches("git-novice/episodes/06-ignore.md")
    assert not qs[0].source_matches("other-git-novice/episodes/06-ignore.md")
    assert Question(**{k: v for k, v in qs[1].to_dict().items() if k != "line"}).contains == \
        qs[1].contains


def test_contains_ignores_case_and_whitespace_and_needs_every_string():
    assert matches("Use  the\nGIT  revert command", ["git revert", ["command", "order"]])
    assert not matches("use git revert", ["git revert", "HEAD~1"])
    assert not matches("use git revert", [["reset", "restore"]])


@pytest.mark.parametrize(("line", "problem"), [
    ('{"question": "x", "contains": ["a"]', "not valid JSON"),
    ('["just", "a", "list"]', "must be a JSON object"),
    ('{"contains": ["a"]}', "'question' is missing or empty"),
    ('{"question": "   "}', "'question' is missing or empty"),
    ('{"question": "x", "contain": ["a"]}', "unknown field 'contain'"),
    ('{"question": "x", "contains": []}', "'contains' must be a string or a non-empty list"),
    ('{"question": "x", "contains": [3]}', "got 3"),
    ('{"question": "x", "sources": [["a", "b"]]}', "'sources' must be"),
    ('{"question": "x", "unanswerable": "yes"}', "'unanswerable' must be true or false"),
    ('{"question": "x", "unanswerable": true, "contains": ["a"]}', "cannot list 'sources'"),
])
def test_a_malformed_line_is_named_with_its_problem(line, problem):
    with pytest.raises(QuestionFileError) as e:
        parse_questions([GOOD[2], "", line], "questions.jsonl")
    assert e.value.message.startswith("questions.jsonl line 3: ")
    assert problem in e.value.message
    assert e.value.details == {"path": "questions.jsonl", "line": 3}
    assert e.value.status == 400 and e.value.type == "invalid_question_file"


def test_empty_and_missing_question_files_say_what_to_do(tmp_path):
    (tmp_path / "empty.jsonl").write_text("# only a comment\n\n")
    with pytest.raises(QuestionFileError, match="has no questions; write one JSON object"):
        load_questions(tmp_path / "empty.jsonl")
    with pytest.raises(NotFound, match="No question file at"):
        load_questions(tmp_path / "missing.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes('{"question": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(QuestionFileError, match="save it as UTF-8"):
        load_questions(tmp_path / "latin1.jsonl")


QUESTIONS = [
    Question("how do I stop git from tracking a build folder?",
             ["git-novice/episodes/06-ignore.md"], [".gitignore"]),
    Question("how can I get the list of csv files in a folder from python?",
             ["python-novice-inflammation/episodes/06-files.md"], ["glob.glob"]),
    Question("What is the best recipe for sourdough bread with a rye starter?",
             unanswerable=True),
]


class CitingModel:
    """A chat-model double: answers with the first line of source [cite] and cites [cite]."""

    def __init__(self, model_id: str, cite: int) -> None:
        self.model_id = model_id
        self.cite = cite

    def prompt(self, *, messages, stream=True, **options):
        user = messages[-1]["content"]
        m = re.search(rf"\[{self.cite}\][^\n]*\n([^\n]+)", user)
        first = m.group(1) if m else "no such source"
        yield from [first.strip(), f" [{self.cite}]"]


class RefusingOptionsModel:
    model_id = "strict"

    def prompt(self, *, messages, stream=True, **options):
        raise InvalidOptions("Unknown option 'temprature'; did you mean 'temperature'?")


pytestmark_coll = pytest.mark.parametrize("course_collection", ["vec"], indirect=True)


@pytestmark_coll
def test_retrieval_only_measures_hits_abstention_and_writes_every_answer(course_collection,
                                                                         tmp_path):
    answers = tmp_path / "out" / "answers.jsonl"
    seen = []
    report = evaluate(course_collection, QUESTIONS, k=5, answers=answers,
                      progress=lambda p: seen.append((p.done, p.total, p.model)))
    assert seen == [(1, 3, RETRIEVAL_ONLY_NAME), (2, 3, RETRIEVAL_ONLY_NAME),
                    (3, 3, RETRIEVAL_ONLY_NAME)]
    (m,) = report.models
    metrics = m.metrics
    assert metrics["questions"] == 3 and metrics["covered"] == 2 and metrics["uncovered"] == 1
    assert metrics["source_hit"] == 1.0 and metrics["contains_hit"] == 1.0
    assert metrics["uncovered_flagged"] == 1.0 and metrics["covered_flagged"] == 0.0
    assert metrics["abstention_accuracy"] == 1.0
    assert metrics["cites_valid"] is None  # no model answered
    assert 0 < metrics["p50_s"] <= metrics["p95_s"]
    lines = [json.loads(x) for x in answers.read_text().splitlines()]
    assert [x["question"] for x in lines] == [q.question for q in QUESTIONS]
    assert lines[0]["retrieved"][0]["source"].endswith(".md") and lines[2]["flagged"] is True
    text = report.to_text()
    assert "source hit@5" in text and RETRIEVAL_ONLY_NAME in text and str(answers) in text
    assert report.to_dict()["models"][0]["metrics"]["source_hit"] == 1.0
    assert "| uncovered flagged | 1.000 |" in report._repr_markdown_()


@pytestmark_coll
def test_models_are_compared_side_by_side_with_citation_checks(course_collection):
    models = {"cites-1": CitingModel("a", 1), "cites-9": CitingModel("b", 9)}
    buf = io.StringIO()
    report = evaluate(course_collection, QUESTIONS[:2], models=models, k=3, answers=buf,
                      temperature=0)
    good, bad = report.models
    assert [good.model, bad.model] == ["cites-1", "cites-9"]
    assert good.metrics["cites_valid"] == 1.0 and bad.metrics["cites_valid"] == 0.0
    assert bad.items[0].invalid_cited == [9] and bad.items[0].cited == []
    assert good.metrics["cites_correct"] == 1.0  # [1] is the expected file on this subset
    assert bad.metrics["cites_correct"] == 0.0
    assert len(buf.getvalue().splitlines()) == 4
    header = report.to_text().splitlines()[0]
    assert "cites-1" in header and "cites-9" in header


@pytestmark_coll
def test_a_model_error_is_recorded_and_the_run_goes_on(course_collection):
    report = evaluate(course_collection, QUESTIONS[:2], models=[RefusingOptionsModel(), None])
    strict, retrieval = report.models
    assert [i.error for i in strict.items] == ["Unknown option 'temprature'; did you mean "
                                               "'temperature'?"] * 2
    assert strict.metrics["errors"] == 2 and "errors" in report.to_text()
    assert retrieval.metrics["errors"] == 0 and retrieval.metrics["source_hit"] == 1.0


@pytestmark_coll
def test_ctrl_c_keeps_what_was_measured(course_collection, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(q.to_dict()) for q in QUESTIONS))
    answers = tmp_path / "answers.jsonl"

    def interrupt_after_two(p):
        if p.done == 2:
            raise KeyboardInterrupt

    report = evaluate(course_collection, path, models=[None, CitingModel("m", 1)],
                      answers=answers, progress=interrupt_after_two)
    assert report.interrupted and report.done == 2 and report.total == 6
    assert len(answers.read_text().splitlines()) == 2
    assert "Interrupted: measured 2 of 6; these are partial results." in report.to_text()
    assert report.models[1].items == [] and report.models[1].metrics["source_hit"] is None
