"""Two queued DVC experiments run at the same time into one MLflow store, losing nothing.

The workspace has no MLflow store when the workers start, so the two first stages race to
create it; every experiment runs every stage (each has its own data seed, so DVC's run cache
cannot skip one), logging from DVC's temporary copy into the workspace's store.
"""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PipelineRepo, make_pipeline_repo

from lstm_vs_rnn.params import dump_yaml

pytestmark = pytest.mark.e2e

EXPERIMENTS = {f"par-{i}": {"data.seed": i, "models.lstm.hidden_size": 4 + i} for i in range(2)}
STAGES = {"generate", "scale", "train@lstm-0", "evaluate"}  # lstm does not tune: no tune@ run
STATUS_EVERY_S = 15


def test_two_queued_experiments_two_workers_one_store(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    repo = make_pipeline_repo(tmp_path / "project", {"train.epochs": 2})
    params = repo.params()
    del params["models"]["rnn"]  # one model: the store's concurrency is what is tested here
    (repo.root / "params.yaml").write_text(dump_yaml(params))
    repo.commit("lstm only")
    assert not (repo.root / "mlflow.db").exists()
    for name, changes in EXPERIMENTS.items():
        settings = [arg for key, value in changes.items() for arg in ("-S", f"{key}={value}")]
        repo.dvc("exp", "run", "--queue", "--name", name, *settings)

    started = time.monotonic()
    start_queue(repo, tmp_path / "queue-start.log")
    try:
        status = wait_for_queue(repo, timeout=480)
        seconds = time.monotonic() - started
    finally:
        repo.dvc("queue", "stop", "--kill", check=False)
        left = workers_left(repo.root)
        for pid in left:  # reported below; not left running after the test
            os.kill(pid, signal.SIGKILL)
    assert not left, f"queue workers still running after 'dvc queue stop': {left}"
    print(f"two experiments, two workers: {seconds:.0f} s\n{status}")
    assert queue_statuses(status) == dict.fromkeys(EXPERIMENTS, "Success"), status

    for name in EXPERIMENTS:
        logs = repo.dvc("queue", "logs", name).stdout
        for symptom in ("database is locked", "Traceback", "already exists", "error:"):
            assert symptom not in logs, f"{name}: {symptom}\n{logs}"

    # Everything went to the workspace's store, created once, under one experiment.
    with sqlite3.connect(repo.root / "mlflow.db") as connection:
        names = {name for (name,) in connection.execute("select name from experiments")}
    assert names - {"Default"} == {"lstm-vs-rnn"}
    client = MlflowClient(repo.tracking_uri)
    experiment = client.get_experiment_by_name("lstm-vs-rnn")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if run.data.tags.get("pipeline.role") == "configuration"]
    assert len(parents) == len(EXPERIMENTS), [run.info.run_name for run in parents]
    found = {}
    for parent in parents:
        exp_name = parent.data.tags["dvc.exp_name"]
        expected = EXPERIMENTS[exp_name]
        for key, value in expected.items():
            assert parent.data.params[key] == str(value), (exp_name, key)
        children = [
            run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        ]
        assert {run.data.tags["dvc.stage"] for run in children} == STAGES, exp_name
        assert len(children) == len(STAGES), exp_name
        for child in children:
            assert child.info.status == "FINISHED", (exp_name, child.info.run_name)
            assert child.data.tags["dvc.exp_name"] == exp_name
            for key, value in expected.items():
                if key in child.data.params:
                    assert child.data.params[key] == str(value), (exp_name, child.info.run_name)
        lstm = next(run for run in children if run.data.tags["dvc.stage"] == "train@lstm-0")
        assert lstm.data.params["models.lstm.hidden_size"] == str(
            expected["models.lstm.hidden_size"]
        )
        assert "lstm.test_rmse.mean" in parent.data.metrics
        found[exp_name] = len(children)
        figures = client.list_artifacts(lstm.info.run_id, "figures")
        assert figures, f"{exp_name}: artifacts must outlive DVC's temporary copy"
    print(f"runs in the workspace store: {len(runs)} ({found})")
    assert not list((repo.root / ".dvc" / "tmp").rglob("mlflow.db"))
    shown = repo.dvc("exp", "show", "--no-pager", "--csv").stdout
    assert all(name in shown for name in EXPERIMENTS), shown
    repeats = repo.params()["train"]["repeats"]
    # A parent, its stages and train@lstm-0's repeats per experiment.
    assert len(runs) == len(EXPERIMENTS) * (1 + len(STAGES) + repeats)


def start_queue(repo: PipelineRepo, log: Path) -> None:
    """`dvc queue start -j 2` with its output in `log`: the workers it leaves running hold its
    stdout, so a pipe would not close until they exit. One worker may never exit by itself
    when the two race on the queue's files (DVC issues 10398 and 10428: its monitor thread
    dies of a JSONDecodeError); `dvc queue stop` still ends it."""
    with log.open("w") as output:
        subprocess.run(
            ["dvc", "queue", "start", "-j", "2"],
            cwd=repo.root,
            env=repo.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=True,
        )


def wait_for_queue(repo: PipelineRepo, timeout: float) -> str:
    """`dvc queue status` once every experiment has ended (or at the deadline). A `dvc`
    process costs about a second of CPU, which the two queue workers need: git's refs of the
    experiments that succeeded are polled instead, and DVC's status asked only when all are
    there or every STATUS_EVERY_S (a failed experiment has no ref)."""
    deadline = time.monotonic() + timeout
    asked = 0.0
    while True:
        now = time.monotonic()
        if set(EXPERIMENTS) <= succeeded(repo) or now - asked >= STATUS_EVERY_S or now > deadline:
            asked, status = now, repo.dvc("queue", "status").stdout
            ended = [name for name, state in queue_statuses(status).items() if state in ENDED]
            if len(ended) == len(EXPERIMENTS) or now > deadline:
                return status
        time.sleep(1)


def succeeded(repo: PipelineRepo) -> set[str]:
    """The names of the experiments DVC has committed (refs/exps/<baseline>/<name>)."""
    refs = repo.run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout
    return {ref.rsplit("/", 1)[-1] for ref in refs.split()}


def workers_left(root: Path, wait_s: float = 30.0) -> list[int]:
    """The queue's worker processes (their pid files) still alive after `wait_s` seconds."""
    pids = [
        int(path.read_text())
        for path in (root / ".dvc" / "tmp" / "exps" / "celery").glob("*.pid")
        if path.read_text().strip().isdigit()
    ]
    deadline = time.monotonic() + wait_s
    while True:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


ENDED = ("Success", "Failed")


def queue_statuses(status: str) -> dict[str, str]:
    """Each experiment's state in `dvc queue status`. A task that is ending can be listed
    twice, Running and Success (DVC reads its active and its done tasks one after the other):
    an ended state wins."""
    states: dict[str, str] = {}
    for line in status.splitlines():
        words = line.split()
        if len(words) >= 3 and words[-1] in ("Queued", "Running", *ENDED):
            name, state = words[1], words[-1]
            if states.get(name) not in ENDED:
                states[name] = state
    return states
