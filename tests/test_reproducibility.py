"""The same params give the same bytes: a forced re-run reproduces dvc.lock byte for byte.

A fresh clone reproducing the committed dvc.lock is checked in test_pipeline_e2e.py.
"""

from pathlib import Path

import pytest
from conftest import BuiltPipeline

from lstm_vs_rnn.params import parse_yaml

pytestmark = pytest.mark.e2e


def output_hashes(lock: bytes) -> dict[str, str]:
    """Every output of every stage, path -> md5, as dvc.lock records it."""
    stages = parse_yaml(lock)["stages"]
    return {
        f"{stage}:{out['path']}": out.get("md5", "")
        for stage, entry in stages.items()
        for out in entry.get("outs", [])
    }


def test_a_forced_rerun_reproduces_dvc_lock_byte_for_byte(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    repo = built_pipeline.copy_to(tmp_path / "project")
    lock_one = (repo.root / "dvc.lock").read_bytes()
    metrics_one = (repo.root / "reports" / "metrics.json").read_bytes()
    repo.dvc("repro", "--force")
    lock_two = (repo.root / "dvc.lock").read_bytes()

    hashes = output_hashes(lock_one)
    assert {"train@lstm:models/lstm", "train@rnn:models/rnn"} <= set(hashes)
    assert all(hashes.values()), hashes
    assert output_hashes(lock_two) == hashes
    assert lock_two == lock_one
    assert (repo.root / "reports" / "metrics.json").read_bytes() == metrics_one
    # The thread count that makes LSTM weights reproducible is a tracked param of training.
    stages = parse_yaml(lock_one)["stages"]
    tracked = stages["train@lstm"]["params"]["params.yaml"]
    assert tracked["train.num_threads"] == 1
    # The number of worker processes changes no output, so DVC does not track it.
    assert "train.workers" not in tracked
