"""The same params give the same bytes: forced re-runs and a fresh copy reproduce dvc.lock."""

from pathlib import Path

import pytest
import yaml
from conftest import make_pipeline_repo

pytestmark = pytest.mark.e2e


def output_hashes(lock: bytes) -> dict[str, str]:
    """Every output of every stage, path -> md5, as dvc.lock records it."""
    stages = yaml.safe_load(lock)["stages"]
    return {
        f"{stage}:{out['path']}": out.get("md5", "")
        for stage, entry in stages.items()
        for out in entry.get("outs", [])
    }


def test_forced_reruns_and_a_fresh_copy_reproduce_dvc_lock_byte_for_byte(tmp_path: Path) -> None:
    first = make_pipeline_repo(tmp_path / "first")
    first.dvc("repro", "--force")
    lock_one = (first.root / "dvc.lock").read_bytes()
    first.dvc("repro", "--force")
    lock_two = (first.root / "dvc.lock").read_bytes()

    fresh = make_pipeline_repo(tmp_path / "fresh")
    fresh.dvc("repro")
    lock_fresh = (fresh.root / "dvc.lock").read_bytes()

    hashes = output_hashes(lock_one)
    assert {"train@lstm:models/lstm/model.pt", "train@rnn:models/rnn/model.pt"} <= set(hashes)
    assert all(hashes.values()), hashes
    assert output_hashes(lock_two) == hashes
    assert output_hashes(lock_fresh) == hashes
    assert lock_two == lock_one
    assert lock_fresh == lock_one
    # The thread count that makes LSTM weights reproducible is a tracked param of training.
    stages = yaml.safe_load(lock_one)["stages"]
    assert stages["train@lstm"]["params"]["params.yaml"]["train"]["num_threads"] == 1
    assert (fresh.root / "reports" / "metrics.json").read_bytes() == (
        first.root / "reports" / "metrics.json"
    ).read_bytes()
