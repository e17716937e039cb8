"""Rolling-origin folds: where each fold trains and scores, what its scaler sees, how verdicts
pool folds, what a fold change re-runs (a real `dvc repro`), and refused fold lists."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import BuiltPipeline

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.statistics import variance_split
from lstm_vs_rnn.files import read_array
from lstm_vs_rnn.modeling.repeats import training_windows
from lstm_vs_rnn.params import check_folds, fold_bounds, load_params, split_point
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.pipeline import scale
from lstm_vs_rnn.pipeline.evaluate import pooled_over_folds
from lstm_vs_rnn.reporting.claims import FoldBlock, fold_differences, folds_section
from lstm_vs_rnn.stage_names import entry_and_fold, entry_stage, stage_command

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_fold_zero_is_the_split_and_each_fold_steps_back_one_test_part() -> None:
    assert fold_bounds(1000, 0.8, 0) == (split_point(1000, 0.8), 1000) == (800, 1000)
    assert fold_bounds(1000, 0.8, 1) == (600, 800)
    assert fold_bounds(1000, 0.8, 2) == (400, 600)
    # An odd length: every block is as long as the test part, the blocks tile the end.
    assert fold_bounds(309, 0.8, 0) == (247, 309)
    assert fold_bounds(309, 0.8, 1) == (185, 247)


def test_each_fold_trains_before_its_origin_with_a_scaler_of_its_own(tmp_path: Path) -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    folds = params.evaluate.model_copy(update={"folds": [0, 1, 2]})
    params = params.model_copy(update={"evaluate": folds})
    rng = np.random.default_rng(0)
    # A trend, so every fold's training part has another range.
    series = np.linspace(0, 10, 500) + rng.normal(0, 0.1, 500)
    paths = ProjectPaths(tmp_path)
    result = scale.run(params, paths, series)
    for fold in (0, 1, 2):
        origin, end = fold_bounds(len(series), params.data.train_fraction, fold)
        fold_paths = paths.for_fold(fold)
        train = read_array(fold_paths.train_array, "scale")
        test = read_array(fold_paths.test_array, "scale")
        scaler = json.loads(fold_paths.scaler_json.read_text())
        assert len(train) == origin and len(test) == end - origin
        # Fitted on the fold's training part only: its min and max, nothing after the origin.
        assert scaler == {"data_min": series[:origin].min(), "data_max": series[:origin].max()}
        assert train.min() == 0 and train.max() == 1
        span = series[:origin].max() - series[:origin].min()
        np.testing.assert_allclose(test, (series[origin:end] - series[:origin].min()) / span)
        # No training window or target reaches the origin: the last target is value origin-1.
        windows, targets = training_windows(fold_paths.train_array, params.data.window)
        window = params.data.window
        assert len(targets) == len(windows) == origin - window
        assert float(targets[-1]) == pytest.approx(train[origin - 1])
        np.testing.assert_allclose(windows[-1].numpy(), train[origin - 1 - window : origin - 1])
    assert result.metrics["n_train"] == 400 and result.metrics["fold_2.n_train"] == 200


def test_verdicts_pool_each_repeat_over_the_folds() -> None:
    rows = [
        {"fold": fold, "model": model, "repeat": repeat, "seed": 42 + repeat, "test_rmse": value}
        for fold, model, repeat, value in [
            (0, "lstm", 0, 1.0),
            (0, "lstm", 1, 2.0),
            (0, "rnn", 0, 3.0),
            (0, "rnn", 1, 5.0),
            (1, "lstm", 0, 2.0),
            (1, "lstm", 1, 4.0),
            (1, "rnn", 0, 4.0),
            (1, "rnn", 1, 6.0),
        ]
    ]
    table = pd.DataFrame(rows)
    pooled = pooled_over_folds(table)
    assert pooled.to_dict("records") == [
        {"model": "lstm", "repeat": 0, "seed": 42, "test_rmse": 1.5},
        {"model": "lstm", "repeat": 1, "seed": 43, "test_rmse": 3.0},
        {"model": "rnn", "repeat": 0, "seed": 42, "test_rmse": 3.5},
        {"model": "rnn", "repeat": 1, "seed": 43, "test_rmse": 5.5},
    ]
    # One fold: its rows as they are, without the fold column.
    only = table[table["fold"] == 0]
    assert pooled_over_folds(only).equals(only.drop(columns="fold"))
    differences = fold_differences(table, "lstm", "rnn")
    np.testing.assert_array_equal(differences, [[-2.0, -3.0], [-2.0, -2.0]])
    section = "\n".join(
        folds_section([FoldBlock(0, 240, 300), FoldBlock(1, 180, 240)], table, [("lstm", "rnn")])
    )
    split = variance_split(differences).shares()
    assert "| 0 | 1-240 | 241-300 |" in section and "| 1 | 1-180 | 181-240 |" in section
    assert (
        f"| lstm - rnn | -2.5 | -2 | -2.25 | {split['fold']:.0%} | {split['seed']:.0%} "
        f"| {split['interaction']:.0%} |" in section
    )


def test_stage_names_split_back_into_entry_and_fold() -> None:
    assert entry_stage("train", "lstm_tuned", 1) == "train@lstm_tuned-1"
    assert entry_and_fold("train@lstm_tuned-1") == ("lstm_tuned", 1)
    assert entry_and_fold("tune@rnn-0") == ("rnn", 0)
    for other in ("evaluate", "train@lstm", "scale@x-1", "train@-1"):
        assert entry_and_fold(other) is None
    assert stage_command("train@lstm_tuned-1") == ["stages/train.py", "lstm_tuned", "1"]
    assert stage_command("evaluate") == ["stages/evaluate.py"]


@pytest.mark.parametrize(
    ("folds", "message"),
    [
        ([], "evaluate.folds = [] is not allowed; expected a list of distinct fold numbers"),
        ([0, 0], "evaluate.folds = [0, 0] lists a fold twice"),
        ([1, 2], "evaluate.folds = [1, 2] lacks fold 0"),
        ([0, -1], "evaluate.folds = [0, -1] is not allowed"),
        ([0, True], "evaluate.folds = [0, True] is not allowed"),
    ],
)
def test_a_fold_list_that_is_not_one_is_refused(folds: list, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_folds(folds, "evaluate.folds")


def test_a_count_of_folds_says_how_to_write_the_list(tmp_path: Path) -> None:
    text = (REPO_ROOT / "params.yaml").read_text().replace("folds: [0]", "folds: 3")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(UserError) as refused:
        load_params(tmp_path / "params.yaml")
    assert str(refused.value) == (
        "params.yaml: evaluate.folds = 3 is not allowed; expected a list of distinct fold "
        "numbers holding 0, e.g. [0] (the test part only) or [0, 1] (and the block before "
        "it); for 3 folds write [0, 1, 2]"
    )


def test_a_fold_that_would_train_on_too_little_is_refused(tmp_path: Path) -> None:
    text = (REPO_ROOT / "params.yaml").read_text().replace("folds: [0]", "folds: [0, 4]")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(UserError, match=r"fold 4 would train on 0 values.*use fewer folds"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.e2e
def test_adding_a_fold_runs_only_its_stages_and_evaluate_which_pools_both(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    repo = built_pipeline.copy_to(tmp_path / "project")
    lock_before = (repo.root / "dvc.lock").read_text()
    repo.edit_params({"evaluate.folds": [0, 1]})
    ran = repo.dvc("repro").stdout
    started = {line.split("'")[1] for line in ran.splitlines() if line.startswith("Running stage")}
    assert started == {
        "check_params",
        "scale",
        "tune@rnn-1",
        "tune@lstm-1",
        "train@rnn-1",
        "train@lstm-1",
        "evaluate",
    }
    # scale wrote fold 0's files again, byte for byte: nothing of fold 0 ran.
    assert "Stage 'train@rnn-0' didn't change, skipping" in ran
    lock_after = (repo.root / "dvc.lock").read_text()
    assert lock_before.split("train@rnn-0:")[1].split("train@")[0] in lock_after
    claims = (repo.root / "reports" / "claims.md").read_text()
    assert "## Folds (rolling origin)" in claims and "| 1 | 1-180 | 181-240 |" in claims
    repeats = pd.read_csv(repo.root / "reports" / "plots" / "repeats.csv")
    assert sorted(repeats["fold"].unique()) == [0, 1]
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    assert set(metrics["folds"]) == {"fold_0", "fold_1", "variance_shares"}
    # Each repeat's pooled test RMSE is its mean over the two folds.
    rnn = repeats[repeats["model"] == "rnn"].groupby("repeat")["test_rmse"].mean()
    assert metrics["rnn"]["test_rmse"]["mean"] == pytest.approx(rnn.mean())
    # Dropping the fold again: prune removes its outputs and lock entries, nothing re-trains.
    repo.edit_params({"evaluate.folds": [0]})
    pruned = repo.run(
        "python", "-m", "lstm_vs_rnn.commands.prune", env={"PYTHONPATH": "src"}
    ).stdout
    assert "train@rnn-1 in dvc.lock" in pruned and "models/fold_1/rnn/" in pruned
    assert not (repo.root / "models" / "fold_1" / "rnn").exists()
    assert not (repo.root / "tuning" / "fold_1" / "rnn.json").exists()
    again = repo.dvc("repro").stdout
    assert "Running stage 'train@" not in again and "Running stage 'tune@" not in again
