"""Tuning on an equal budget (issues 16, 26): real Optuna studies in real storages (a SQLite
file, a PostgreSQL cluster started by the test), real worker processes, real `dvc repro`.

Checks: the tuning result (successive halving over seeds, promotion between rungs included) is
byte-identical whether 1 or 2 workers ran the trials; a worker SIGKILLed mid-trial loses
nothing (its trial is retried and counted once); Ctrl-C in a terminal is one line and ends the
running trial FAIL, marked interrupted; every bad input stops with one line before any trial;
`dvc repro` writes a claims.md that names the tuned settings and keeps the shared-setting
comparison. Two clones joining one study through the team server's PostgreSQL are in
test_team_server.py, which starts that server once for every test needing it.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from itertools import takewhile
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import (
    REPO_ROOT,
    TUNING,
    PipelineRepo,
    make_pipeline_repo,
    press_ctrl_c,
    processes_in,
    run_statuses,
    start_in_terminal,
    stop_if_running,
)
from optuna.trial import TrialState

from lstm_vs_rnn.entry_point import _interrupt_on_sigterm as interrupt_on_sigterm
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.modeling.tuning import (
    CONFIGURATION_ATTR,
    INTERRUPTED_ATTR,
    RUNG_ATTR,
    SEED_ATTR,
    STORAGE_ENV,
    WORKER_ATTR,
    TrainingData,
    candidate_list,
    create_study,
    fail_trials_that_never_began,
    objective,
    open_storage,
    record_first_heartbeat,
    run_waiting,
    storage_refusals_explained,
)
from lstm_vs_rnn.params import EXPERIMENT_NAME_ENV, load_params
from lstm_vs_rnn.pipeline import tune

pytestmark = pytest.mark.e2e


def local_study(repo: PipelineRepo) -> optuna.Study:
    storage = f"sqlite:///{repo.root / '.optuna' / 'studies.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def test_one_and_two_workers_choose_byte_identical_settings(
    tuning_repo: Callable[..., PipelineRepo], tmp_path: Path
) -> None:
    # Trials of 60 epochs (a third of a second): long enough that the second worker, which
    # looks for waiting trials every POLL_SECONDS, takes some before the first has run them all.
    space = {**TUNING["tune.space"], "epochs": [60]}
    repo = tuning_repo(tmp_path / "project", **{"train.epochs": 60, "tune.space": space})
    result = repo.root / "tuning" / "fold_0" / "lstm_tuned.json"
    outputs, workers = {}, {}
    for count in (1, 2):
        shutil.rmtree(repo.root / ".optuna", ignore_errors=True)
        repo.edit_params({"tune.workers": count})
        repo.stage("tune@lstm_tuned-0")
        outputs[count] = result.read_bytes()
        trials = local_study(repo).get_trials()
        workers[count] = {trial.user_attrs[WORKER_ATTR] for trial in trials}
    assert outputs[1] == outputs[2]
    assert (len(workers[1]), len(workers[2])) == (1, 2)
    chosen = json.loads(outputs[1])
    assert chosen["tuned"] and chosen["n_trials"] == 4
    assert [trial["trial"] for trial in chosen["trials"]] == [0, 1, 2, 3]
    assert [rung["configurations"] for rung in chosen["rungs"]] == [4, 2]
    assert chosen["budget"]["trainings"] == 6
    assert sum(CONFIGURATION_ATTR in trial.user_attrs for trial in trials) == 6


def test_a_worker_killed_mid_trial_loses_nothing(
    tuning_repo: Callable[..., PipelineRepo], tmp_path: Path
) -> None:
    # Long enough trials that the kill lands inside one: 150 epochs per seed; one rung. Two
    # workers: with one, the trials run in the stage's own process.
    repo = tuning_repo(
        tmp_path / "project",
        **{
            "train.epochs": 150,
            "tune.workers": 2,
            "tune.n_trials": 2,
            "tune.final_seeds": 1,
            "tune.space": {"epochs": [150], "hidden_size": [8, 16]},
        },
    )
    stage = subprocess.Popen(
        ["python", "stages/tune.py", "rnn_tuned", "0"],
        cwd=repo.root,
        env={**repo.env, "PYTHONPATH": "src"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Killed when no trial waits and none is between Optuna's ask and its objective: the
        # other worker, which the pool then stops, is inside a trial or has none. Stopped
        # between ask and objective, it would leave that trial RUNNING for the stage's
        # NEVER_BEGAN_SECONDS (a minute) before its retry.
        victim = running_trial_worker(repo, timeout=120, stage=stage, none_taken=True)
        os.kill(int(victim.split(":")[1]), signal.SIGKILL)
        output = stage.communicate(timeout=300)[0]
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()
    assert stage.returncode == 0, output
    assert "its worker process ended without a result" in output, output
    trials = local_study(repo).get_trials()
    assert "RUNNING" not in {trial.state.name for trial in trials}
    complete = [trial for trial in trials if trial.state.name == "COMPLETE"]
    slots = sorted((t.user_attrs[CONFIGURATION_ATTR], t.user_attrs[SEED_ATTR]) for t in complete)
    assert [position for position, _ in slots] == [0, 1]
    # The killed worker's trial stopped beating: failed, and its retry completed (the other
    # worker, stopped with the pool, failed its trial itself, which was enqueued again).
    killed = next(t for t in trials if t.user_attrs.get(WORKER_ATTR) == victim)
    assert killed.state.name == "FAIL"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    for attr in (CONFIGURATION_ATTR, SEED_ATTR):
        assert retried[0].user_attrs[attr] == killed.user_attrs[attr]
    result = json.loads((repo.root / "tuning" / "fold_0" / "rnn_tuned.json").read_text())
    assert [trial["trial"] for trial in result["trials"]] == [0, 1]
    assert "RUNNING" not in run_statuses(repo.root).values()


def test_ctrl_c_in_a_tune_stage_is_one_line_and_its_trial_ends_failed_as_interrupted(
    tuning_repo: Callable[..., PipelineRepo], tmp_path: Path
) -> None:
    """Through a terminal, as a user presses it: SIGINT reaches the stage and its workers."""
    repo = tuning_repo(
        tmp_path / "project",
        **{
            "train.epochs": 100_000,  # the shared setting is a candidate: in the space too
            "tune.workers": 1,
            "tune.space": {"epochs": [100_000], "hidden_size": [8, 16]},
        },
    )
    pid, terminal = start_in_terminal(repo, "stages/tune.py", "rnn_tuned", "0")
    try:
        running_trial_worker(repo, timeout=120)
        code, shown = press_ctrl_c(pid, terminal)
    finally:
        stop_if_running(pid)
        os.close(terminal)
    assert code == 130, shown
    assert shown.replace("^C", "").strip().splitlines() == [  # the terminal echoes ^C
        "interrupted: the running trials were failed (marked interrupted) and the MLflow run "
        "KILLED; 'dvc repro' resumes the study"
    ]
    trials = local_study(repo).get_trials()
    assert "RUNNING" not in {trial.state.name for trial in trials}
    interrupted = [trial for trial in trials if trial.user_attrs.get(INTERRUPTED_ATTR)]
    assert [trial.state.name for trial in interrupted] == ["FAIL"]
    assert "RUNNING" not in run_statuses(repo.root).values()
    assert processes_in(repo.root) == []


def test_a_trial_whose_worker_dies_before_its_first_heartbeat_does_not_stay_running(
    tmp_path: Path,
) -> None:
    """Optuna never takes a RUNNING trial with no heartbeat for stale, so a worker killed
    between `ask` and its heartbeat thread's first beat would leave the stage waiting forever:
    the objective beats first thing, and a trial whose objective never began is failed."""
    study = create_study(open_storage(f"sqlite:///{tmp_path / 'studies.db'}", 1), "s")
    unbeaten, beaten, began = study.ask(), study.ask(), study.ask()
    record_first_heartbeat(beaten)
    began.set_user_attr(WORKER_ATTR, "host:1")
    time.sleep(4.5)  # past the grace period (3 heartbeats of 1 s; SQLite keeps whole seconds)
    optuna.storages.fail_stale_trials(study)
    states = {trial.number: trial.state.name for trial in study.get_trials()}
    assert (states[unbeaten.number], states[beaten.number]) == ("RUNNING", "FAIL")
    assert fail_trials_that_never_began(study, older_than_s=60) == []  # not yet
    assert fail_trials_that_never_began(study, older_than_s=0) == [unbeaten.number]
    states = {trial.number: trial.state.name for trial in study.get_trials()}
    assert (states[unbeaten.number], states[began.number]) == ("FAIL", "RUNNING")


class SignalsItselfWhileBooking(optuna.samplers.RandomSampler):
    """Sends this process SIGTERM from inside Optuna's booking of a trial: `before_trial` runs
    in `study.ask()` once the trial is RUNNING, `after_trial` in `tell` before the trial's end
    is stored. Where the pool's SIGTERM (or Ctrl-C) lands now and then, here every time. With
    `failed_elsewhere`, the trial is first failed as another worker fails a stale one."""

    def __init__(self, hook: str, failed_elsewhere: bool = False) -> None:
        super().__init__(seed=0)
        self.hook, self.failed_elsewhere = hook, failed_elsewhere

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        super().before_trial(study, trial)
        if self.hook == "before_trial":
            self.stop_this_worker(study, trial)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, *args) -> None:
        super().after_trial(study, trial, *args)
        if self.hook == "after_trial":
            self.stop_this_worker(study, trial)

    def stop_this_worker(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.failed_elsewhere:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize(
    ("hook", "failed_elsewhere", "expected"),
    [
        ("before_trial", False, ("FAIL", True)),
        ("after_trial", False, ("COMPLETE", None)),
        ("before_trial", True, ("FAIL", None)),
    ],
)
def test_a_worker_stopped_while_optuna_books_its_trial_stops_and_leaves_no_trial_running(
    hook: str, failed_elsewhere: bool, expected: tuple[str, bool | None], tmp_path: Path
) -> None:
    """The signal waits for the objective, which fails the trial as interrupted, or for the
    trial's end to be stored. It used to leave the trial RUNNING for a minute (no worker had
    begun it), or to end the worker with Optuna's own `UnboundLocalError` (in `tell`). A
    trial another worker failed meanwhile (this one was starved) still stops the worker."""
    params = load_params(REPO_ROOT / "params.yaml")
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}", 1)
    create_study(storage, "s").enqueue_trial(
        candidate_list(params, "lstm_tuned")[0],
        user_attrs={CONFIGURATION_ATTR: 0, SEED_ATTR: params.tune.seed, RUNG_ATTR: 0},
    )
    sampler = SignalsItselfWhileBooking(hook, failed_elsewhere)
    study = optuna.load_study(study_name="s", storage=storage, sampler=sampler)
    data = TrainingData(torch.randn(40, params.data.window), torch.randn(40), 4)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    verbosity = optuna.logging.get_verbosity()  # `_end_interrupted` quiets Optuna for good
    signal.signal(signal.SIGTERM, interrupt_on_sigterm)  # as a stage or tune worker has it
    try:
        with pytest.raises(KeyboardInterrupt):
            run_waiting(study, objective(params, "lstm_tuned", data))
        left = signal.getsignal(signal.SIGTERM)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        optuna.logging.set_verbosity(verbosity)
    (trial,) = study.get_trials()
    assert (trial.state.name, trial.user_attrs.get(INTERRUPTED_ATTR)) == expected
    # The worker's own handler is back, or ignored once the worker began to stop.
    assert left == (interrupt_on_sigterm if hook == "after_trial" else signal.SIG_IGN)


def test_a_locked_study_storage_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.2}})
    study = optuna.create_study(storage=storage, study_name="s")
    holder = sqlite3.connect(tmp_path / "studies.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # as a DB browser writing to it holds it
    try:
        # A write Optuna makes once (`enqueue_trial` retries trial creation 5 times, sleeping up
        # to 2 s between tries, before its refusal reaches us the same way).
        with pytest.raises(UserError) as refused, storage_refusals_explained(url):
            study.set_user_attr("x", 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(refused.value) == (
        f"a call was refused by the study storage {url}: database is locked; another program "
        f"holds it open for writing (a DB browser, a second tool): close it and re-run"
    )


def running_trial_worker(
    repo: PipelineRepo,
    timeout: float,
    stage: subprocess.Popen[str] | None = None,
    none_taken: bool = False,
) -> str:
    """The worker (host:pid) of the first trial seen running its objective; with `none_taken`,
    once no trial is waiting or being taken (RUNNING, its objective not begun). An
    AssertionError with the stage's output if `stage` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stage is not None and stage.poll() is not None:
            raise AssertionError(f"the stage ended first:\n{stage.communicate()[0]}")
        if (repo.root / ".optuna" / "studies.db").exists():
            try:
                study = local_study(repo)
            except ValueError:
                study = None
            trials = (
                study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING)) if study else []
            )
            # A retried trial waits with its failed one's user attributes, WORKER_ATTR included.
            workers = [
                t.user_attrs[WORKER_ATTR]
                for t in trials
                if t.state == TrialState.RUNNING and WORKER_ATTR in t.user_attrs
            ]
            if workers and (not none_taken or len(workers) == len(trials)):
                return workers[0]
        time.sleep(0.2)
    raise AssertionError("no trial started running")


def check_tuning_input_as_the_stage_does(root: Path, name: str) -> None:
    """What stages/tune.py does before its first trial for an entry that tunes: validate
    params.yaml, draw the candidates, open the study storage."""
    tune.open_study_storage(load_params(root / "params.yaml"), name)


@pytest.fixture(scope="module")
def untuned_repo(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    """A project copy where nothing ran; each test below restores its params.yaml."""
    return make_pipeline_repo(tmp_path_factory.mktemp("bad-tuning") / "project")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"tune.space": {"learning_rate": {"low": 0.1, "high": 0.01}}}, "empty or inverted range"),
        ({"tune.space": {"learning_rate": {"low": 0.01, "high": 0.01}}}, "empty or inverted range"),
        ({"tune.space": {"dropout": [0.1, 0.2]}}, "tune.space.dropout is not a hyperparameter"),
        (
            {"tune.space": {"hidden_size": [16, 32.5]}},
            "choice 32.5 is not allowed; hidden_size takes integers",
        ),
        ({"tune.space": {"learning_rate": ["fast"]}}, "tune.space.learning_rate"),
        ({"tune.space": {"hidden_size": [0, 8]}}, "tune.space.hidden_size: value 0 is not allowed"),
        (
            {"tune.space": {"hidden_size": [4, 16]}},
            "tune.space.hidden_size does not hold models.rnn_tuned.hidden_size = 8",
        ),
        ({"tune.seed": 43}, "overlap the repeats' seeds 42-44"),
        (
            {"tune.n_trials": 0, "models.rnn_tuned.tune": True},
            "models.rnn_tuned.tune = true but tune.n_trials = 0",
        ),
        (
            {"tune.storage": "postgresql://optuna:secret@127.0.0.1:1/optuna"},
            "cannot open the study storage postgresql://optuna:***@127.0.0.1:1/optuna",
        ),
        ({"tune.storage": "not a url"}, "is not a database URL"),
    ],
)
def test_bad_tuning_input_stops_in_one_line_before_any_trial(
    untuned_repo: PipelineRepo, monkeypatch: pytest.MonkeyPatch, changes: dict, expected: str
) -> None:
    """In this process (a stage process costs seconds to start); a stage process refusing a
    storage in one line, its password hidden, is in test_team_server.py."""
    repo = untuned_repo
    monkeypatch.setenv("DVC_ROOT", str(repo.root))  # the workspace of the default storage
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    monkeypatch.delenv(EXPERIMENT_NAME_ENV, raising=False)
    good = (repo.root / "params.yaml").read_text()
    repo.edit_params({**TUNING, **changes})
    try:
        with pytest.raises(UserError) as raised:
            check_tuning_input_as_the_stage_does(repo.root, "rnn_tuned")
    finally:
        (repo.root / "params.yaml").write_text(good)
    line = f"error: {raised.value}"  # as the stage prints it (cli.run_entry_point)
    assert "\n" not in line
    assert expected in line
    assert "secret" not in line
    assert not (repo.root / ".optuna").exists()
    assert not (repo.root / "tuning" / "fold_0" / "rnn_tuned.json").exists()
    assert not (repo.root / "mlflow.db").exists()


def test_dvc_repro_reports_tuned_and_shared_setting_comparisons(
    tuning_repo: Callable[..., PipelineRepo], tmp_path: Path
) -> None:
    # One trial worker per entry: pytest already keeps both cores busy.
    repo = tuning_repo(tmp_path / "project", **{"tune.n_trials": 2, "tune.workers": 1})
    assert "'scale' didn't change" in repo.dvc("repro").stdout
    claims = (repo.root / "reports" / "claims.md").read_text()
    assert "## Tuned settings" in claims
    assert "| lstm_tuned - rnn_tuned at each model's tuned settings |" in claims
    assert "| lstm - rnn at the article's shared setting |" in claims
    assert "## Does each claim survive tuning?" in claims
    chosen = json.loads((repo.root / "tuning" / "fold_0" / "lstm_tuned.json").read_text())["chosen"]
    row = next(line for line in claims.splitlines() if line.startswith("| lstm_tuned | 2 |"))
    assert f"| {chosen['hidden_size']} |" in row
    untuned = json.loads((repo.root / "tuning" / "fold_0" / "lstm.json").read_text())
    assert not untuned["tuned"] and untuned["chosen"]["hidden_size"] == 8
    assert (repo.root / "reports" / "figures" / "tuning_progress.png").exists()
    assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    assert params["models"]["lstm_tuned"]["hidden_size"] == 8
    # `make compare` names each tuned entry's chosen settings, in the workspace and in a commit
    # (read from DVC's cache, as for an experiment), as `dvc params diff` names params.
    repo.commit("tuned baseline")
    compare = repo.run(
        "python", "-m", "lstm_vs_rnn.commands.experiments_table", env={"PYTHONPATH": "src"}
    ).stdout
    listed = compare.split("settings each tuned entry trains at")[1].splitlines()
    assert max(len(line) for line in listed) <= 100, compare
    for row in ("workspace", "main"):
        start = next(
            i
            for i, line in enumerate(listed)
            if line.startswith(f"{row} ") and "lstm_tuned" in line
        )
        wrapped = [
            listed[start],
            *takewhile(lambda line: line.startswith(" "), listed[start + 1 :]),
        ]
        assert "learning_rate=" in " ".join(wrapped) and "hidden_size=" in " ".join(wrapped), (
            compare
        )
