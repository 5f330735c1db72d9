"""Portable collections: sources are relative to the ingested folder (the collection's base), so
a collection copied with its course folder still opens every citation, a second copy of the
same material adds nothing, and collections of the old schema are migrated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jupyter_llm.retrieval.collection import Collection
from jupyter_llm.retrieval.schema import SCHEMA_VERSION, read_meta, write_meta
from tests.fixtures.retrieval import COURSE_SUBSET, copy_course_subset

GIT = [f for f in COURSE_SUBSET if f.startswith("git-novice/")]
SHELL = [f for f in COURSE_SUBSET if f.startswith("shell-novice/")]


@pytest.fixture
def emb(memo_minilm):
    return memo_minilm


def _keys(coll: Collection) -> list[str]:
    return [d["path"] for d in coll.documents()]


def test_sources_are_relative_to_the_ingested_folder(tmp_path, course_root, emb):
    course = copy_course_subset(course_root, tmp_path / "teaching" / "course")
    coll = Collection.create(tmp_path / "elsewhere" / "c.sqlite", embedder=emb)
    coll.ingest([course])
    assert _keys(coll) == sorted(COURSE_SUBSET)  # no absolute path, no folder above it
    assert coll.base == course.resolve()
    assert coll.meta.base_from_file == "../teaching/course"
    hit = coll.search("ignore files with .gitignore", k=1)[0]
    assert hit.source == "git-novice/episodes/06-ignore.md"
    assert Path(hit.path) == course.resolve() / hit.source and Path(hit.path).is_file()


def test_a_collection_copied_with_its_folder_opens_every_citation(tmp_path, course_root, emb):
    first = tmp_path / "first"
    course = copy_course_subset(course_root, first / "course")
    coll = Collection.create(first / "course.sqlite", embedder=emb)
    coll.ingest([course])
    coll.close()
    second = tmp_path / "second"
    shutil.copytree(first, second)
    shutil.rmtree(first)  # the original is gone: nothing may point there

    moved = Collection.open(second / "course.sqlite", embedder=emb)
    assert moved.base == (second / "course").resolve()
    answer = moved.ask("How do I make git ignore a folder of build files?", k=5)
    assert answer.citations
    for c in answer.citations:
        assert not Path(c.source).is_absolute()
        assert Path(c.path).is_file() and Path(c.path).is_relative_to(second.resolve())
        href = c.href(second / "notebooks").split("#")[0]
        assert (second / "notebooks" / href).resolve().is_file()  # the link opens the file
    assert sorted(moved.ingest([second / "course"]).unchanged) == sorted(COURSE_SUBSET)
    moved.close()


def test_the_same_material_from_a_second_copy_is_not_added_twice(tmp_path, course_root, emb):
    a = copy_course_subset(course_root, tmp_path / "a" / "course")
    b = copy_course_subset(course_root, tmp_path / "b" / "course")
    coll = Collection.create(tmp_path / "collections" / "course.sqlite", embedder=emb)
    assert len(coll.ingest([a]).added) == len(COURSE_SUBSET)
    (b / GIT[0]).write_text((b / GIT[0]).read_text() + "\nA line added in the copy.\n")

    report = coll.ingest([b])  # the same notebook run from a second copy of the folder
    assert report.added == [] and report.removed == []
    assert report.updated == [GIT[0]] and len(report.unchanged) == len(COURSE_SUBSET) - 1
    assert coll.info()["documents"] == len(COURSE_SUBSET)
    assert coll.base == b.resolve()  # citations now open the copy that was ingested
    assert not coll.check_consistency()


def test_other_material_widens_the_base_without_clashing(tmp_path, course_root, emb):
    course = copy_course_subset(course_root, tmp_path / "course")
    coll = Collection.create(tmp_path / "c.sqlite", embedder=emb)
    coll.ingest([course / "git-novice"])
    assert _keys(coll) == sorted(f.removeprefix("git-novice/") for f in GIT)
    coll.ingest([course / "shell-novice"])  # a sibling folder with its own files
    assert _keys(coll) == sorted(GIT + SHELL)
    assert coll.base == course.resolve()
    for d in coll.documents():
        assert coll.resolve_source(d["path"]).is_file()
    assert sorted(coll.ingest([course / "git-novice"]).unchanged) == sorted(GIT)


def test_an_old_collection_is_migrated_and_keeps_working(tmp_path, course_root, emb):
    course = copy_course_subset(course_root, tmp_path / "course")
    path = tmp_path / "store" / "old.sqlite"
    coll = Collection.create(path, embedder=emb)
    coll.ingest([course])
    # rewrite it as schema 1 wrote it: absolute sources, no base
    with coll.db.transaction():
        for key in _keys(coll):
            coll.db.execute("UPDATE documents SET path = ? WHERE path = ?",
                            ((course.resolve() / key).as_posix(), key))
        coll.meta.schema_version, coll.meta.base, coll.meta.base_from_file = 1, None, None
        write_meta(coll.db, coll.meta)
    coll.close()

    old = Collection.open(path, embedder=emb)
    assert read_meta(old.db).schema_version == SCHEMA_VERSION
    assert _keys(old) == sorted(COURSE_SUBSET) and old.base == course.resolve()
    assert old.search("gitignore", k=1)[0].source == "git-novice/episodes/06-ignore.md"
    report = old.ingest([course])
    assert report.added == [] and len(report.unchanged) == len(COURSE_SUBSET)
    old.close()


