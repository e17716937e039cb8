"""Every benchmark section, at a tiny size, so `make bench` cannot rot.

Checks only that each section runs and reports its rows; a benchmark is a measurement, so no
assertion here is about a time or a verdict.
"""

from pathlib import Path

import pytest

from benchmarks.__main__ import SMOKE, run_all
from benchmarks.report import render

EXPECTED_SECTIONS = {
    "1 throughput",
    "2 edit-repro",
    "3 scale",
    "4 tracking",
    "5 kernels",
    "6 vs base",
    "7 tuning",
    "8 peers",
    "9 repeat workers",
}


@pytest.mark.e2e
def test_every_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    rows = run_all(SMOKE, tmp_path)

    assert {row.section for row in rows} == EXPECTED_SECTIONS
    assert all(row.value for row in rows)
    table = render(rows, "smoke")
    assert "targets:" in table
    stages = [row.measurement for row in rows if row.section == "3 scale"]
    assert any(stage.startswith("evaluate") for stage in stages)
    reference = next(row for row in rows if row.measurement == "reference script")
    assert "test RMSE rnn" in reference.value and "lstm" in reference.value
