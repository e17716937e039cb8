"""The pipeline end to end: real `dvc repro` in a real git repo, checked in the real store."""

import json
import re
import shutil
import sqlite3
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from numpy.lib.stride_tricks import sliding_window_view

from lstm_vs_rnn.params import parse_yaml
from tests.conftest import (
    EDITED_LSTM_HIDDEN_SIZE,
    TINY_STAGES,
    BuiltPipeline,
    PipelineRepo,
    clean_env,
    run_statuses,
)

pytestmark = pytest.mark.e2e

STAGES = TINY_STAGES
# The stages with an MLflow run: not the params check, nor a tune stage of an entry that does
# not tune (the tiny params turn tuning off): they have nothing to track.
TRACKED_STAGES = [stage for stage in STAGES[1:] if not stage.startswith("tune@")]
EXPERIMENT = "lstm-vs-rnn"


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def parents(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], "tags.`pipeline.role` = 'configuration'")


def children(client: MlflowClient, parent_id: str) -> dict[str, object]:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )
    return {run.data.tags["dvc.stage"]: run for run in runs}


def parent_with(client: MlflowClient, key: str, value: str):
    matches = [run for run in parents(client) if run.data.params.get(key) == value]
    assert len(matches) == 1, [run.data.params.get(key) for run in parents(client)]
    return matches[0]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, built_pipeline: BuiltPipeline) -> PipelineRepo:
    """A copy of the tiny pipeline after its one `dvc repro`, which ran every stage in order."""
    assert stages_run(built_pipeline.repro_output) == STAGES
    return built_pipeline.copy_to(tmp_path_factory.mktemp("e2e") / "project")


@pytest.fixture(scope="module")
def edited(
    tmp_path_factory: pytest.TempPathFactory, edited_pipeline: BuiltPipeline
) -> PipelineRepo:
    """A copy of the tiny pipeline committed as its first configuration, then with
    `models.lstm.hidden_size` edited and `dvc repro` run again (the shared `edited_pipeline`):
    the tests from the model edit on continue from its state in order."""
    return edited_pipeline.copy_to(tmp_path_factory.mktemp("e2e-edited") / "project")


def test_every_stage_logs_a_child_run_under_one_parent(repo: PipelineRepo) -> None:
    client = MlflowClient(repo.tracking_uri)
    (parent,) = parents(client)
    assert parent.info.status == "FINISHED"
    assert "·" in parent.info.run_name  # a readable description, not a hex id
    assert parent.data.params["models.lstm.hidden_size"] == "8"
    assert parent.data.params["train.epochs"] == "3"
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    for model in ("rnn", "lstm"):
        for statistic in ("mean", "ci95_low", "ci95_high"):
            key = f"{model}.test_rmse.{statistic}"
            assert parent.data.metrics[key] == metrics[model]["test_rmse"][statistic]
    for statistic in ("mean", "ci_low", "ci_high", "ci_level"):
        key = f"lstm_vs_rnn.rmse_diff.{statistic}"
        assert parent.data.metrics[key] == metrics["lstm_vs_rnn"]["rmse_diff"][statistic]
    assert parent.data.tags["lstm_vs_rnn.verdict"] == metrics["lstm_vs_rnn"]["verdict"]
    assert parent.data.metrics["ar.test_rmse"] == metrics["ar"]["test_rmse"]
    runs = children(client, parent.info.run_id)
    assert sorted(runs) == sorted(TRACKED_STAGES)
    for stage, run in runs.items():
        assert run.info.status == "FINISHED", stage
        assert run.data.tags["git.dirty"] == "false", stage  # committed code and params
        assert re.fullmatch(r"[0-9a-f]{40}", run.data.tags["mlflow.source.git.commit"])
        assert "duration_s" in run.data.metrics


def test_training_runs_hold_every_repeat_figures_and_a_model_in_raw_units(
    repo: PipelineRepo,
) -> None:
    client = MlflowClient(repo.tracking_uri)
    runs = children(client, parents(client)[0].info.run_id)
    experiment_id = runs["evaluate"].info.experiment_id
    per_repeat = pd.read_csv(repo.root / "reports" / "plots" / "repeats.csv")
    for model in ("rnn", "lstm"):
        run = runs[f"train@{model}-0"]
        assert run.data.params["models." + model + ".hidden_size"] == "8"
        assert "data.n_points" not in run.data.params  # only what the stage uses
        repeats = client.search_runs(
            [experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"
        )
        by_repeat = {int(r.data.params["repeat"]): r for r in repeats}
        assert sorted(by_repeat) == [0, 1, 2]
        for repeat, repeat_run in by_repeat.items():
            assert repeat_run.info.status == "FINISHED"
            assert repeat_run.data.params["seed"] == str(42 + repeat)
            for curve in ("train_loss", "val_loss"):
                history = client.get_metric_history(repeat_run.info.run_id, curve)
                assert [point.step for point in history] == [1, 2, 3]
            expected = per_repeat[(per_repeat.model == model) & (per_repeat.repeat == repeat)]
            assert repeat_run.data.metrics["test_rmse"] == expected["test_rmse"].item()
        figures = [a.path for a in client.list_artifacts(run.info.run_id, "figures")]
        assert figures == [f"figures/loss_{model}.png"]
    evaluate_figures = {
        a.path for a in client.list_artifacts(runs["evaluate"].info.run_id, "figures")
    }
    assert evaluate_figures == {
        f"figures/{name}.png"
        for name in (
            "repeats",
            "paired_differences",
            "losses",
            "predictions",
            "errors",
            "scatter",
            "gradient_flow",
            "horizon",
            "tuning_progress",
            "tuning_space",
        )
    }
    claims = client.list_artifacts(runs["evaluate"].info.run_id, "claims")
    assert [a.path for a in claims] == ["claims/claims.md"]
    grad = pd.read_csv(repo.root / "reports" / "plots" / "grad_sensitivity.csv")
    for model in ("rnn", "lstm"):
        for state in ("trained", "init"):
            rows = grad[(grad.model == model) & (grad.state == state)]
            assert rows["lag"].tolist() == list(range(10))  # the window
            history = client.get_metric_history(
                runs["evaluate"].info.run_id, f"{model}.grad_median.{state}"
            )
            assert sorted((p.step, p.value) for p in history) == list(
                zip(rows["lag"], rows["median"], strict=True)
            )


def test_the_logged_model_reproduces_the_pipeline_predictions_from_raw_windows(
    repo: PipelineRepo,
) -> None:
    """The best-validation repeat, logged as `lstm`, takes raw values and returns raw values."""
    client = MlflowClient(repo.tracking_uri)
    run = children(client, parents(client)[0].info.run_id)["train@lstm-0"]
    mlflow.set_tracking_uri(repo.tracking_uri)
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    assert logged.name == "lstm"
    assert logged.tags["repeat"] == run.data.tags["logged_model.repeat"]
    series = pd.read_csv(repo.root / "data" / "raw" / "series.csv")["y"].to_numpy()
    table = pd.read_csv(repo.root / "reports" / "plots" / "predictions.csv")
    pipeline = table[table.model == "lstm"]["value"].to_numpy()
    windows = sliding_window_view(series[:-1], 10)[-len(pipeline) :]
    forecast = mlflow.pyfunc.load_model(f"models:/{logged.model_id}").predict(windows)[:, 0]
    # This process runs torch without the stages' kernel pins: equal to float32 rounding.
    np.testing.assert_allclose(forecast, pipeline, rtol=1e-5, atol=1e-6)


def test_outputs_and_metrics_file(repo: PipelineRepo) -> None:
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    assert set(metrics) == {
        "rnn",
        "lstm",
        "lstm_vs_rnn",
        "rnn_vs_ar",
        "lstm_vs_ar",
        "verdict_tiers",
        "persistence",
        "ar",
        "noise_floor",
    }
    assert set(metrics["lstm"]) == {
        "test_rmse",
        "test_mae",
        "test_mase",
        "failures",
        "n_parameters",
        "grad_oldest_over_newest",
        "horizon_rmse",
    }
    assert metrics["lstm"]["n_parameters"] == 4 * (8 * (1 + 8) + 2 * 8) + 8 + 1  # gates + head
    assert set(metrics["lstm"]["grad_oldest_over_newest"]) == {"trained", "init"}
    assert set(metrics["lstm"]["test_rmse"]) == {
        "mean",
        "median",
        "std",
        "min",
        "max",
        "ci95_low",
        "ci95_high",
    }
    pair = metrics["lstm_vs_rnn"]
    assert set(pair["rmse_diff"]) == {"mean", "hodges_lehmann", "ci_low", "ci_high", "ci_level"}
    # `lstm` - `rnn` is the one primary pair here (no tuned entries), so Holm's m is 1 and its
    # interval is at 95%. Three repeats: the smallest two-sided sign-flip p is 2/2^3 = 0.25, so
    # the test cannot reject; an interval that excludes zero disagrees with it.
    assert pair["rmse_diff"]["ci_level"] == pytest.approx(0.95)
    assert pair["p_adjusted"] == pair["p"] >= 0.25
    if pair["rmse_diff"]["ci_high"] < 0 or pair["rmse_diff"]["ci_low"] > 0:
        assert pair["verdict"] == "primary: inconclusive: the test and the interval disagree"
    else:
        assert pair["verdict"] == "primary: no difference detected"
    assert metrics["verdict_tiers"]["primary"]["size"] == 1
    assert metrics["lstm_vs_ar"]["sq_error_diff"]["verdict"].startswith("exploratory: ")
    per_repeat = pd.read_csv(repo.root / "reports" / "plots" / "repeats.csv")
    assert len(per_repeat) == 6  # 3 repeats of 2 models
    lstm_rows = per_repeat[per_repeat.model == "lstm"].sort_values("repeat")
    assert metrics["lstm"]["test_rmse"]["mean"] == pytest.approx(
        lstm_rows["test_rmse"].mean(), rel=1e-12
    )
    # The shipped repeat's RMSE, recomputed by hand from its predictions and the series.
    predictions = pd.read_csv(repo.root / "reports" / "plots" / "predictions.csv")
    actual = predictions[predictions.model == "actual"]["value"].to_numpy()
    shipped = predictions[predictions.model == "lstm"]["value"].to_numpy()
    losses = pd.read_csv(repo.root / "reports" / "plots" / "losses" / "fold_0" / "lstm.csv")
    chosen = int(
        losses[losses.epoch == losses.epoch.max()].set_index("repeat")["val_loss"].idxmin()
    )
    assert np.sqrt(np.mean((shipped - actual) ** 2)) == pytest.approx(
        lstm_rows["test_rmse"].to_numpy()[chosen], rel=1e-9
    )
    claims = (repo.root / "reports" / "claims.md").read_text()
    assert "## Primary: (c) the first predicts better" in claims and "3 repeat(s)" in claims
    assert "| lstm - rnn at the article's shared setting |" in claims
    assert "Primary pair `lstm_tuned` - `rnn_tuned` is not tested" in claims
    assert "**With 3 repeats no primary verdict can reject**" in claims
    for name in (
        "series",
        "scaling",
        "fold_0/loss_rnn",
        "fold_0/loss_lstm",
        "losses",
        "predictions",
        "errors",
        "scatter",
        "repeats",
        "paired_differences",
        "gradient_flow",
        "horizon",
    ):
        assert (repo.root / "reports" / "figures" / f"{name}.png").stat().st_size > 10_000
    assert json.loads((repo.root / "data/processed/fold_0/scaler.json").read_text()).keys() == {
        "data_min",
        "data_max",
    }


def test_rmse_per_forecast_step_in_the_reports_and_in_mlflow(repo: PipelineRepo) -> None:
    """evaluate.horizon 20: every repeat and baseline per step, the headline at 1, 5, 10, 20."""
    table = pd.read_csv(repo.root / "reports" / "plots" / "horizon.csv")
    assert list(table.columns) == ["model", "repeat", "step", "rmse"]
    for model, rows in (("rnn", 3), ("lstm", 3), ("persistence", 1), ("ar", 1), ("noise_floor", 1)):
        assert sorted(table[table.model == model]["step"]) == sorted(list(range(1, 21)) * rows)
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    headline = {"h1", "h5", "h10", "h20"}
    for model in ("rnn", "lstm"):
        assert set(metrics[model]["horizon_rmse"]) == headline
        step_5 = table[(table.model == model) & (table.step == 5)]["rmse"]
        assert metrics[model]["horizon_rmse"]["h5"]["mean"] == pytest.approx(step_5.mean())
    for baseline in ("persistence", "ar", "noise_floor"):
        assert set(metrics[baseline]["horizon_rmse"]) == headline
    client = MlflowClient(repo.tracking_uri)
    parent = parents(client)[0]
    evaluate = children(client, parent.info.run_id)["evaluate"]
    for run in (parent, evaluate):
        assert (
            run.data.metrics["lstm.horizon_rmse.h5.mean"]
            == (metrics["lstm"]["horizon_rmse"]["h5"]["mean"])
        )
        assert run.data.metrics["ar.horizon_rmse.h20"] == metrics["ar"]["horizon_rmse"]["h20"]
    curve = client.get_metric_history(evaluate.info.run_id, "lstm.horizon_rmse_by_step")
    assert [point.step for point in sorted(curve, key=lambda p: p.step)] == list(range(1, 21))


def test_a_second_repro_runs_nothing(repo: PipelineRepo) -> None:
    assert stages_run(repo.dvc("repro").stdout) == []


def test_a_model_edit_reruns_exactly_that_model_and_evaluate(
    edited: PipelineRepo, edited_pipeline: BuiltPipeline
) -> None:
    """The first configuration committed, models.lstm.hidden_size edited, `dvc repro` (run
    once for the test run by the `edited_pipeline` fixture)."""
    assert stages_run(edited_pipeline.repro_output) == [
        "check_params",
        "tune@lstm-0",
        "train@lstm-0",
        "evaluate",
    ]
    assert "models.lstm.hidden_size" in edited.dvc("params", "diff").stdout
    assert "lstm.test_rmse.mean" in edited.dvc("metrics", "diff").stdout
    client = MlflowClient(edited.tracking_uri)
    assert len(parents(client)) == 2
    second = parent_with(client, "models.lstm.hidden_size", str(EDITED_LSTM_HIDDEN_SIZE))
    assert sorted(children(client, second.info.run_id)) == ["evaluate", "train@lstm-0"]
    for run in children(client, second.info.run_id).values():
        assert run.data.tags["git.dirty"] == "true"  # params.yaml differs from the commit
    assert {"rnn.test_rmse.mean", "lstm.test_rmse.mean"} <= set(second.data.metrics)
    completion = edited.run(
        "python", "-m", "lstm_vs_rnn.commands.ensure_recorded", env={"PYTHONPATH": "src"}
    )
    assert stages_run(completion.stdout) == []  # recorded: the skipped stages are shared
    edited.commit("second configuration")


def test_returning_to_a_configuration_that_ran_restores_its_training_from_the_run_cache(
    edited_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    """Back to the first configuration after the model edit: DVC restores the LSTM's tune and
    train outputs from its run cache instead of training again (a stage with an uncached
    output that is neither a metric nor a plot gets no run-cache entry: the figures are
    plots), and only evaluate, which is not run-cached, runs. Every output is the first
    configuration's, as committed."""
    repo = edited_pipeline.copy_to(tmp_path / "project")
    repo.run("git", "checkout", "params.yaml")
    output = repo.dvc("repro").stdout
    assert stages_run(output) == ["evaluate"]
    assert "Stage 'train@lstm-0' is cached - skipping run" in output
    committed = repo.run("git", "show", "HEAD:dvc.lock").stdout.encode()
    assert output_hashes((repo.root / "dvc.lock").read_bytes()) == output_hashes(committed)


def output_hashes(lock: bytes) -> dict[str, str]:
    """Every output of every stage, path -> md5, as dvc.lock records it."""
    stages = parse_yaml(lock)["stages"]
    return {
        f"{stage}:{out['path']}": out.get("md5", "")
        for stage, entry in stages.items()
        for out in entry.get("outs", [])
    }


def repeat_progress(stderr: str) -> list[int]:
    """The count of finished repeats in each line train@lstm-0 printed for a finished repeat."""
    progress = [line for line in stderr.splitlines() if line.startswith("train@lstm-0")]
    return [
        int(re.match(r"train@lstm-0: (\d)/3 done \(repeat \d, seed 4\d", line)[1])
        for line in progress
    ]


def test_a_fresh_clone_on_two_workers_reproduces_every_output_byte_for_byte_and_records_it(
    edited: PipelineRepo, built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    """The one byte-identity test: the same params and code give the same bytes, whatever the
    number of training workers (the repro above trained on one, this clone on two).

    Reports are in git and models come out byte-identical, so DVC skips evaluation in a fresh
    clone; `make run`'s completion step must still leave a complete record, and evaluation
    re-run there writes the very same reports."""
    clone = PipelineRepo(tmp_path / "clone", clean_env())
    edited.run("git", "clone", "-q", str(edited.root), str(clone.root))
    shutil.rmtree(clone.root / ".dvc" / "cache", ignore_errors=True)
    # Read by no stage but check_params, which validates the whole file and records it.
    clone.edit_params({"train.workers": 2})
    repro = clone.dvc("repro")
    first = stages_run(repro.stdout)
    assert "evaluate" not in first and "train@lstm-0" in first
    lock_before = (clone.root / "dvc.lock").read_bytes()
    ours, theirs = (
        parse_yaml(lock)["stages"]
        for lock in (lock_before, (edited.root / "dvc.lock").read_bytes())
    )
    recorded = [stages["check_params"].pop("params")["params.yaml"] for stages in (ours, theirs)]
    assert (recorded[0]["train"]["workers"], recorded[1]["train"]["workers"]) == (2, 1)
    assert ours == theirs  # same params, same bytes: every output and every other record
    hashes = output_hashes(lock_before)
    assert {"train@lstm-0:models/fold_0/lstm", "train@rnn-0:models/fold_0/rnn"} <= set(hashes)
    assert all(hashes.values()), hashes
    # The thread count that makes LSTM weights reproducible is a tracked param of training;
    # the number of worker processes changes no output, so DVC does not track it.
    tracked = parse_yaml(lock_before)["stages"]["train@lstm-0"]["params"]["params.yaml"]
    assert tracked["train.num_threads"] == 1
    assert "train.workers" not in tracked
    # One line per finished repeat, on one worker and on two, and nothing else of MLflow's.
    for stderr in (built_pipeline.repro_stderr, repro.stderr):
        assert repeat_progress(stderr) == [1, 2, 3], stderr
        assert "INFO" not in stderr and "epoch" not in stderr
        assert "Warning" not in stderr, stderr  # e.g. MLflow's "Add type hints"

    completion = clone.run(
        "python", "-m", "lstm_vs_rnn.commands.ensure_recorded", env={"PYTHONPATH": "src"}
    )
    assert stages_run(completion.stdout) == ["evaluate"]
    assert (clone.root / "dvc.lock").read_bytes() == lock_before
    for report in ("reports/metrics.json", "reports/plots/repeats.csv"):
        assert (clone.root / report).read_bytes() == (edited.root / report).read_bytes()
    client = MlflowClient(clone.tracking_uri)
    (parent,) = parents(client)
    assert sorted(children(client, parent.info.run_id)) == sorted(TRACKED_STAGES)
    assert {"rnn.test_rmse.mean", "lstm.test_rmse.mean"} <= set(parent.data.metrics)
    assert set(run_statuses(clone.root).values()) == {"FINISHED"}
    with sqlite3.connect(f"file:{clone.root / 'mlflow.db'}?mode=ro", uri=True) as connection:
        (epochs_logged,) = connection.execute(
            "select count(*) from metrics m join runs r on r.run_uuid = m.run_uuid "
            "where m.key = 'val_loss' and r.name like 'lstm · repeat %'"
        ).fetchone()
    assert epochs_logged == 3 * 3  # repeats x epochs, from the two workers
    again = clone.run(
        "python", "-m", "lstm_vs_rnn.commands.ensure_recorded", env={"PYTHONPATH": "src"}
    )
    assert stages_run(again.stdout) == []


def test_weights_reused_from_another_configuration_are_noted_never_written_into_it(
    edited: PipelineRepo,
) -> None:
    """300 -> 301 points leaves the training part (240 points) and so the weights unchanged:
    DVC skips training; the evaluation of the 301-point configuration must not add its test
    metrics to the 300-point configuration's training runs, and must say where they came from."""
    client = MlflowClient(edited.tracking_uri)
    # The committed configuration.
    previous = parent_with(client, "models.lstm.hidden_size", str(EDITED_LSTM_HIDDEN_SIZE))
    before = {
        run.info.run_id: run.data.metrics.get("test_rmse")
        for run in client.search_runs(
            [previous.info.experiment_id], "tags.`pipeline.role` = 'repeat'"
        )
    }
    edited.edit_params({"data.n_points": 301})
    assert stages_run(edited.dvc("repro").stdout) == [
        "check_params",
        "generate",
        "scale",
        "evaluate",
    ]
    after = {
        run.info.run_id: run.data.metrics.get("test_rmse")
        for run in client.search_runs(
            [previous.info.experiment_id], "tags.`pipeline.role` = 'repeat'"
        )
    }
    assert after == before
    edited = parent_with(client, "data.n_points", "301")
    trained_under = edited.data.tags["weights_trained_under"].split(", ")
    assert previous.data.tags["pipeline.config_hash"] in trained_under
    evaluate = children(client, edited.info.run_id)["evaluate"]
    assert evaluate.data.tags["weights_trained_under"] == edited.data.tags["weights_trained_under"]


def test_a_code_change_is_a_new_configuration_whose_duration_is_its_stages_time(
    edited: PipelineRepo,
) -> None:
    """Parents are params plus code version; a stage re-run later adds its own time to the
    parent's Duration, not the hours (here: seconds) in between."""
    client = MlflowClient(edited.tracking_uri)
    before = {run.info.run_id for run in parents(client)}
    with (edited.root / "stages" / "evaluate.py").open("a") as script:
        script.write("# a code change\n")
    assert stages_run(edited.dvc("repro").stdout) == ["evaluate"]
    (new,) = [run for run in parents(client) if run.info.run_id not in before]
    assert new.data.tags["pipeline.code_version"] != previous_code_version(client, before)
    assert sorted(children(client, new.info.run_id)) == ["evaluate"]
    time.sleep(3)
    edited.dvc("repro", "--force", "--single-item", "evaluate")
    runs = client.search_runs(
        [new.info.experiment_id], f"tags.`mlflow.parentRunId` = '{new.info.run_id}'"
    )
    assert len(runs) == 2  # the re-run is a second record of the same configuration
    parent = client.get_run(new.info.run_id).info
    busy = sum(run.info.end_time - run.info.start_time for run in runs)
    assert parent.end_time - parent.start_time == busy
    assert parent.end_time < max(run.info.end_time for run in runs) - 2500  # the pause left out


def previous_code_version(client: MlflowClient, parent_ids: set[str]) -> str:
    (version,) = {
        client.get_run(run_id).data.tags["pipeline.code_version"] for run_id in parent_ids
    }
    return version


def test_one_repeat_runs_and_reads_not_available_where_an_interval_is_needed(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    pipeline_repo = built_pipeline.copy_to(tmp_path / "project")
    pipeline_repo.edit_params({"train.repeats": 1})
    # The number of repeats is no input of tuning: its stages stay as they are.
    assert stages_run(pipeline_repo.dvc("repro").stdout) == [
        "check_params",
        "train@rnn-0",
        "train@lstm-0",
        "evaluate",
    ]
    metrics = json.loads((pipeline_repo.root / "reports" / "metrics.json").read_text())
    assert metrics["lstm"]["test_rmse"]["ci95_low"] == "n/a"
    assert metrics["lstm"]["test_rmse"]["std"] == "n/a"
    assert metrics["lstm_vs_rnn"]["p"] == "n/a"
    assert metrics["lstm_vs_rnn"]["verdict"].startswith("primary: n/a")
    assert isinstance(metrics["lstm"]["test_rmse"]["mean"], float)
    claims = (pipeline_repo.root / "reports" / "claims.md").read_text()
    assert "torch seed 42;" in claims and "**n/a (one repeat: no interval)**" in claims
    client = MlflowClient(pipeline_repo.tracking_uri)
    parent = parent_with(client, "train.repeats", "1")
    assert "lstm.test_rmse.mean" in parent.data.metrics
    assert "lstm.test_rmse.ci95_low" not in parent.data.metrics  # "n/a" is not a metric
