"""Collections over the real course (subset) with the real MiniLM, on both vector backends."""

from __future__ import annotations

import shutil

import pytest

from jupyter_llm.errors import NotFound
from jupyter_llm.retrieval.collection import Collection, EmbedderMismatch
from jupyter_llm.retrieval.embedders import HostEmbedder
from tests.fixtures.retrieval import COURSE_SUBSET, write_notebook, write_pdf

# Questions written for the course subset: (question, file that answers it).
IN_SCOPE = [
    ("How do I tell Git to stop tracking files I don't want in the repository?",
     "git-novice/episodes/06-ignore.md"),
    ("Which open source license should I choose for my code?",
     "git-novice/episodes/11-licensing.md"),
    ("How can I get a list of all file names that match a pattern in Python?",
     "python-novice-inflammation/episodes/06-files.md"),
    ("How do I repeat an operation for each element of a list?",
     "python-novice-inflammation/episodes/05-loop.md"),
    ("What is the difference between a command line shell and a graphical interface?",
     "shell-novice/episodes/01-intro.md"),
]
OUT_OF_SCOPE = [
    "What is the capital of France?",
    "How long should I bake sourdough bread?",
    "Who won the football world cup in 2018?",
    "What are the symptoms of influenza?",
]


def open_count(coll: Collection) -> dict[str, int]:
    return {k: coll.info()[k] for k in ("documents", "chunks", "vectors")}


def test_ingest_records_documents_chunks_and_metadata(course_collection):
    info = course_collection.info()
    assert info["documents"] == len(COURSE_SUBSET)
    assert info["chunks"] == info["vectors"] > 50
    assert info["embedder_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["dimensions"] == 384 and info["chunk_size"] == 200
    assert course_collection.check_consistency() == []
    docs = {d["path"]: d for d in course_collection.documents()}
    assert set(docs) == set(COURSE_SUBSET)  # relative to the ingested folder: portable
    assert docs["git-novice/episodes/06-ignore.md"]["title"] == "Ignoring Things"


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_each_mode_finds_the_episode_that_answers(course_collection, mode):
    hits = 0
    for question, source in IN_SCOPE:
        res = course_collection.search(question, k=5, mode=mode)
        assert all(not r.source.startswith("/") for r in res)
        hits += any(r.source == source for r in res)
    assert hits >= len(IN_SCOPE) - (1 if mode == "lexical" else 0)


def test_hybrid_keeps_a_clear_first_place_of_either_list():
    from jupyter_llm.retrieval.search import score_fusion

    dense = [("a", 0.70), ("b", 0.35), ("c", 0.34), ("d", 0.30)]  # a: far ahead on meaning
    lexical = [("c", 9.0), ("b", 8.9), ("e", 8.8), ("a", 8.0), ("d", 1.0)]  # a: close behind
    fused = score_fusion(dense, lexical)
    assert [i for i, _ in fused][:3] == ["a", "b", "c"]  # rank fusion put a third
    assert {i for i, _ in fused} == {"a", "b", "c", "d", "e"}  # one list is enough to count
    assert all(0.0 <= s <= 1.0 for _, s in fused)
    assert [i for i, _ in score_fusion(dense, lexical, dense_weight=1.0)][:4] == list("abcd")
    assert score_fusion([("x", 0.4)], []) == [("x", 0.5)]  # a lone score is the list's best

def test_supported_separates_course_questions_from_others(course_collection):
    for question, _ in IN_SCOPE:
        assert course_collection.search(question).supported, question
    for question in OUT_OF_SCOPE:
        res = course_collection.search(question)
        assert not res.supported, (question, res.top_similarity)
    res = course_collection.search(OUT_OF_SCOPE[0], threshold=0.0)
    # the similarity floor is configurable; terms the course never mentions still count
    assert res.threshold == 0.0 and not res.supported
    assert {"capital", "france"} <= set(res.missing_terms) and "never mentions" in res.reason
    res = course_collection.search(IN_SCOPE[0][0], threshold=0.99)
    assert not res.supported and "best similarity" in res.reason


def test_results_carry_citations_with_lines_and_links(course_collection, tmp_path):
    res = course_collection.search(IN_SCOPE[0][0], k=3, mode="dense")
    top = res[0]
    assert top.source == "git-novice/episodes/06-ignore.md"
    lines = (course_collection.base / top.source).read_text().splitlines()
    assert top.text.splitlines()[0] in lines[top.start_line - 1]
    cite = res.citations()[0]
    assert cite.n == 1 and cite.heading.startswith("Ignoring Things")
    href = cite.href(relative_to=course_collection.path.parent)
    assert href.startswith("course/git-novice/episodes/06-ignore.md")
    md = cite.to_markdown(relative_to=course_collection.path.parent)
    assert md.startswith("[1] [git-novice/episodes/06-ignore.md") and f"({href})" in md
    assert "lines" in cite.label()
    assert "git-novice/episodes/06-ignore.md" in res._repr_markdown_()


def test_source_filter_restricts_results(course_collection):
    for mode in ("dense", "lexical", "hybrid"):
        res = course_collection.search("loop over files", k=4, mode=mode,
                                       source="python-novice-inflammation")
        assert res.results and all(
            r.source.startswith("python-novice-inflammation/") for r in res)
    res = course_collection.search("license", k=3, source="*/11-licensing.md")
    assert {r.source for r in res} == {"git-novice/episodes/11-licensing.md"}


def test_reingest_is_idempotent_and_follows_edits_and_deletions(course_copy, memo_minilm,
                                                                 tmp_path):
    coll = Collection.create(tmp_path / "c.sqlite", embedder=memo_minilm)
    first = coll.ingest([course_copy])
    assert len(first.added) == len(COURSE_SUBSET)
    before = open_count(coll)
    again = coll.ingest([course_copy])
    assert again.added == again.updated == again.removed == [] and len(again.unchanged) == 5
    assert open_count(coll) == before

    edited = course_copy / "git-novice/episodes/11-licensing.md"
    edited.write_text(edited.read_text() + "\n\n## Zebra licensing\n\nThe zebrafish clause "
                      "covers striped software.\n")
    (course_copy / "shell-novice/episodes/01-intro.md").unlink()
    report = coll.ingest([course_copy])
    key = coll.source_key(edited)
    assert report.updated == [key]
    assert report.removed == [coll.source_key(course_copy / "shell-novice/episodes/01-intro.md")]
    assert coll.check_consistency() == []
    res = coll.search("zebrafish clause striped", k=1, mode="lexical")
    assert res[0].source == key and "zebrafish" in res[0].text
    assert all(not r.source.endswith("01-intro.md") for r in coll.search("shell", k=20))
    coll.close()


def test_interrupted_ingest_leaves_a_consistent_collection_and_resumes(course_copy, memo_minilm,
                                                                       tmp_path):
    path = tmp_path / "i.sqlite"
    coll = Collection.create(path, embedder=memo_minilm)
    seen = []

    def stop_after_two(event):
        seen.append(event.path)
        if len(seen) == 2:
            raise KeyboardInterrupt("stopped by the user")

    with pytest.raises(KeyboardInterrupt):
        coll.ingest([course_copy], progress=stop_after_two)
    coll.close()
    coll = Collection.open(path, embedder=memo_minilm)  # a fresh connection sees committed work
    assert coll.check_consistency() == []
    assert 2 <= coll.info()["documents"] < len(COURSE_SUBSET)
    report = coll.ingest([course_copy])
    assert len(report.unchanged) == coll.info()["documents"] - len(report.added)
    assert coll.info()["documents"] == len(COURSE_SUBSET)
    assert coll.check_consistency() == []
    coll.close()


def test_corrupt_pdf_is_skipped_and_reported_while_good_files_ingest(tmp_path, memo_minilm):
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "good.pdf", ["Mitochondria are the powerhouse of the cell."])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage")
    write_notebook(folder / "loops.ipynb")
    coll = Collection.create(tmp_path / "p.sqlite", embedder=memo_minilm)
    events = []
    report = coll.ingest([folder], progress=events.append)
    assert [s["path"] for s in report.skipped] == ["broken.pdf"]  # relative to docs/
    assert "broken.pdf" in report.skipped[0]["error"]
    assert sorted(report.added) == ["good.pdf", "loops.ipynb"]
    assert [e.status for e in events if e.path == "broken.pdf"] == ["skipped"]
    res = coll.search("powerhouse of the cell", k=1)
    assert res[0].source == "good.pdf" and res[0].page == 1
    assert res[0].citation().href(tmp_path).endswith("good.pdf#page=1")
    res = coll.search("how do I count items in a list", k=1, source="loops.ipynb")
    assert res[0].cell_index is not None
    coll.close()


class FakeDimsModel:
    """A host embedding model with the same dimensions but another identity."""

    def embed(self, texts):
        return [[1.0] + [0.0] * 383 for _ in texts]


def test_querying_with_another_embedder_is_a_clear_error(course_collection):
    other = HostEmbedder(FakeDimsModel(), "gguf/nomic-embed-text")
    with pytest.raises(EmbedderMismatch) as info:
        Collection.open(course_collection.path, embedder=other)
    message = info.value.message
    assert "sentence-transformers/all-MiniLM-L6-v2" in message and "gguf/nomic-embed-text" in message
    assert info.value.status == 409
    with pytest.raises(EmbedderMismatch):
        course_collection.use_embedder(other)


def test_opening_a_missing_collection_says_how_to_build_it(tmp_path):
    with pytest.raises(NotFound, match="Build it by ingesting") as info:
        Collection.open(tmp_path / "none.sqlite")
    assert info.value.details["action"] == "ingest"
    assert info.value.details["collection"] == str(tmp_path / "none.sqlite")


def test_collection_file_is_portable(course_collection, tmp_path, memo_minilm):
    moved = tmp_path / "moved"
    moved.mkdir()
    course_collection.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(course_collection.path, moved / "course.sqlite")
    coll = Collection.open(moved / "course.sqlite")  # no embedder given: rebuilt from metadata
    assert coll.embedder.id == memo_minilm.id
    assert coll.search(IN_SCOPE[1][0], k=1)[0].source == IN_SCOPE[1][1]
    coll.close()


def test_support_threshold_is_stored_in_the_file(course_collection):
    question = IN_SCOPE[0][0]
    try:
        course_collection.set_support_threshold(0.99)
        reopened = Collection.open(course_collection.path)
        assert reopened.support_threshold == 0.99
        assert not reopened.search(question).supported
        reopened.close()
    finally:
        course_collection.set_support_threshold(None)
    assert course_collection.search(question).supported
