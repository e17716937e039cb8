"""Faults while a stage runs: divergence, crashes, Ctrl-C/SIGTERM, a dead or restarting server.

Everything is real: the stage scripts run as subprocesses in a copy of the project, signals are
sent to them, and the tracking server is a real `mlflow server` on 127.0.0.1 that the test
starts, stops and restarts.
"""

import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import BuiltPipeline, MlflowServer, PipelineRepo, free_port

pytestmark = pytest.mark.e2e

EXPERIMENT = "lstm-vs-rnn"
# Positions in the tiny params' train.npy (240 points, window 10, 207 fitted windows) whose
# values are targets of fitted windows only: neither validation inputs nor targets.
HUGE_TARGETS = [60, 150]


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory: pytest.TempPathFactory, scaled_pipeline: BuiltPipeline
) -> Iterator[PipelineRepo]:
    """A project copy where generate and scale ran (local SQLite store); one worker (as in
    TINY_PARAMS), so the repeat that fails first is always repeat 0 (test_parallel_repeats
    covers two)."""
    yield scaled_pipeline.copy_to(tmp_path_factory.mktemp("faults") / "project")


@pytest.fixture
def restore_params(repo: PipelineRepo) -> Iterator[None]:
    good = (repo.root / "params.yaml").read_text()
    yield
    (repo.root / "params.yaml").write_text(good)


def runs_named(root: Path, name: str) -> list[str]:
    """Statuses of the runs called `name` in the workspace's SQLite store, oldest first."""
    with sqlite3.connect(f"file:{root / 'mlflow.db'}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "select status from runs where name = ? order by start_time", (name,)
        )
        return [status for (status,) in rows]


def loss_steps(root: Path, name: str, key: str = "train_loss") -> list[int]:
    """The steps (epochs) of `key` stored for the latest run called `name`."""
    with sqlite3.connect(f"file:{root / 'mlflow.db'}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "select step from metrics where key = ? and run_uuid = (select run_uuid from runs "
            "where name = ? order by start_time desc limit 1) order by step",
            (key, name),
        )
        return [step for (step,) in rows]


def no_model_files(root: Path, name: str) -> list[Path]:
    """The weights folder, the loss history and any leftover temporary file of train@<name>."""
    folders = [root / "models", root / "reports" / "plots" / "losses"]
    found = [path for folder in folders if folder.exists() for path in folder.iterdir()]
    return [path for path in found if name in path.name]


def popen_stage(repo: PipelineRepo, *args: str, env: dict[str, str] | None = None):
    """Start a stage script as `dvc repro` would, with Ctrl-C delivered as KeyboardInterrupt."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=repo.root,
        env={**repo.env, "PYTHONPATH": "src", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # a shell that starts jobs in the background ignores SIGINT; the stage should not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_divergence_stops_at_the_epoch_fails_the_run_and_writes_no_model(
    repo: PipelineRepo, restore_params: None
) -> None:
    """Adam's step is about the learning rate whatever the gradient, so even the largest allowed
    rate (10) keeps the loss finite; what really overflows float32 is data on a huge scale, so
    the training part is replaced by values whose squared errors are infinite in float32."""
    train = repo.root / "data" / "processed" / "fold_0" / "train.npy"
    good = train.read_bytes()
    repo.edit_params({"train.learning_rate": 10.0})
    np.save(train, np.full(240, 3e19), allow_pickle=False)  # finite; (3e19)**2 is inf in float32
    try:
        result = repo.stage("train@lstm-0", check=False)
    finally:
        train.write_bytes(good)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert lines == [
        "error: lstm, repeat 0 (seed 42): training diverged at epoch 1: the loss is inf; "
        "lower train.learning_rate (now 10.0) or set train.grad_clip_norm (e.g. 1.0)"
    ], result.stderr
    assert runs_named(repo.root, "train@lstm-0")[-1] == "FAILED"
    assert runs_named(repo.root, "lstm · repeat 0 · seed 42")[-1] == "FAILED"
    assert no_model_files(repo.root, "lstm") == []


def test_a_run_that_diverges_after_some_epochs_keeps_their_loss_history(
    repo: PipelineRepo, restore_params: None
) -> None:
    """Two training targets whose squares are finite in float32 but whose sum is not: the loss
    becomes inf in the first epoch whose shuffle puts both in one batch. The epochs before it
    must be in the store, although the stage fails long before the 10 s metric flush."""
    train = repo.root / "data" / "processed" / "fold_0" / "train.npy"
    good = train.read_bytes()
    values = np.load(train, allow_pickle=False)
    values[HUGE_TARGETS] = 1.5e19  # (1.5e19)**2 = 2.25e38 < float32 max < 2 * 2.25e38
    np.save(train, values, allow_pickle=False)
    repo.edit_params({"train.epochs": 1000})
    try:
        result = repo.stage("train@lstm-0", check=False)
    finally:
        train.write_bytes(good)
    assert result.returncode == 1, result.stderr
    match = re.fullmatch(
        r"error: lstm, repeat 0 \(seed 42\): training diverged at epoch (\d+): .*",
        result.stderr.strip(),
    )
    assert match, result.stderr
    epoch = int(match.group(1))
    assert epoch > 1, "both targets shared a batch in epoch 1: pick other HUGE_TARGETS"
    assert runs_named(repo.root, "train@lstm-0")[-1] == "FAILED"
    for key in ("train_loss", "val_loss"):
        steps = loss_steps(repo.root, "lstm · repeat 0 · seed 42", key)
        assert steps == list(range(1, epoch)), key
    assert no_model_files(repo.root, "lstm") == []


def test_a_crash_that_is_not_a_user_error_still_ends_the_run_failed(
    repo: PipelineRepo, restore_params: None
) -> None:
    """A bug-like failure (an output folder that is a file) keeps its traceback; the run ends."""
    blocker = repo.root / "reports" / "plots" / "losses" / "fold_0"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder\n")
    try:
        result = repo.stage("train@rnn-0", check=False)
    finally:
        blocker.unlink()
        shutil.rmtree(repo.root / "models" / "fold_0" / "rnn", ignore_errors=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "FileExistsError" in result.stderr
    assert runs_named(repo.root, "train@rnn-0")[-1] == "FAILED"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_training_ends_the_run_killed_and_leaves_no_file(
    repo: PipelineRepo, restore_params: None, signum: int
) -> None:
    # Far more epochs than the test waits for; clipping on, so that code path runs too.
    repo.edit_params({"train.epochs": 100_000, "train.grad_clip_norm": 1.0})
    before = len(runs_named(repo.root, "train@lstm-0"))
    stage = popen_stage(repo, "stages/train.py", "lstm", "0")
    try:
        deadline = time.monotonic() + 120
        while len(runs_named(repo.root, "train@lstm-0")) == before or (
            runs_named(repo.root, "lstm · repeat 0 · seed 42")[-1:] != ["RUNNING"]
        ):
            assert stage.poll() is None, stage.communicate()
            assert time.monotonic() < deadline, "the training run never started"
            time.sleep(0.2)
        time.sleep(4)  # past the first epoch (1.5 s in under load), short of the 10 s flush
        assert stage.poll() is None
        stage.send_signal(signum)
        _, stderr = stage.communicate(timeout=60)
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()
    assert stage.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "interrupted: the MLflow run was marked KILLED; outputs may be partly updated, "
        "'dvc repro' redoes the stage"
    )
    assert "Traceback" not in stderr
    assert runs_named(repo.root, "train@lstm-0")[-1] == "KILLED"
    assert runs_named(repo.root, "lstm · repeat 0 · seed 42")[-1] == "KILLED"
    # 4 s is less than the 10 s between flushes: these epochs were sent on the way out.
    steps = loss_steps(repo.root, "lstm · repeat 0 · seed 42")
    assert steps and steps == list(range(1, len(steps) + 1)), steps
    assert loss_steps(repo.root, "lstm · repeat 0 · seed 42", "val_loss") == steps
    assert no_model_files(repo.root, "lstm") == []


def test_a_dead_server_fails_the_stage_within_15_seconds_before_training(
    repo: PipelineRepo,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = repo.stage("train@lstm-0", check=False, env={"MLFLOW_TRACKING_URI": dead})
    seconds = time.monotonic() - started
    print(f"train@lstm-0 against a dead server at {dead} failed after {seconds:.1f} s")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach the MLflow tracking server at {dead} (ConnectionError); check "
        f"that it is running and reachable, or unset MLFLOW_TRACKING_URI to log to the local "
        f"store"
    ]
    assert no_model_files(repo.root, "lstm") == []
    assert seconds < 15


def test_a_server_restarted_while_a_stage_logs_loses_nothing(
    repo: PipelineRepo, restore_params: None, tmp_path: Path
) -> None:
    """Stop the server as soon as the training run exists, restart it once the stage has hit
    the outage (urllib3 logs 'Retrying'); every per-epoch metric must still arrive."""
    from mlflow.tracking import MlflowClient

    epochs = 300
    repo.edit_params({"train.epochs": epochs, "train.repeats": 1})
    server = MlflowServer(tmp_path / "server")
    server.start()
    stage = None
    try:
        client = MlflowClient(server.uri)
        stage = popen_stage(
            repo, "stages/train.py", "lstm", "0", env={"MLFLOW_TRACKING_URI": server.uri}
        )
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(stage.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not _training_run(client):
            assert stage.poll() is None, "".join(stderr)
            assert time.monotonic() < deadline, "the training run never appeared"
            time.sleep(0.2)
        server.stop()
        outage = time.monotonic()
        while not any("Retrying" in line for line in stderr):
            assert stage.poll() is None, "".join(stderr)
            assert time.monotonic() < deadline, "the stage never tried to log during the outage"
            time.sleep(0.1)
        server.start()
        retries = sum("Retrying" in line for line in stderr)
        print(f"server down {time.monotonic() - outage:.1f} s; the stage retried {retries}x so far")
        stage.wait(timeout=300)
        reader.join(timeout=10)
        assert stage.returncode == 0, "".join(stderr)

        run = _training_run(client)
        assert run is not None and run.info.status == "FINISHED"
        repeat = _training_run(client, role="repeat")
        assert repeat.info.status == "FINISHED"
        for key in ("train_loss", "val_loss"):
            history = client.get_metric_history(repeat.info.run_id, key)
            assert sorted(metric.step for metric in history) == list(range(1, epochs + 1)), key
        assert {"final_val_loss", "best_val_loss"} <= set(repeat.data.metrics)
        for key in ("best_val_loss_median", "n_parameters", "duration_s"):
            assert key in run.data.metrics
        assert run.data.params["train.epochs"] == str(epochs)
        assert "figures" in {item.path for item in client.list_artifacts(run.info.run_id)}
        models = client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        assert len(models) == 1 and models[0].status == "READY"
        assert (repo.root / "models" / "fold_0" / "lstm" / "repeat_000.pt").exists()
    finally:
        if stage is not None and stage.poll() is None:
            stage.kill()
            stage.wait()
        server.stop()
        for path in no_model_files(repo.root, "lstm"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _training_run(client, role: str = "stage"):
    """The train@lstm-0 stage run, or (role="repeat") its first repeat's run."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`dvc.stage` = 'train@lstm-0' and tags.`pipeline.role` = '{role}'",
    )
    return runs[0] if runs else None
