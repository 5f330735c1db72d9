"""Schemathesis over every documented route of a real ``jupyter llm serve`` (native, ``/v1``,
Pantry): a bounded, seeded run finds no 5xx and no answer that breaks the document
(`make fuzz` runs the long version; its numbers are in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

pytest.importorskip("schemathesis")
pytest.importorskip("llama_cpp")

from jupyter_llm.testing.api_fuzz import run_fuzz  # noqa: E402


@pytest.mark.timeout(900)
def test_fuzzing_every_route_finds_no_5xx_and_no_schema_violation(tmp_path):
    numbers = run_fuzz(max_examples=3, seed=11, phases="examples,fuzzing", max_time=600,
                       report_dir=tmp_path / "report")
    assert numbers["operations"] >= 31, numbers["output"]
    assert numbers["test_cases"] >= 100, numbers["output"]
    assert numbers["server_errors"] == 0, numbers["statuses"]
    assert numbers["failures"] == {}, numbers["failure_examples"]
    assert numbers["server_tracebacks"] == 0
    assert numbers["exit_code"] == 0, numbers["output"]
