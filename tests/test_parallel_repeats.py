"""Repeats trained side by side on worker processes: a failing or killed worker stops the stage
cleanly, Ctrl-C in a terminal leaves nothing behind, and the progress a user sees in a terminal.
The same bytes for one and two workers, and the progress lines in a log, are checked in
test_pipeline_e2e.py (a fresh clone training on two workers).

Real stage runs in a copy of the project, real signals, a real SQLite MLflow store.
"""

import os
import re
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    REPO_ROOT,
    BuiltPipeline,
    PipelineRepo,
    press_ctrl_c,
    processes_in,
    read_until,
    run_statuses,
    start_in_terminal,
    stop_if_running,
    wait_for_exit,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory: pytest.TempPathFactory, scaled_pipeline: BuiltPipeline
) -> Iterator[PipelineRepo]:
    """A project copy where the stages before train@lstm-0 ran, training on two workers."""
    repo = scaled_pipeline.copy_to(tmp_path_factory.mktemp("parallel") / "project")
    repo.edit_params({"train.workers": 2})
    repo.commit("two workers")
    repo.stage("tune@lstm-0")  # lstm does not tune: writes its listed settings
    yield repo


@pytest.fixture
def restore_params(repo: PipelineRepo) -> Iterator[None]:
    good = (repo.root / "params.yaml").read_text()
    yield
    (repo.root / "params.yaml").write_text(good)


def workers_of(stage: int) -> list[int]:
    """The pool's worker processes of a stage: its children started by multiprocessing's spawn
    (not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == stage and b"spawn_main" in command and b"resource_tracker" not in command:
            found.append(int(entry.name))
    return found


def repeat_runs(root: Path) -> dict[str, str]:
    """Status of each repeat run of train@lstm-0's latest execution, by run name."""
    with sqlite3.connect(f"file:{root / 'mlflow.db'}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "select r.name, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'mlflow.parentRunId' and t.value = (select run_uuid from runs "
            "where name = 'train@lstm-0' order by start_time desc limit 1)"
        )
        return dict(rows)


def test_a_failing_worker_stops_the_others_in_one_line(
    repo: PipelineRepo, restore_params: None
) -> None:
    """Every repeat diverges at epoch 1 (see test_faults for the float32 overflow)."""
    train = repo.root / "data" / "processed" / "fold_0" / "train.npy"
    good = train.read_bytes()
    repo.edit_params({"train.learning_rate": 10.0})
    np.save(train, np.full(240, 3e19), allow_pickle=False)
    try:
        result = repo.stage("train@lstm-0", check=False)
    finally:
        train.write_bytes(good)
    assert result.returncode == 1
    assert re.fullmatch(
        r"error: lstm, repeat \d \(seed 4\d\): training diverged at epoch 1: .*",
        result.stderr.strip(),
    ), result.stderr
    statuses = repeat_runs(repo.root)
    assert "FAILED" in statuses.values() and "RUNNING" not in statuses.values(), statuses
    assert "RUNNING" not in run_statuses(repo.root).values()
    assert processes_in(repo.root) == []


def test_a_terminal_shows_one_live_line_and_ctrl_c_leaves_no_worker_or_running_run(
    repo: PipelineRepo, restore_params: None
) -> None:
    repo.edit_params({"train.epochs": 100_000})
    repo.stage("tune@lstm-0")  # as `dvc repro` would: tune@lstm-0 tracks train.epochs
    models = repo.root / "models"
    # Files only: the fold's (empty) folder may stay, as DVC itself would make it.
    before = sorted(p for p in models.rglob("*") if p.is_file())
    pid, terminal = start_in_terminal(repo, "stages/train.py", "lstm", "0")
    try:
        # Both workers' repeats on the line (under load the second one's first epoch may come
        # before the first one's).
        shown = read_until(
            terminal, r"#0 epoch [1-9]\d*/100000, #1 epoch [1-9]\d*/100000", timeout=120
        )
        live = shown[shown.index("\rtrain@lstm-0") :]
        assert "\n" not in live, live  # redrawn in place, never a new line per epoch
        assert re.search(
            r"\rtrain@lstm-0: 0/3 done \| #0 epoch \d+/100000, #1 epoch \d+/100000 \| "
            r"\d+:\d\d elapsed, ~\d+:\d\d(:\d\d)? left",
            live,
        ), live
        assert len(workers_of(pid)) == 2
        code, shown = press_ctrl_c(pid, terminal)
    finally:
        stop_if_running(pid)
        os.close(terminal)
    assert code == 130, shown
    assert "Traceback" not in shown
    assert "interrupted: the MLflow run was marked KILLED" in shown
    assert set(repeat_runs(repo.root).values()) == {"KILLED"}
    assert "RUNNING" not in run_statuses(repo.root).values()
    assert processes_in(repo.root) == []
    # The weights of an earlier run, if any, stay as they were; no temporary folder is left.
    assert sorted(p for p in models.rglob("*") if p.is_file()) == before


def test_a_killed_worker_fails_its_repeat_and_stops_the_stage(
    repo: PipelineRepo, restore_params: None
) -> None:
    repo.edit_params({"train.epochs": 100_000})
    repo.stage("tune@lstm-0")  # as `dvc repro` would: tune@lstm-0 tracks train.epochs
    pid, terminal = start_in_terminal(repo, "stages/train.py", "lstm", "0")
    try:
        # Both repeats past their first epoch, so each has its repeat run when one worker dies.
        read_until(terminal, r"#0 epoch [1-9]\d*/100000, #1 epoch [1-9]", timeout=120)
        workers = workers_of(pid)
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGKILL)
        code, shown = wait_for_exit(pid, terminal, timeout=60)
    finally:
        stop_if_running(pid)
        os.close(terminal)
    assert code == 1, shown
    last = shown.strip().splitlines()[-1]
    named = re.fullmatch(
        r"error: lstm, repeat (\d) \(seed (4\d)\): its worker process ended without a result "
        r"\(killed by a signal, or out of memory\)",
        last.strip(),
    )
    assert named, shown
    # The pool fails every unfinished job at once: the repeat named must be one that was
    # running (its worker died), and its run alone ends FAILED.
    statuses = repeat_runs(repo.root)
    assert statuses == {
        f"lstm · repeat {repeat} · seed {42 + repeat}": (
            "FAILED" if str(repeat) == named[1] else "KILLED"
        )
        for repeat in (0, 1)
    }, (named[0], statuses)
    assert "RUNNING" not in run_statuses(repo.root).values()
    assert processes_in(repo.root) == []


def test_every_event_a_job_reports_reaches_the_parent_before_map_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job's result travels on the executor's pipe, its events on the pool's queue: events
    reported just before returning (the last epoch, the finished repeat) must not be lost."""
    # Spawned workers get this process's sys.path, which an in-process pytest run of another
    # test (pytester) may have left without the project's entries.
    for folder in (REPO_ROOT / "src", REPO_ROOT / "tests"):
        monkeypatch.syspath_prepend(str(folder))
    from pool_jobs import report_then_return

    from lstm_vs_rnn.workers import worker_pool

    received: list[tuple[int, int]] = []
    jobs = [(job, 40, 256 * 1024) for job in range(4)]  # 10 MiB of events per job
    with worker_pool(2) as pool:
        results = pool.map(
            report_then_return,
            jobs,
            describe=str,
            on_event=lambda event: received.append(event[:2]),
        )
    assert results == [0, 1, 2, 3]
    assert sorted(received) == [(job, number) for job in range(4) for number in range(40)]


def test_the_last_spawned_worker_killed_outright_is_a_worker_died_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The executor spawns a worker per job on demand; Python 3.11's manager thread can wait on
    the sentinels it knew before the last one was spawned, so that worker's SIGKILL went
    unnoticed and `map` waited forever. The pool checks its workers itself."""
    for folder in (REPO_ROOT / "src", REPO_ROOT / "tests"):
        monkeypatch.syspath_prepend(str(folder))
    from pool_jobs import report_pid_then_sleep

    from lstm_vs_rnn.workers import WorkerDied, failed_job, worker_pool

    pids: dict[int, int] = {}
    outcome: list[BaseException | list[int]] = []

    def kill_the_last_spawned(event: tuple[int, int]) -> None:
        pids[event[0]] = event[1]
        if len(pids) == 2:
            os.kill(max(pids.values()), signal.SIGKILL)

    def run() -> None:
        try:
            with worker_pool(2) as pool:
                jobs = [(job, 60.0) for job in range(2)]
                outcome.append(pool.map(report_pid_then_sleep, jobs, str, kill_the_last_spawned))
        except BaseException as error:
            outcome.append(error)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=45)  # the jobs sleep 60 s: only a noticed death ends map before
    assert not runner.is_alive(), "map still waits on a killed worker"
    assert isinstance(outcome[0], WorkerDied), outcome
    killed = next(job for job, pid in pids.items() if pid == max(pids.values()))
    assert failed_job(outcome[0]) == killed
    assert "its worker process ended without a result" in str(outcome[0])
