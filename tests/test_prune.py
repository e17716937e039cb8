"""Removing a model entry: its outputs and dvc.lock entry go, as `make run` prunes them.

Real `dvc repro` in a project copy, and the prune command `make run` runs before it.
"""

import json
from pathlib import Path

import pytest
from conftest import BuiltPipeline, PipelineRepo

pytestmark = pytest.mark.e2e


def prune(repo: PipelineRepo) -> str:
    return repo.run("python", "-m", "lstm_vs_rnn.commands.prune", env={"PYTHONPATH": "src"}).stdout


def test_a_removed_model_entry_leaves_no_output_lock_entry_or_plot(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    repo = built_pipeline.copy_to(tmp_path / "project")
    assert prune(repo) == ""  # nothing stale
    params = repo.params()
    del params["models"]["lstm"]
    repo.edit_params({"models": params["models"]})
    assert prune(repo).strip() == (
        "removed what no model entry and fold in params.yaml names any more: tune@lstm-0 in "
        "dvc.lock, train@lstm-0 in dvc.lock, tuning/fold_0/lstm.json, models/fold_0/lstm/, "
        "reports/figures/fold_0/loss_lstm.png, reports/plots/losses/fold_0/lstm.csv "
        "(DVC's cache keeps their content until 'dvc gc')"
    )
    lock = (repo.root / "dvc.lock").read_text()
    assert "@lstm" not in lock and "train@rnn-0" in lock and "tune@rnn-0" in lock
    for gone in (
        "tuning/fold_0/lstm.json",
        "models/fold_0/lstm",
        "reports/figures/fold_0/loss_lstm.png",
        "reports/plots/losses/fold_0/lstm.csv",
    ):
        assert not (repo.root / gone).exists(), gone
    assert (repo.root / "models" / "fold_0" / "rnn").is_dir() and (
        repo.root / "tuning" / "fold_0" / "rnn.json"
    ).exists()
    assert "@lstm" not in repo.dvc("repro").stdout
    assert "@lstm" not in (repo.root / "dvc.lock").read_text()
    assert "up to date" in repo.dvc("status").stdout
    shown = json.loads(repo.dvc("plots", "show", "--json").stdout)
    assert not [key for key in json.dumps(shown).split('"') if "loss_lstm" in key]
    assert prune(repo) == ""
