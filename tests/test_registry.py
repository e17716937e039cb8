"""Each entry's model in MLflow's Model Registry, and served from it over HTTP.

Real stages in copies of the shared tiny pipeline (which registered `rnn` and `lstm` once), the
real SQLite store, a real `mlflow server` with basic auth, a real `mlflow models serve`.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import requests
from conftest import (
    EDITED_LSTM_HIDDEN_SIZE,
    REPO_ROOT,
    SERVER_ADMIN,
    BuiltPipeline,
    PipelineRepo,
    free_port,
    running_mlflow_server,
    wait_until_healthy,
)
from mlflow import MlflowClient

from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.tracking.identity import file_sha256
from lstm_vs_rnn.tracking.registry import (
    FAVOURED_ALIAS,
    NEWEST_ALIAS,
    favoured_entry,
    move_favoured_alias,
    primary_verdicts,
)

pytestmark = pytest.mark.e2e

LSTM, RNN = "lstm-vs-rnn.lstm", "lstm-vs-rnn.rnn"
SERVE = (sys.executable, "-m", "mlflow", "models", "serve")
BOB = {"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": "bob-pw-123456"}


def versions(client: MlflowClient, name: str) -> list:
    return sorted(
        client.search_model_versions(f"name = '{name}'"), key=lambda version: int(version.version)
    )


def parent_config(client: MlflowClient, lstm_hidden_size: int) -> str:
    """The configuration hash of the parent run with that `models.lstm.hidden_size`."""
    experiment = client.get_experiment_by_name("lstm-vs-rnn").experiment_id
    (parent,) = client.search_runs(
        [experiment],
        "tags.`pipeline.role` = 'configuration' and "
        f"params.`models.lstm.hidden_size` = '{lstm_hidden_size}'",
    )
    return parent.data.tags["pipeline.config_hash"]


def test_each_entry_has_one_version_after_the_first_configuration(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    repo = built_pipeline.copy_to(tmp_path / "project")
    client = MlflowClient(repo.tracking_uri)
    first = parent_config(client, 8)
    for name in (LSTM, RNN):
        (version,) = versions(client, name)
        assert version.tags["pipeline.config_hash"] == first
        assert version.tags["params_changed"] == "first version"
        assert client.get_registered_model(name).aliases[NEWEST_ALIAS] == 1


def test_versions_and_aliases_after_two_configurations_and_a_repeat_of_the_first(
    edited_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    """After the shared `edited_pipeline`'s model edit (models.lstm.hidden_size 8 -> 16) and
    its `dvc repro`."""
    repo = edited_pipeline.copy_to(tmp_path / "project")
    client = MlflowClient(repo.tracking_uri)
    first, second = parent_config(client, 8), parent_config(client, EDITED_LSTM_HIDDEN_SIZE)
    output = edited_pipeline.repro_output
    assert "Running stage 'train@lstm-0'" in output
    assert "Running stage 'train@rnn-0'" not in output
    old, new = versions(client, LSTM)
    assert (old.tags["pipeline.config_hash"], new.tags["pipeline.config_hash"]) == (first, second)
    assert old.tags["params_changed"] == "first version"
    size = EDITED_LSTM_HIDDEN_SIZE
    changed = f"chosen.hidden_size: 8 -> {size}; models.lstm.hidden_size: 8 -> {size}"
    assert new.tags["params_changed"] == changed
    assert new.tags["git.commit"] == repo.run("git", "rev-parse", "HEAD").stdout.strip()
    assert new.tags["git.dirty"] == "true"
    assert client.get_registered_model(LSTM).aliases[NEWEST_ALIAS] == 2
    (rnn,) = versions(client, RNN)  # DVC did not retrain it: no new model
    assert rnn.tags["pipeline.config_hash"] == first
    assert client.get_registered_model(RNN).aliases[NEWEST_ALIAS] == 1
    assert_favoured_alias_follows_the_verdict(repo, client)

    # The first configuration again: DVC restores its outputs from its run-cache and logs
    # nothing; training it again anyway finds its version and adds none.
    repo.run("git", "checkout", "params.yaml")
    repo.dvc("repro")
    again = repo.stage("train@lstm-0")
    assert f"{LSTM} version 1 already holds configuration {first}: no new version" in (again.stderr)
    assert [int(version.version) for version in versions(client, LSTM)] == [1, 2]
    assert client.get_registered_model(LSTM).aliases[NEWEST_ALIAS] == 2


def assert_favoured_alias_follows_the_verdict(repo: PipelineRepo, client: MlflowClient) -> None:
    """On the version holding the evaluated weights of the entry the verdict favours, if any;
    on no registered model otherwise."""
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    [(pair, verdict)] = primary_verdicts(load_params(repo.root / "params.yaml"), metrics)
    favoured = favoured_entry(verdict, pair)
    holders = {
        name: client.get_registered_model(name).aliases.get(FAVOURED_ALIAS) for name in (LSTM, RNN)
    }
    if favoured is None:
        assert holders == {LSTM: None, RNN: None}, verdict
        return
    name = f"lstm-vs-rnn.{favoured}"
    version = client.get_model_version(name, holders[name])
    weights = {
        file_sha256(path) for path in (repo.root / "models" / "fold_0" / favoured).glob("*.pt")
    }
    assert version.tags["model.sha256"] in weights
    assert (
        client.get_registered_model(name)
        .tags["favoured_by_verdict"]
        .startswith(f"{pair}: {verdict}")
    )
    assert [holder for holder in holders.values() if holder] == [holders[name]]


@pytest.mark.parametrize(
    ("verdict", "entry"),
    [
        ("primary: lstm better", "lstm"),
        ("primary: rnn better", "rnn"),
        ("primary: no difference detected", None),
        ("primary: inconclusive: the test and the interval disagree", None),
        ("primary: gru better", None),
    ],
)
def test_a_verdict_favours_the_entry_it_names_better(verdict: str, entry: str | None) -> None:
    assert favoured_entry(verdict, "lstm_vs_rnn") == entry


def test_the_primary_verdicts_are_the_configured_pairs_present() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    metrics = {
        "lstm_vs_rnn": {"verdict": "primary: rnn better"},
        "gru_vs_rnn": {"verdict": "exploratory: gru better"},
    }
    assert primary_verdicts(params, metrics) == [("lstm_vs_rnn", "primary: rnn better")]


def test_the_favoured_alias_is_on_one_model_at_most(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    repo = built_pipeline.copy_to(tmp_path / "project")
    client = MlflowClient(repo.tracking_uri)
    lstm, rnn = versions(client, LSTM)[0], versions(client, RNN)[0]

    def holders() -> dict[str, int | None]:
        return {
            name: client.get_registered_model(name).aliases.get(FAVOURED_ALIAS)
            for name in (LSTM, RNN)
        }

    move_favoured_alias(client, "lstm-vs-rnn", {LSTM: (lstm, "lstm_vs_rnn: lstm better")})
    assert holders() == {LSTM: 1, RNN: None}
    move_favoured_alias(client, "lstm-vs-rnn", {RNN: (rnn, "lstm_vs_rnn: rnn better")})
    assert holders() == {LSTM: None, RNN: 1}
    assert "favoured_by_verdict" not in client.get_registered_model(LSTM).tags
    move_favoured_alias(client, "lstm-vs-rnn", {})
    assert holders() == {LSTM: None, RNN: None}


def test_a_served_alias_answers_http_with_forecasts_in_the_series_units(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    repo = built_pipeline.copy_to(tmp_path / "project")
    uri = f"models:/{LSTM}@{NEWEST_ALIAS}"
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*SERVE, "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            cwd=repo.root,
            env={**repo.env, "MLFLOW_TRACKING_URI": repo.tracking_uri},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        wait_until_healthy(f"http://127.0.0.1:{port}", server, log.read_text)
        print(f"served after {time.monotonic() - started:.1f} s")
        series = pd.read_csv(repo.root / "data" / "raw" / "series.csv")["y"].to_numpy()
        windows = np.stack([series[-10:], series[-11:-1]])  # window 10, raw values
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"inputs": windows.tolist(), "params": {"horizon": 3}},
            timeout=60,
        )
        answer.raise_for_status()
    finally:
        stop_group(server)
    served = np.array(answer.json()["predictions"])
    mlflow.set_tracking_uri(repo.tracking_uri)
    try:
        here = mlflow.pyfunc.load_model(uri).predict(windows, params={"horizon": 3})
    finally:
        mlflow.set_tracking_uri(None)
    assert served.shape == (2, 3)
    np.testing.assert_allclose(served, here, rtol=1e-12)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the CLI and its uvicorn), then check none is left."""
    group = process.pid
    os.killpg(group, signal.SIGTERM)
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and in_group(group):
        time.sleep(0.2)
    assert not in_group(group), "a serving process outlived its group's SIGTERM"


def in_group(group: int) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == group:
                found.append(process.pid)
        except ProcessLookupError:
            continue
    return found


def test_on_a_server_a_teammate_without_a_grant_gets_one_line_and_the_run_finishes(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    """The admin registers; bob, who may log runs but not register, gets one warning line and
    a finished run; after `make teammate` bob's run of the same configuration adds no version."""
    from mlflow.server import get_app_client

    repo = built_pipeline.copy_to(tmp_path / "project")
    with running_mlflow_server(tmp_path / "server", auth=True) as server:
        admin = {
            "MLFLOW_TRACKING_URI": server.uri,
            "MLFLOW_TRACKING_USERNAME": SERVER_ADMIN[0],
            "MLFLOW_TRACKING_PASSWORD": SERVER_ADMIN[1],
        }
        repo.stage("train@lstm-0", env=admin)
        os.environ.update(admin)
        try:
            get_app_client("basic-auth", tracking_uri=server.uri).create_user(
                "bob", "bob-pw-123456"
            )
            client = MlflowClient(server.uri)
            experiment = client.get_experiment_by_name("lstm-vs-rnn").experiment_id
            get_app_client("basic-auth", tracking_uri=server.uri).grant_user_permission(
                "bob", "experiment", experiment, "EDIT"
            )
            (version,) = versions(client, LSTM)
        finally:
            for key in admin:
                os.environ.pop(key)
        bob = {**admin, **BOB}

        refused = repo.stage("train@lstm-0", env=bob)
        warnings = [line for line in refused.stderr.splitlines() if "may not" in line]
        assert warnings == [
            f"user 'bob' may not register the model '{LSTM}' at {server.uri} (403); the run "
            "goes on without it: ask the server's admin to run 'make teammate NAME=bob'"
        ], refused.stderr

        repo.run(
            "python",
            "-m",
            "lstm_vs_rnn.commands.teammates",
            "bob",
            env={"PYTHONPATH": "src", "TEAMMATE_PASSWORD": "bob-pw-123456", **admin},
        )
        granted = repo.stage("train@lstm-0", env=bob)
        assert "may not" not in granted.stderr and "refused" not in granted.stderr
        assert f"{LSTM} version 1 already holds configuration" in granted.stderr
        os.environ.update(admin)
        try:
            assert [int(v.version) for v in versions(MlflowClient(server.uri), LSTM)] == [1]
            runs = MlflowClient(server.uri).search_runs(
                [experiment], "tags.`dvc.stage` = 'train@lstm-0' and tags.`pipeline.role` = 'stage'"
            )
        finally:
            for key in admin:
                os.environ.pop(key)
        assert [run.info.status for run in runs] == ["FINISHED"] * 3
        assert version.tags["pipeline.config_hash"]
