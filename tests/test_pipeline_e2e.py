"""The pipeline end to end: real `dvc repro` in a real git repo, checked in the real store."""

import json
import re
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PipelineRepo, clean_env, make_pipeline_repo

pytestmark = pytest.mark.e2e

STAGES = ["generate", "scale", "train@rnn", "train@lstm", "evaluate"]
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
def repo(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    """One tiny pipeline, run once: the tests below continue from its state in order."""
    repo = make_pipeline_repo(tmp_path_factory.mktemp("e2e") / "project")
    result = repo.dvc("repro")
    assert stages_run(result.stdout) == STAGES
    return repo


def test_every_stage_logs_a_child_run_under_one_parent(repo: PipelineRepo) -> None:
    client = MlflowClient(repo.tracking_uri)
    (parent,) = parents(client)
    assert parent.info.status == "FINISHED"
    assert "·" in parent.info.run_name  # a readable description, not a hex id
    assert parent.data.params["models.lstm.hidden_size"] == "8"
    assert parent.data.params["train.epochs"] == "3"
    for model in ("rnn", "lstm"):
        assert 0 < parent.data.metrics[f"{model}.test_rmse"] < 2
    runs = children(client, parent.info.run_id)
    assert sorted(runs) == sorted(STAGES)
    for stage, run in runs.items():
        assert run.info.status == "FINISHED", stage
        assert run.data.tags["git.dirty"] == "false", stage  # committed code and params
        assert re.fullmatch(r"[0-9a-f]{40}", run.data.tags["mlflow.source.git.commit"])
        assert "duration_s" in run.data.metrics


def test_training_runs_hold_loss_curves_figures_test_metrics_and_a_model(
    repo: PipelineRepo,
) -> None:
    client = MlflowClient(repo.tracking_uri)
    runs = children(client, parents(client)[0].info.run_id)
    for model in ("rnn", "lstm"):
        run = runs[f"train@{model}"]
        assert run.data.params["models." + model + ".hidden_size"] == "8"
        assert "data.n_points" not in run.data.params  # only what the stage uses
        for curve in ("train_loss", "val_loss"):
            history = client.get_metric_history(run.info.run_id, curve)
            assert [point.step for point in history] == [1, 2, 3]
        assert run.data.metrics["test_rmse"] > 0  # written back by evaluate
        figures = [a.path for a in client.list_artifacts(run.info.run_id, "figures")]
        assert figures == [f"figures/loss_{model}.png"]
    mlflow.set_tracking_uri(repo.tracking_uri)
    model_uri = f"runs:/{runs['train@lstm'].info.run_id}/model"
    loaded = mlflow.pyfunc.load_model(model_uri)
    assert loaded.predict(np.zeros((7, 10, 1), dtype=np.float32)).shape == (7, 1)
    evaluate_figures = {
        a.path for a in client.list_artifacts(runs["evaluate"].info.run_id, "figures")
    }
    assert evaluate_figures == {
        f"figures/{name}.png" for name in ("losses", "predictions", "errors", "scatter")
    }


def test_outputs_and_metrics_file(repo: PipelineRepo) -> None:
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"rnn", "lstm", "persistence", "noise_floor"}
    assert set(metrics["lstm"]) == {"test_rmse", "test_mae", "test_r2", "test_mase"}
    for name in (
        "series",
        "scaling",
        "loss_rnn",
        "loss_lstm",
        "losses",
        "predictions",
        "errors",
        "scatter",
    ):
        assert (repo.root / "reports" / "figures" / f"{name}.png").stat().st_size > 10_000
    assert json.loads((repo.root / "data/processed/scaler.json").read_text()).keys() == {
        "data_min",
        "data_max",
    }


def test_a_second_repro_runs_nothing(repo: PipelineRepo) -> None:
    assert stages_run(repo.dvc("repro").stdout) == []


def test_a_model_edit_reruns_exactly_that_model_and_evaluate(repo: PipelineRepo) -> None:
    repo.commit("first configuration")
    repo.edit_params({"models.lstm.hidden_size": 12})
    assert stages_run(repo.dvc("repro").stdout) == ["train@lstm", "evaluate"]
    assert "models.lstm.hidden_size" in repo.dvc("params", "diff").stdout
    assert "lstm.test_rmse" in repo.dvc("metrics", "diff").stdout
    client = MlflowClient(repo.tracking_uri)
    assert len(parents(client)) == 2
    edited = parent_with(client, "models.lstm.hidden_size", "12")
    assert sorted(children(client, edited.info.run_id)) == ["evaluate", "train@lstm"]
    for run in children(client, edited.info.run_id).values():
        assert run.data.tags["git.dirty"] == "true"  # params.yaml differs from the commit
    assert {"rnn.test_rmse", "lstm.test_rmse"} <= set(edited.data.metrics)
    completion = repo.run(
        "python", "-m", "lstm_vs_rnn.complete_tracking", env={"PYTHONPATH": "src"}
    )
    assert stages_run(completion.stdout) == []  # recorded: the skipped stages are shared
    repo.commit("second configuration")


def test_a_fresh_clone_records_a_complete_configuration(repo: PipelineRepo, tmp_path: Path) -> None:
    """Reports are in git and models come out byte-identical, so DVC skips evaluation in a
    fresh clone; `make run`'s completion step must still leave a complete record."""
    clone = PipelineRepo(tmp_path / "clone", clean_env())
    repo.run("git", "clone", "-q", str(repo.root), str(clone.root))
    shutil.rmtree(clone.root / ".dvc" / "cache", ignore_errors=True)
    first = stages_run(clone.dvc("repro").stdout)
    assert "evaluate" not in first and "train@lstm" in first
    lock_before = (clone.root / "dvc.lock").read_bytes()
    assert lock_before == (repo.root / "dvc.lock").read_bytes()  # same params, same bytes
    completion = clone.run(
        "python", "-m", "lstm_vs_rnn.complete_tracking", env={"PYTHONPATH": "src"}
    )
    assert stages_run(completion.stdout) == ["evaluate"]
    assert (clone.root / "dvc.lock").read_bytes() == lock_before
    client = MlflowClient(clone.tracking_uri)
    (parent,) = parents(client)
    assert sorted(children(client, parent.info.run_id)) == sorted(STAGES)
    assert {"rnn.test_rmse", "lstm.test_rmse"} <= set(parent.data.metrics)
    again = clone.run("python", "-m", "lstm_vs_rnn.complete_tracking", env={"PYTHONPATH": "src"})
    assert stages_run(again.stdout) == []
