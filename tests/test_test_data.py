"""The data the tests read: the course excerpt ships with them; data from ``../shared`` is
skipped where it is missing, except in CI, where a skip would hide it was never provided."""

from __future__ import annotations

import pytest

from tests.fixtures import retrieval


def test_the_course_excerpt_ships_with_the_tests_and_its_attribution():
    for rel in retrieval.COURSE_SUBSET:
        assert (retrieval.COURSE / rel).is_file(), rel
    readme = (retrieval.COURSE / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in readme and "The Carpentries" in readme
    assert all(rel in readme for rel in retrieval.COURSE_SUBSET)


def test_missing_shared_data_fails_loudly_in_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(retrieval, "SHARED", tmp_path / "missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="is missing"):
        retrieval.shared_path("eval", "course")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="is missing"):
        retrieval.shared_path("eval", "course")
    (tmp_path / "missing" / "eval").mkdir(parents=True)
    assert retrieval.shared_path("eval") == tmp_path / "missing" / "eval"
