"""What the tracking store refuses reaches the user as one line; a locked store is waited for.

Real stages run as subprocesses in a project copy against a real SQLite store (other refusals:
what the stage calls to open its run, in this process); the lock is a real `BEGIN EXCLUSIVE`
held by another connection, as a DB browser holds it.
"""

import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import BuiltPipeline, PipelineRepo, run_statuses

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.tracking.runs import stage_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory: pytest.TempPathFactory, scaled_pipeline: BuiltPipeline
) -> Iterator[PipelineRepo]:
    """A project copy where generate and scale ran, so mlflow.db exists."""
    yield scaled_pipeline.copy_to(tmp_path_factory.mktemp("refusals") / "project")


@contextmanager
def exclusive_lock(database: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds `BEGIN EXCLUSIVE` on `database` until the block ends."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    try:
        yield connection
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def start_stage(repo: PipelineRepo, name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, f"stages/{name}.py"],
        cwd=repo.root,
        env={**repo.env, "PYTHONPATH": "src", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_store_locked_by_another_program_is_waited_for_then_reported(
    repo: PipelineRepo,
) -> None:
    with exclusive_lock(repo.root / "mlflow.db"):
        result = repo.stage("scale", check=False, env={"LSTM_VS_RNN_STORE_WAIT_S": "3"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"waiting for the MLflow store {repo.tracking_uri}: another")
    assert lines[1] == (
        f"error: the MLflow store {repo.tracking_uri} stayed locked by another program for 3 s: "
        f"close the program that holds mlflow.db open for writing (a DB browser, another "
        f"tool), then re-run; LSTM_VS_RNN_STORE_WAIT_S sets how long to wait"
    )
    assert "RUNNING" not in run_statuses(repo.root).values()


def test_a_lock_released_within_the_bound_only_delays_the_stage(repo: PipelineRepo) -> None:
    with exclusive_lock(repo.root / "mlflow.db"):
        stage = start_stage(repo, "scale", {"LSTM_VS_RNN_STORE_WAIT_S": "60"})
        assert stage.stderr is not None
        first = stage.stderr.readline()
        assert first.startswith("waiting for the MLflow store"), first
    rest = stage.communicate(timeout=120)[1]
    assert stage.returncode == 0, rest
    assert "waiting for" not in rest and "error" not in rest
    assert "RUNNING" not in run_statuses(repo.root).values()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"MLFLOW_TRACKING_URI": "sqlite:///{root}/not-a-database.db"},
            r"error: the MLflow store sqlite:///.*/not-a-database\.db refused the stage's call "
            r"\(\w+: .*file is not a database.*\); check the store .*, then re-run",
        ),
        (
            {"LSTM_VS_RNN_STORE_WAIT_S": "soon"},
            r"error: LSTM_VS_RNN_STORE_WAIT_S = 'soon' is not allowed; expected seconds >= 0",
        ),
    ],
)
def test_other_store_refusals_are_one_line(
    repo: PipelineRepo, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    """In this process, as the stage opens its run (`stage_run`): a stage process costs seconds
    to start, and the locked-store tests above run real ones."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    (repo.root / "not-a-database.db").write_bytes(b"this is a text file, not SQLite\n" * 64)
    # The stage's environment (its workspace, its store), restored afterwards.
    monkeypatch.setenv("DVC_ROOT", str(repo.root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", repo.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(root=repo.root))
    params = load_params(repo.root / "params.yaml")
    runs_before = run_statuses(repo.root)
    previous_uri = utils._tracking_uri  # connect() sets MLflow's global tracking URI
    try:
        with (
            pytest.raises(UserError) as raised,
            stage_run("scale", params, param_prefixes=("data.train_fraction",)),
        ):
            pass
    finally:
        mlflow.set_tracking_uri(previous_uri)
    line = f"error: {raised.value}"  # as the stage prints it (cli.run_entry_point)
    assert "\n" not in line
    assert re.fullmatch(expected, line), line
    assert run_statuses(repo.root) == runs_before
    assert "RUNNING" not in runs_before.values()


def test_a_refusal_naming_a_password_is_reported_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.exceptions import MlflowException

    from lstm_vs_rnn.errors import UserError
    from lstm_vs_rnn.tracking.store import store_refusals_explained

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://alice:s3cret@db.example:5432/mlflow")
    refused = MlflowException(
        "(psycopg.OperationalError) connection to postgresql://bob:hunter2@10.0.0.2/x failed: "
        "password s3cret rejected\n  a second line of detail",
        error_code="TEMPORARILY_UNAVAILABLE",
    )
    with pytest.raises(UserError) as raised, store_refusals_explained():
        raise refused
    assert str(raised.value) == (
        "the MLflow store postgresql://alice:***@db.example:5432/mlflow refused the stage's call "
        "(MlflowException: (psycopg.OperationalError) connection to postgresql://bob:***@"
        "10.0.0.2/x failed: password *** rejected); check the store (MLFLOW_TRACKING_URI, its "
        "disk or its server log), then re-run"
    )
