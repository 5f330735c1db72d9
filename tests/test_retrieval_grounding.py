"""Retrieval that finds the answer and abstains when the course never mentions the subject.

Chunking keeps a code block with the sentence that introduces it, ingest leaves licence and
boilerplate files out of folders (reported, overridable), and "not covered" catches
in-domain questions about things the collection never mentions, with the real MiniLM.
"""

from __future__ import annotations

import pytest

from jupyter_llm.errors import InvalidOptions
from jupyter_llm.retrieval.chunking import ChunkerSettings, chunk_sections
from jupyter_llm.retrieval.collection import Collection
from jupyter_llm.retrieval.ingest import is_boilerplate
from jupyter_llm.retrieval.loaders import load_file
from jupyter_llm.retrieval.support import SupportSettings, question_terms

FILLER = "\n\n".join(f"Paragraph {i} says something general about files and folders in the "
                     "shell, with enough words to take some room in a chunk." for i in range(8))


def test_a_code_block_stays_with_the_sentence_that_explains_it(tmp_path, minilm):
    path = tmp_path / "ep.md"
    path.write_text(f"# Listing\n\n{FILLER}\n\nTo see the newest files first, sort by time "
                    "with:\n\n```bash\n$ ls -t\n```\n\n```output\nnew.txt  old.txt\n```\n\n"
                    f"The newest file comes first.\n\n{FILLER}\n")
    chunks = chunk_sections(load_file(path).sections, ChunkerSettings(chunk_size=96,
                                                                      chunk_overlap=16),
                            minilm.count_tokens)
    assert len(chunks) > 4 and all(c.n_tokens <= 96 for c in chunks)
    [code] = [c for c in chunks if "$ ls -t" in c.text]
    assert "To see the newest files first, sort by time with:" in code.text
    assert "new.txt  old.txt" in code.text and code.text.endswith("The newest file comes first.")
    lines = path.read_text().splitlines()
    assert code.text.startswith(lines[code.start_line - 1])
    assert lines[code.end_line - 1] == "The newest file comes first."


def test_ingest_leaves_boilerplate_out_reports_it_and_can_be_told_otherwise(tmp_path,
                                                                             memo_minilm):
    course = tmp_path / "course"
    (course / "episodes").mkdir(parents=True)
    (course / "episodes" / "01-loops.md").write_text("# Loops\n\nA for loop repeats commands.\n")
    (course / "LICENSE.md").write_text("# Licence\n\nCC BY 4.0, attribution required.\n")
    (course / "CODE_OF_CONDUCT.md").write_text("# Code of conduct\n\nBe kind.\n")
    assert is_boilerplate("CITATION.cff") and not is_boilerplate("episodes/license-plates.py")
    with Collection.create(tmp_path / "c.sqlite", embedder=memo_minilm) as coll:
        report = coll.ingest([course])
        assert report.added == ["episodes/01-loops.md"]
        assert sorted(report.excluded) == ["CODE_OF_CONDUCT.md", "LICENSE.md"]
        assert "2 left out as not course content" in report.summary()
        # an include glob that names the file, or the file itself, brings it in
        report = coll.ingest([course], include=["LICENSE*"])
        assert report.added == ["LICENSE.md"] and report.excluded == []
        report = coll.ingest([course / "CODE_OF_CONDUCT.md"])
        assert report.added == ["CODE_OF_CONDUCT.md"]
        assert len(coll.documents()) == 3


def test_question_terms_keep_code_like_names_whole():
    terms = question_terms("How do I cherry-pick with git commit --amend and scipy.optimize?")
    assert terms[:3] == ["cherry-pick", "--amend", "scipy.optimize"]
    assert "how" not in terms and "cherry" not in terms and "git" in terms


COVERED = [
    "How do I stop git from tracking my results folder?",
    "I really need Python to give me every csv file name in a folder anyway, how?",
    "How do I repeat something for each item in a list?",
]
NOT_MENTIONED = [
    "How do I cherry-pick a commit from another branch?",
    "How do I use awk to print the third column of a file?",
    "How do I write unit tests with pytest?",
    "How do I undo my last commit with git commit --amend?",
]


def test_not_covered_catches_what_the_course_never_mentions(course_collection):
    for question in COVERED:
        res = course_collection.search(question)
        assert res.supported, (question, res.reason)
    for question in NOT_MENTIONED:
        res = course_collection.search(question)
        assert not res.supported and res.reason, question
        assert res.to_dict()["reason"] == res.reason
    for question in NOT_MENTIONED[:1]:  # close to the course, yet not in it
        res = course_collection.search(question)
        assert "never mentions" in res.reason and res.missing_terms, question


def test_support_settings_are_recorded_in_the_file_and_inspectable(course_collection):
    coll = course_collection
    defaults = coll.support_settings
    assert coll.info()["support"] == defaults.model_dump()
    try:
        coll.set_support_settings(term_centrality=2.0, confident_similarity=0.9)
        reopened = Collection.open(coll.path, embedder=coll.embedder)
        assert reopened.support_settings.term_centrality == 2.0
        assert reopened.support_settings.confident_similarity == 0.9
        reopened.close()
        # with no word counted, a code-like term still marks a question
        assert "cherry-pick" in coll.search(NOT_MENTIONED[0]).missing_terms
        coll.set_support_settings(term_centrality=None, confident_similarity=-1.0)
        assert "cherry-pick" in coll.search(NOT_MENTIONED[0]).missing_terms  # still code-like
        with pytest.raises(InvalidOptions, match="Unknown support settings: centrality"):
            coll.set_support_settings(centrality=1.0)
        with pytest.raises(InvalidOptions, match="term_centrality"):
            coll.set_support_settings(term_centrality=-1.0)
        with pytest.raises(InvalidOptions, match="min_similarity"):
            coll.set_support_threshold(1.01)  # a cosine similarity is at most 1
    finally:
        coll.set_support_settings(term_centrality=None, confident_similarity=None)
    assert coll.support_settings == defaults == SupportSettings(
        min_similarity=defaults.min_similarity)
