"""Section expansion on a real collection (course excerpt, real MiniLM): passages of adjacent
chunks, merged hits, section boundaries, token budget and true line ranges."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jupyter_llm.retrieval.collection import Collection
from jupyter_llm.retrieval.expansion import ExpansionSettings
from tests.fixtures.retrieval import copy_course_subset

FILES = ["git-novice/episodes/06-ignore.md", "python-novice-inflammation/episodes/06-files.md"]
QUERIES = ["How do I make git ignore all the .dat files in my project?",
           "how can I get the names of all the csv files in a folder from python",
           "ignore files in a subdirectory"]


@pytest.fixture(scope="module")
def coll(course_root, memo_minilm, tmp_path_factory):
    root = tmp_path_factory.mktemp("expansion")
    src = copy_course_subset(course_root, root / "course", FILES)
    c = Collection.create(root / "c.sqlite", embedder=memo_minilm)
    c.ingest([src])
    yield c
    c.close()


def chunks(coll, ids):
    """(document_id, ord, heading, page, n_tokens, text) of chunk ids, in the given order."""
    rows = {r[0]: r[1:] for r in coll.db.execute(
        "SELECT id, document_id, ord, heading, page, n_tokens, text FROM chunks")}
    return [rows[i] for i in ids]


@pytest.mark.parametrize("query", QUERIES)
def test_passages_are_runs_of_adjacent_chunks_with_true_line_ranges(coll, query):
    res = coll.search(query, k=4)
    assert len(res) == 4
    seen: set[int] = set()
    for r in res:
        parts = chunks(coll, r.chunk_ids)
        assert r.chunk_id in r.chunk_ids and not seen & set(r.chunk_ids)  # no chunk twice
        seen |= set(r.chunk_ids)
        assert len({p[0] for p in parts}) == 1 and len({p[3] for p in parts}) == 1
        ords = [p[1] for p in parts]
        assert ords == list(range(ords[0], ords[0] + len(ords)))
        assert len(parts) == 1 or sum(p[4] for p in parts) <= 500
        for p in parts:
            assert p[5].strip() in r.text
        spans = [coll.db.execute("SELECT start_line, end_line FROM chunks WHERE id = ?",
                                 (i,))[0] for i in r.chunk_ids]
        assert (r.start_line, r.end_line) == (spans[0][0], spans[-1][1])
        # every line found once in the file lies inside the range (a chunk's first line
        # is stripped of its indent, so it may match another line: left out)
        lines = (coll.base / r.source).read_text().splitlines()
        inside = lines[r.start_line - 1:r.end_line]
        verbatim = [t for p in parts for t in p[5].splitlines()[1:]
                    if len(t.strip()) > 20 and lines.count(t) == 1]
        assert verbatim and all(t in inside for t in verbatim)
        assert r.to_dict()["chunk_ids"] == r.chunk_ids


@pytest.mark.parametrize("query", QUERIES)
def test_adjacent_hits_merge_so_k_passages_cover_more(coll, query):
    plain = coll.search(query, k=5, expansion=False)
    assert all(r.chunk_ids == [r.chunk_id] for r in plain)
    expanded = coll.search(query, k=5)
    covered = {i for r in expanded for i in r.chunk_ids}
    assert {r.chunk_id for r in plain} <= covered  # every plain hit is still there
    assert len(covered) > len(plain)  # and more material around it
    assert expanded[0].chunk_id == plain[0].chunk_id and expanded.supported == plain.supported


def test_a_hit_next_to_another_joins_its_passage(coll):
    plain = coll.search(QUERIES[0], k=20, expansion=False)
    where = {r.chunk_id: chunks(coll, [r.chunk_id])[0][:2] for r in plain}
    pairs = [(a, b) for a in where for b in where
             if where[a][0] == where[b][0] and where[b][1] == where[a][1] + 1]
    assert pairs, "the query should rank two neighbouring chunks"
    expanded = coll.search(QUERIES[0], k=20,
                           expansion=ExpansionSettings(neighbours=1, max_tokens=8192))
    for a, b in pairs:
        holders = [r for r in expanded if a in r.chunk_ids or b in r.chunk_ids]
        assert len(holders) == 1 and {a, b} <= set(holders[0].chunk_ids)


def test_section_scope_never_crosses_a_heading(coll):
    crossed = False
    for query in QUERIES:
        for r in coll.search(query, k=5, expansion=ExpansionSettings(scope="section",
                                                                     neighbours=3)):
            assert len({p[2] for p in chunks(coll, r.chunk_ids)}) == 1
        for r in coll.search(query, k=5, expansion=ExpansionSettings(scope="document",
                                                                     neighbours=3)):
            crossed |= len({p[2] for p in chunks(coll, r.chunk_ids)}) > 1
    assert crossed  # the document scope does reach into the next heading


def test_budget_bounds_every_grown_passage(coll):
    small = ExpansionSettings(neighbours=5, max_tokens=120)
    for query in QUERIES:
        for r in coll.search(query, k=5, expansion=small):
            parts = chunks(coll, r.chunk_ids)
            assert len(parts) == 1 or sum(p[4] for p in parts) <= 120


def test_settings_are_validated():
    with pytest.raises(ValidationError):
        ExpansionSettings(scope="chapter")
    with pytest.raises(ValidationError):
        ExpansionSettings(neighbours=-1)


def test_single_chunk_documents_rank_as_before(memo_minilm, tmp_path):
    """Like SciFact (one abstract, one chunk): expansion changes nothing in any mode."""
    for i, text in enumerate(["Git records snapshots of a project in commits.",
                              "A shell loop repeats a command for each file.",
                              "NumPy loads a CSV file into an array with loadtxt.",
                              "A .gitignore file lists files Git should not track.",
                              "Functions in Python are defined with def."]):
        (tmp_path / "docs").mkdir(exist_ok=True)
        (tmp_path / "docs" / f"d{i}.txt").write_text(text + "\n")
    c = Collection.create(tmp_path / "one.sqlite", embedder=memo_minilm)
    c.ingest([tmp_path / "docs"])
    try:
        for mode in ("dense", "lexical", "hybrid"):
            for query in ("how do I stop git tracking a file", "load a csv file"):
                plain = c.search(query, k=4, mode=mode, expansion=False)
                grown = c.search(query, k=4, mode=mode)
                assert [(r.source, r.chunk_id, r.score) for r in grown] == [
                    (r.source, r.chunk_id, r.score) for r in plain]
                assert [r.text for r in grown] == [r.text for r in plain]
    finally:
        c.close()
