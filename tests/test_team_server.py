"""A team on one server: real PostgreSQL 15 and a real `mlflow server` with basic auth, started
and stopped through the same code as `make server`, and clones of the project logging to it.

Checks what issue 10 found broken: two clones starting at once against a new experiment give
one experiment and one parent; a wrong password, a wrong host name or a missing grant stop a
stage with one line before any work; a SIGKILLed stage's run ends KILLED at the next stage on
its machine while another machine's run is left alone; the server's data survives a restart
and Ctrl-C frees the port. The DVC remote round trip reuses a clone's finished pipeline. Tuning
shares the same server: two clones join one Optuna study in its PostgreSQL, which only the
study role reaches over TCP. The server starts once for the whole module.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import requests
from conftest import TUNING, PipelineRepo, clean_env, free_port, make_pipeline_repo

from lstm_vs_rnn.commands.mlflow_server import ensure_port_free, forward_output
from lstm_vs_rnn.commands.team_server import OPTUNA_DB, SERVER_NOISE, ServerConfig, TeamServer
from lstm_vs_rnn.modeling.tuning import CONFIGURATION_ATTR, WORKER_ATTR
from lstm_vs_rnn.params import dump_yaml
from lstm_vs_rnn.pipeline.evaluate import REPEAT_METRICS
from lstm_vs_rnn.tracking.liveness import BOOT_TAG, ENDED_BY_TAG, HOST_TAG, PID_TAG

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "admin-pw-for-tests-only"
EXPERIMENT = "team-test"
ONE_LINE_DEADLINE_S = 15.0


@dataclass
class Team:
    """The running server and how to reach it as the admin."""

    server: TeamServer
    url: str

    def client_env(self, **extra: str) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
            **extra,
        }

    def api(self, method: str, path: str, **kwargs: object) -> dict:
        answer = requests.request(
            method,
            f"{self.url}/api/2.0/mlflow/{path}",
            auth=("admin", ADMIN_PASSWORD),
            timeout=10,
            **kwargs,
        )
        answer.raise_for_status()
        return answer.json()

    def runs(self, filter_string: str = "") -> list[dict]:
        experiment = self.api(
            "GET", "experiments/get-by-name", params={"experiment_name": EXPERIMENT}
        )
        found = self.api(
            "POST",
            "runs/search",
            json={
                "experiment_ids": [experiment["experiment"]["experiment_id"]],
                "filter": filter_string,
                "max_results": 1000,
            },
        )
        return found.get("runs", [])


def tags_of(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """Under /tmp, not pytest's folder: that one is private to root, and PostgreSQL runs as
    the postgres user when the tests run as root."""
    folder = Path(tempfile.mkdtemp(prefix="lstm-vs-rnn-team-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def team(data_dir: Path) -> Iterator[Team]:
    config = ServerConfig(data_dir, port=free_port(), auth=True, study_port=free_port())
    secrets = {
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    saved = {key: os.environ.get(key) for key in secrets}
    os.environ.update(secrets)
    log = data_dir / "mlflow.log"
    server = TeamServer(config, mlflow_log=log)
    try:
        server.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
    try:
        yield Team(server, config.url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def clones(team: Team, tmp_path_factory: pytest.TempPathFactory) -> list[PipelineRepo]:
    """Two clones, same params, `dvc repro` started at the same moment into a new experiment."""
    root = tmp_path_factory.mktemp("clones")
    repos = [make_pipeline_repo(root / f"clone{i}") for i in (1, 2)]
    for repo in repos:  # one model: the server's concurrency is what is tested here
        params = repo.params()
        del params["models"]["rnn"]
        (repo.root / "params.yaml").write_text(dump_yaml(params))
        repo.commit("lstm only")
    processes = [
        subprocess.Popen(
            ["dvc", "repro"],
            cwd=repo.root,
            env={**repo.env, **team.client_env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for repo in repos
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
        assert "Traceback" not in output, output
    return repos


def test_two_clones_at_once_give_one_experiment_one_parent_and_lose_nothing(
    team: Team, clones: list[PipelineRepo]
) -> None:
    experiments = team.api(
        "POST", "experiments/search", json={"filter": f"name = '{EXPERIMENT}'", "max_results": 10}
    )
    assert len(experiments["experiments"]) == 1

    parents = team.runs("tags.`pipeline.role` = 'configuration'")
    assert len(parents) == 1, [tags_of(run) for run in parents]
    parent_id = parents[0]["info"]["run_id"]
    stages = team.runs("tags.`pipeline.role` = 'stage'")
    names = sorted(tags_of(run)["dvc.stage"] for run in stages)
    every_stage = ["evaluate", "generate", "scale", "train@lstm-0"]  # lstm does not tune
    assert names == sorted(every_stage * 2)
    for run in stages:
        tags = tags_of(run)
        assert run["info"]["status"] == "FINISHED"
        assert tags["mlflow.parentRunId"] == parent_id
        assert tags["mlflow.user"] == "admin"
        assert tags[HOST_TAG] == socket.gethostname() and tags[PID_TAG].isdigit()
        # The pinned CPU kernels are in force in every stage process.
        assert tags["kernels.ONEDNN_MAX_CPU_ISA"] == "AVX2"
        assert tags["kernels.MKL_CBWR"] == "COMPATIBLE"
        assert tags["kernels.ATEN_CPU_CAPABILITY"] == "avx2"
        if tags["dvc.stage"].startswith(("train", "evaluate")):
            assert tags["kernels.torch_cpu_capability"] == "AVX2"
    # Nothing a run records names a client's folders (the clone, its venv).
    for run in [*parents, *stages]:
        values = [
            item["value"] for item in run["data"].get("tags", []) + run["data"].get("params", [])
        ]
        for folder in (*(str(repo.root) for repo in clones), sys.prefix):
            assert not [value for value in values if folder in value], folder
    metrics = {metric["key"] for metric in parents[0]["data"]["metrics"]}
    assert {"lstm.test_rmse.mean", "persistence.test_rmse"} <= metrics


def run_record(team: Team, run: dict) -> dict[str, object]:
    """What a client sent to one run: its params, each metric's number of points, its tags'
    keys and its artifacts (two levels deep), without the values that differ between
    machines and moments (durations, hosts, process ids)."""
    run_id = run["info"]["run_id"]
    history = {
        metric["key"]: len(
            team.api(
                "GET", "metrics/get-history", params={"run_id": run_id, "metric_key": metric["key"]}
            ).get("metrics", [])
        )
        for metric in run["data"].get("metrics", [])
    }
    listed = team.api("GET", "artifacts/list", params={"run_id": run_id}).get("files", [])
    artifacts = []
    for item in listed:
        if item["is_dir"]:
            inner = team.api(
                "GET", "artifacts/list", params={"run_id": run_id, "path": item["path"]}
            )
            artifacts += [entry["path"] for entry in inner.get("files", [])]
        else:
            artifacts.append(item["path"])
    return {
        "params": {item["key"]: item["value"] for item in run["data"].get("params", [])},
        "metric_points": history,
        "tags": sorted(tags_of(run)),
        "artifacts": sorted(artifacts),
    }


def children_by_params(team: Team, run: dict) -> dict[str, dict[str, object]]:
    """The records of the runs nested under `run`, keyed by their params (a repeat's)."""
    children = team.runs(f"tags.`mlflow.parentRunId` = '{run['info']['run_id']}'")
    records = [run_record(team, child) for child in children]
    return {str(record["params"]): record for record in records}


def test_the_two_clones_runs_hold_the_same_records_nothing_lost(
    team: Team, clones: list[PipelineRepo]
) -> None:
    """The same code and params send the same params, metric points, tags and artifacts: under
    concurrency the server lost none (issue 28: psycopg's 'pipeline aborted' lines)."""
    stages = team.runs("tags.`pipeline.role` = 'stage'")
    by_stage: dict[str, list[dict]] = {}
    for run in sorted(stages, key=lambda run: run["info"]["start_time"]):
        by_stage.setdefault(tags_of(run)["dvc.stage"], []).append(run)
    for stage, runs in by_stage.items():
        first, second = (run_record(team, run) for run in runs[:2])
        assert first == second, stage
        nested = [children_by_params(team, run) for run in runs[:2]]
        assert nested[0].keys() == nested[1].keys(), stage
        for key, record in nested[0].items():
            mine, theirs = dict(record["metric_points"]), dict(nested[1][key]["metric_points"])
            # Each evaluation adds a point of each repeat's test metrics to the newest run that
            # trained exactly those weights, one of the two clones' runs: two points in all.
            for metric in REPEAT_METRICS:
                assert mine.pop(metric, 0) + theirs.pop(metric, 0) == 2, (stage, key)
            assert {**record, "metric_points": mine} == {
                **nested[1][key],
                "metric_points": theirs,
            }, (stage, key)
    train = by_stage["train@lstm-0"][0]["info"]["run_id"]
    (repeat, *_) = team.runs(f"tags.`mlflow.parentRunId` = '{train}'")
    points = run_record(team, repeat)["metric_points"]
    assert points["train_loss"] == points["val_loss"] == 3  # train.epochs of TINY_PARAMS


def test_a_batch_sent_twice_is_recovered_and_the_log_shows_what_a_user_needs(
    team: Team, data_dir: Path
) -> None:
    """A client retrying a batch (its first try timed out but was written) makes the server's
    multi-row insert hit a duplicate key: MLflow rolls back and keeps one of each."""
    experiment = team.api("GET", "experiments/get-by-name", params={"experiment_name": EXPERIMENT})[
        "experiment"
    ]["experiment_id"]
    run_id = team.api("POST", "runs/create", json={"experiment_id": experiment})["run"]["info"][
        "run_id"
    ]
    batch = {
        "run_id": run_id,
        "metrics": [{"key": f"m{i}", "value": i, "timestamp": 1, "step": 0} for i in range(5)],
        "params": [{"key": f"p{i}", "value": "v"} for i in range(5)],
        "tags": [{"key": f"t{i}", "value": "v"} for i in range(5)],
    }
    for _ in range(2):
        team.api("POST", "runs/log-batch", json=batch)
    team.api("POST", "runs/update", json={"run_id": run_id, "status": "FINISHED"})
    run = team.api("GET", "runs/get", params={"run_id": run_id})["run"]
    record = run_record(team, run)
    assert record["metric_points"] == {f"m{i}": 1 for i in range(5)}
    assert record["params"] == {f"p{i}": "v" for i in range(5)}
    assert {f"t{i}" for i in range(5)} <= set(record["tags"])
    postgres_log = (data_dir / "postgres.log").read_text(errors="replace")
    assert 'duplicate key value violates unique constraint "metric_pk"' in postgres_log
    server_log = (data_dir / "mlflow.log").read_text(errors="replace")
    for noise in ("StarletteDeprecationWarning", "error ignored terminating", "Registry store"):
        assert noise not in server_log, server_log


def test_the_server_output_drops_psycopgs_note_on_an_aborted_pipeline() -> None:
    line = (
        b"error ignored terminating <psycopg.Pipeline [INERROR, pipeline=ON] "
        b"(host=/srv/.team-server/postgres port=5051 user=mlflow database=mlflow) at "
        b"0x7f3a2c1d5e10>: pipeline aborted\n"
    )
    kept = b"2026/12/07 10:00:00 ERROR mlflow.server: a request failed\n"
    destination = io.BytesIO()
    forward_output(io.BytesIO(line + kept + line), destination, SERVER_NOISE)
    assert destination.getvalue() == kept


def run_generate(
    repo: PipelineRepo, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = repo.stage("generate", check=False, env=env)
    return result, time.monotonic() - started


def assert_one_line_before_any_work(
    repo: PipelineRepo, result: subprocess.CompletedProcess, seconds: float, *expected: str
) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(text in lines[0] for text in expected), lines[0]
    assert seconds < ONE_LINE_DEADLINE_S
    assert not (repo.root / "data" / "raw" / "series.csv").exists()


def test_wrong_password_missing_login_and_wrong_host_fail_in_one_line(
    team: Team, tmp_path: Path
) -> None:
    repo = make_pipeline_repo(tmp_path / "project")
    wrong = "not-the-password-123"
    result, seconds = run_generate(repo, team.client_env(MLFLOW_TRACKING_PASSWORD=wrong))
    assert_one_line_before_any_work(repo, result, seconds, "rejected", "MLFLOW_TRACKING_PASSWORD")
    assert wrong not in result.stderr + result.stdout
    print(f"wrong password: one line after {seconds:.1f} s")

    env = {**team.client_env(), "MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
    result, seconds = run_generate(repo, env)
    assert_one_line_before_any_work(repo, result, seconds, "needs a login")
    print(f"no login: one line after {seconds:.1f} s")

    # 127.1 is 127.0.0.1 in the short dotted form every resolver accepts (inet_aton), and a
    # host name the server is certain not to allow (it allows localhost and 127.0.0.1).
    other_name = "127.1"
    assert socket.gethostbyname(other_name) == "127.0.0.1"
    url = team.url.replace("127.0.0.1", other_name)
    result, seconds = run_generate(repo, team.client_env(MLFLOW_TRACKING_URI=url))
    assert_one_line_before_any_work(repo, result, seconds, "--allowed-hosts", other_name)
    print(f"wrong host name: one line after {seconds:.1f} s")


def test_a_teammate_needs_a_grant_then_logs(team: Team, clones: list[PipelineRepo]) -> None:
    """`make teammate` adds the user and grants EDIT; before it, one line says to run it."""
    from mlflow.server import get_app_client

    repo = clones[0]
    bob = {"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": "bob-pw-123456"}
    auth_env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    os.environ.update(auth_env)
    try:
        get_app_client("basic-auth", tracking_uri=team.url).create_user("bob", "bob-pw-123456")
    finally:
        for key in auth_env:
            os.environ.pop(key)
    result, seconds = run_generate(repo, team.client_env(**bob))
    print(f"no grant: one line after {seconds:.1f} s")
    assert result.returncode == 1 and seconds < ONE_LINE_DEADLINE_S
    assert result.stderr.strip().splitlines() == [
        f"error: user 'bob' may not log to the MLflow experiment '{EXPERIMENT}' at {team.url} "
        "(403): ask the server's admin to run 'make teammate NAME=bob'"
    ]

    repo.run(
        "python",
        "-m",
        "lstm_vs_rnn.commands.teammates",
        "bob",
        env={"PYTHONPATH": "src", "TEAMMATE_PASSWORD": "bob-pw-123456", **team.client_env()},
    )
    repo.stage("generate", env=team.client_env(**bob))
    users = {tags_of(run)["mlflow.user"] for run in team.runs("tags.`dvc.stage` = 'generate'")}
    assert users == {"admin", "bob"}


def test_a_killed_stage_ends_killed_at_the_next_stage_other_machines_untouched(
    team: Team, clones: list[PipelineRepo]
) -> None:
    repo = clones[1]
    env = {**repo.env, **team.client_env(), "PYTHONPATH": "src"}
    foreign = team.api(
        "POST",
        "runs/create",
        json={
            "experiment_id": team.runs()[0]["info"]["experiment_id"],
            "run_name": "train@lstm-0",
            "tags": [
                {"key": HOST_TAG, "value": "another-machine"},
                {"key": BOOT_TAG, "value": "another-boot"},
                {"key": PID_TAG, "value": "999999"},
            ],
        },
    )["run"]["info"]["run_id"]

    repo.edit_params({"train.epochs": 400})
    stage = subprocess.Popen(
        [sys.executable, "stages/train.py", "lstm", "0"],
        cwd=repo.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stage_filter = f"tags.`{PID_TAG}` = '{stage.pid}' and tags.`pipeline.role` = 'stage'"
    try:
        deadline = time.monotonic() + 60
        while not team.runs(stage_filter):
            assert time.monotonic() < deadline and stage.poll() is None
            time.sleep(0.3)
    finally:
        stage.send_signal(signal.SIGKILL)
        stage.wait()
        repo.run("git", "checkout", "params.yaml")
    [dead] = team.runs(stage_filter)
    assert dead["info"]["status"] == "RUNNING"

    repo.stage("generate", env=team.client_env())

    [dead] = team.runs(stage_filter)
    assert dead["info"]["status"] == "KILLED"
    assert f"process {stage.pid}" in tags_of(dead)[ENDED_BY_TAG]
    other = team.api("GET", "runs/get", params={"run_id": foreign})["run"]
    assert other["info"]["status"] == "RUNNING"


def test_dvc_remote_push_clone_pull_then_nothing_to_run(
    clones: list[PipelineRepo], tmp_path: Path
) -> None:
    repo = clones[0]
    repo.dvc("remote", "add", "-d", "team", str(tmp_path / "remote"))
    repo.commit("results and a DVC remote")
    repo.dvc("push", "--run-cache")  # `make push`

    fresh = PipelineRepo(tmp_path / "fresh", clean_env())
    subprocess.run(["git", "clone", "-q", str(repo.root), str(fresh.root)], check=True)
    fresh.dvc("pull")
    repro = fresh.dvc("repro")
    assert "Data and pipelines are up to date." in repro.stdout, repro.stdout
    assert "Data and pipelines are up to date." in fresh.dvc("status").stdout
    assert not (fresh.root / "mlflow.db").exists()  # nothing ran, nothing was logged

    # What `make run` does with a default remote: `dvc repro --pull` fetches instead of
    # training, so a teammate on another CPU gets the committed bytes, not their own.
    other = PipelineRepo(tmp_path / "other-cpu", clean_env())
    subprocess.run(["git", "clone", "-q", str(repo.root), str(other.root)], check=True)
    pulled = other.dvc("repro", "--pull")
    assert "Running stage" not in pulled.stdout, pulled.stdout
    assert (other.run("git", "status", "--porcelain").stdout) == ""  # dvc.lock unchanged
    assert (other.root / "reports" / "metrics.json").read_bytes() == (
        repo.root / "reports" / "metrics.json"
    ).read_bytes()
    assert not (other.root / "mlflow.db").exists()


# --- tuning through the server's PostgreSQL (tune.storage) ----------------------------------


@dataclass(frozen=True)
class Storages:
    """One PostgreSQL study database, as the server's machine and as other machines reach it."""

    local: str  # the Unix socket, as `make server` prints OPTUNA_STORAGE
    remote: str  # TCP with the study role's password, as in optuna-storage.url
    config: ServerConfig


@pytest.fixture(scope="module")
def postgres_storage(team: Team) -> Storages:
    """The team server's study database (tune.storage), as `make server` prints it."""
    config = team.server.config
    remote = config.study_url_file.read_text().strip()
    return Storages(config.database_uri(OPTUNA_DB), remote, config)


def test_two_clones_share_one_study_through_postgresql(
    postgres_storage: Storages, tuning_repo: Callable[..., PipelineRepo], tmp_path: Path
) -> None:
    """The stage on the server's machine (Unix socket) and a tune worker that joins over TCP
    with the study role's password, as one on another machine would."""
    # Trials of about a second (150 epochs), so both workers are up before the list is done
    # (at 30 epochs, a fifth of a second, the stage could run all six before the helper joined).
    space = {**TUNING["tune.space"], "epochs": [150]}
    clones = [
        tuning_repo(
            tmp_path / f"clone{i}",
            **{"tune.workers": 1, "tune.space": space, "train.epochs": 150},
        )
        for i in (1, 2)
    ]
    stage = subprocess.Popen(
        ["python", "stages/tune.py", "lstm_tuned", "0"],
        cwd=clones[0].root,
        env={**clones[0].env, "PYTHONPATH": "src", "OPTUNA_STORAGE": postgres_storage.local},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    helper = clones[1].run(
        "python",
        "-m",
        "lstm_vs_rnn.commands.tune_worker",
        "--entry",
        "lstm_tuned",
        "--wait",
        "60",
        env={"PYTHONPATH": "src", "OPTUNA_STORAGE": postgres_storage.remote},
    )
    output = stage.communicate(timeout=300)[0]
    assert stage.returncode == 0, output
    (summary,) = [
        s
        for s in optuna.get_all_study_summaries(postgres_storage.remote)
        if s.study_name.startswith("lstm_tuned-")
    ]
    study = optuna.load_study(study_name=summary.study_name, storage=postgres_storage.local)
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 6
    assert {t.user_attrs[CONFIGURATION_ATTR] for t in complete} == {0, 1, 2, 3}
    assert len({t.user_attrs[WORKER_ATTR] for t in complete}) == 2, helper.stdout
    result = json.loads((clones[0].root / "tuning" / "fold_0" / "lstm_tuned.json").read_text())
    assert result["n_trials"] == 4


def test_over_tcp_only_the_study_role_with_its_password_gets_in(
    postgres_storage: Storages, pipeline_repo: PipelineRepo
) -> None:
    """The password file and URL are private; a wrong password is one line naming the storage
    without it; the tracking database's superuser role gets nothing over TCP."""
    import psycopg

    config = postgres_storage.config
    for private in (config.study_password_file, config.study_url_file):
        assert private.stat().st_mode & 0o777 == 0o600
    password = config.study_password_file.read_text().strip()
    assert postgres_storage.remote == (
        f"postgresql://optuna:{password}@127.0.0.1:{config.study_port}/optuna"
    )
    wrong = postgres_storage.remote.replace(password, "wrong-password")
    pipeline_repo.edit_params(TUNING)
    result = pipeline_repo.stage(
        "tune@rnn_tuned-0", check=False, timeout=120, env={"OPTUNA_STORAGE": wrong}
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot open the study storage postgresql://optuna:***@")
    assert "wrong-password" not in result.stderr
    for role, database in (("mlflow", "mlflow"), ("mlflow", "optuna"), ("optuna", "mlflow")):
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry|password"):
            psycopg.connect(
                host="127.0.0.1",
                port=config.study_port,
                user=role,
                dbname=database,
                password=password,
                connect_timeout=5,
            )


def test_make_server_restarts_with_its_data_and_ctrl_c_frees_the_port(
    team: Team, clones: list[PipelineRepo], data_dir: Path
) -> None:
    """The command `make server` runs, on the same folder: the experiment is still there."""
    team.server.stop()
    port, study_port = team.server.config.port, team.server.config.study_port
    env = {
        **clean_env(),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    command = [
        sys.executable,
        "-m",
        "lstm_vs_rnn.commands.team_server",
        "--data-dir",
        str(data_dir),
    ]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--study-port", str(study_port), "--auth"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = (line.strip() for line in server.stdout)
        announced = next(line for line in lines if line.startswith("MLFLOW_TRACKING_URI="))
        assert announced == f"MLFLOW_TRACKING_URI=http://127.0.0.1:{port}"
        assert team.runs("tags.`pipeline.role` = 'configuration'")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert server.returncode == 0
    ensure_port_free("127.0.0.1", port, "another port")  # nothing listens: no UserError
    # PostgreSQL removes its pid file when it has shut down cleanly.
    assert not (team.server.config.pg_data / "postmaster.pid").exists()
