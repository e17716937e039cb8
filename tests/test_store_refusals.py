"""What the tracking store refuses reaches the user as one line with the database's own cause;
a locked store is waited for; a moved project's store is refused until it is relocated.

Real stages run as subprocesses in a project copy against a real SQLite store (other refusals:
what the stage calls to open its run, in this process); the lock is a real `BEGIN EXCLUSIVE`
held by another connection, as a DB browser holds it.
"""

import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import BuiltPipeline, PipelineRepo, clean_env, run_statuses

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


def start_stage(
    repo: PipelineRepo, name: str, env: dict[str, str], *args: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, f"stages/{name}.py", *args],
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
            # A store the stage may not write (as on a read-only file system): SQLite's words,
            # not SQLAlchemy's hint about its session's autoflush.
            {"MLFLOW_TRACKING_URI": "sqlite:///file:{root}/mlflow.db?mode=ro&uri=true"},
            r"error: the MLflow store sqlite:///file:.*/mlflow\.db\?mode=ro&uri=true refused the "
            r"stage's call \(OperationalError: attempt to write a readonly database\); "
            r"/.*/mlflow\.db or its folder cannot be written \(a read-only file system or "
            r"permissions\): make both writable, or set MLFLOW_TRACKING_URI to a store you can "
            r"write",
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
            stage_run("scale", params, ("data.train_fraction",)),
        ):
            pass
    finally:
        mlflow.set_tracking_uri(previous_uri)
    line = f"error: {raised.value}"  # as the stage prints it (cli.run_entry_point)
    assert "\n" not in line
    assert re.fullmatch(expected, line), line
    assert run_statuses(repo.root) == runs_before
    assert "RUNNING" not in runs_before.values()


def test_a_store_deleted_while_a_stage_runs_is_one_line_with_its_cause(
    built_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    repo = built_pipeline.copy_to(tmp_path / "project")
    stage = start_stage(repo, "train", {}, "rnn", "0")
    assert stage.stderr is not None
    first = stage.stderr.readline()  # the first repeat is done: the run is open
    (repo.root / "mlflow.db").unlink()
    rest = stage.communicate(timeout=120)[1]
    assert stage.returncode == 1, first + rest
    assert rest.strip().splitlines()[-1] == (
        f"error: the MLflow store {repo.tracking_uri} refused the stage's call "
        f"(OperationalError: attempt to write a readonly database); {repo.root}/mlflow.db was "
        f"deleted or moved while the stage ran: put it back, or re-run the stage to log to a "
        f"new store"
    ), first + rest
    assert "Traceback" not in rest


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


def test_a_moved_project_refuses_before_any_work_and_relocate_store_moves_its_artifacts(
    built_pipeline: BuiltPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow fixes the experiment's artifact location as an absolute path: a copied or moved
    project logged its new models into the old folder, and lost them when it was deleted."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from lstm_vs_rnn.commands import relocate_store

    old, moved = tmp_path / "old", tmp_path / "moved"
    shutil.copytree(built_pipeline.root, old, symlinks=True)
    relocate_store.relocate(old / "mlflow.db", built_pipeline.root.resolve(), old.resolve())
    shutil.copytree(old, moved, symlinks=True)
    shutil.rmtree(old)
    repo = PipelineRepo(moved, clean_env())
    runs_before = run_statuses(moved)
    weights = sorted((moved / "models" / "fold_0" / "rnn").iterdir())
    weights_bytes = [path.read_bytes() for path in weights]

    refused = repo.stage("train@rnn-0", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: the MLflow store {moved}/mlflow.db was made in {old}: its experiment "
        f"'lstm-vs-rnn' keeps artifacts in {old}/mlartifacts, not beside the store in "
        f"{moved}/mlartifacts (the project was moved or copied); run 'make relocate-store' to "
        f"point the store at {moved}/mlartifacts, or move mlflow.db and mlartifacts/ away for "
        f"a fresh store"
    ]
    assert run_statuses(moved) == runs_before and not old.exists()
    assert [path.read_bytes() for path in weights] == weights_bytes

    uri = f"sqlite:///{moved / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    relocate_store.main()
    repo.dvc("repro", "-f", "-s", "train@rnn-0")
    assert not old.exists()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("lstm-vs-rnn")
    assert experiment.artifact_location == (moved / "mlartifacts").as_uri()
    newest = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string="name = 'rnn'",
        order_by=[{"field_name": "creation_time", "ascending": False}],
        output_format="list",
    )[0]
    assert newest.artifact_location.startswith((moved / "mlartifacts").as_uri())
    forecast = mlflow.pyfunc.load_model(f"models:/{newest.model_id}").predict(
        np.linspace(0.0, 1.0, 20).reshape(2, 10)
    )
    assert forecast.shape[0] == 2
    evaluate = client.search_runs([experiment.experiment_id], "tags.`dvc.stage` = 'evaluate'")[0]
    claims = client.download_artifacts(evaluate.info.run_id, "claims/claims.md", str(tmp_path))
    assert Path(claims).read_text().strip()
