"""The `tune@<entry>` stage's work: choose the entry's settings on the validation tail, on the
same budget for every entry.

For a tuned entry (see `modeling.tuning`): draws the `tune.n_trials` trial list, enqueues it in
the Optuna study of this configuration, and runs them on the worker pool (`lstm_vs_rnn.workers`,
as training's repeats: one process per usable core, or `tune.workers`) until every trial of the
list is complete, whichever machine ran it (`make tune-worker` elsewhere joins through a shared
storage). For an entry that does not tune,
the chosen settings are its listed ones, and nothing heavier than the params is loaded (torch
and Optuna are imported where the tuned path needs them). Writes tuning/<entry>.json.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_vs_rnn.files import write_csv, write_json
from lstm_vs_rnn.modeling.chosen_settings import tuning_result
from lstm_vs_rnn.params import Params
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.processes import usable_cores
from lstm_vs_rnn.workers import WorkerDied, worker_pool

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

# The params keys the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both;
# `{entry}` is the stage's entry, dvc.yaml's `${key}`):
# what a trial's score depends on (modeling.tuning.study_name), not who runs it. A trial worker
# trains on one thread, so `train.num_threads` is not among them.
PARAMS = (
    "data.window",
    "train.epochs",
    "train.batch_size",
    "train.learning_rate",
    "train.val_fraction",
    "train.grad_clip_norm",
    "tune.n_trials",
    "tune.seeds",
    "tune.sampler_seed",
    "tune.space",
    "models.{entry}",
)


@dataclass(frozen=True)
class TrialRow:
    """One trial of the study as the stage's run logs it: a nested run and a table row."""

    slot: int
    params: dict[str, Any]
    val_loss_per_epoch: list[float]
    tags: dict[str, str]
    row: dict[str, Any]


@dataclass(frozen=True)
class TuneResult:
    """A tuned entry's study: the written result, every trial (retried and failed ones
    included) and the seconds the trials took."""

    result: dict[str, Any]
    trials: list[TrialRow]
    seconds: float


def write_listed(params: Params, paths: ProjectPaths, name: str) -> None:
    """tuning/<name>.json of an entry that does not tune: its listed settings, no trial."""
    write_json(paths.tuning_result(name), tuning_result(params, name, []))


def open_study_storage(params: Params, name: str) -> RDBStorage:
    """The study storage, once entry `name`'s search space is checked: the stage calls this
    before it opens its MLflow run, so a bad space or storage touches no run.

    Raises UserError for a search space that does not fit the entry or a storage that cannot
    be opened.
    """
    from lstm_vs_rnn.modeling.tuning import open_storage, search_space, storage_url

    search_space(params, name)
    return open_storage(storage_url(params), params.tune.heartbeat_seconds)


def run(params: Params, paths: ProjectPaths, name: str, storage: RDBStorage) -> TuneResult:
    """Run entry `name`'s study in `storage` to the end and write tuning/<name>.json.

    Raises UserError for a failed trial worker or a study in which every trial diverged.
    """
    from lstm_vs_rnn.modeling.tuning import (
        completed_slots,
        create_study,
        search_space,
        study_name,
        trial_list,
        trial_record,
    )

    space = search_space(params, name)
    trials = trial_list(space, params.tune.n_trials, params.tune.sampler_seed)
    study = create_study(storage, study_name(params, name, paths.train_array), trials)
    started = time.monotonic()
    run_trials_on_workers(params, paths, name, storage.url, trials)
    seconds = time.monotonic() - started
    done = completed_slots(study)
    records = [trial_record(slot, done[slot]) for slot in sorted(done)]
    result = tuning_result(params, name, records)
    write_json(paths.tuning_result(name), result)
    return TuneResult(result, trial_rows(study.get_trials(deepcopy=False)), seconds)


def run_trials_on_workers(
    params: Params, paths: ProjectPaths, name: str, url: str, trials: list[dict]
) -> None:
    """Run the study's trials on `tune.workers` processes of the worker pool (default: one
    per usable core; one runs them in this process), until every slot of `trials` is complete.

    A worker killed outright (SIGKILL, out of memory) loses nothing: its trial stops beating,
    is failed and run again (`modeling.tuning`), and the pool is started anew, at most
    `len(trials)` times. Raises the first error a worker's job raised, or `workers.WorkerDied`
    once the restarts are spent."""
    from lstm_vs_rnn.modeling.tuning import take_trials

    count = min(params.tune.workers or usable_cores(), len(trials))
    jobs = [(params, name, paths.train_array, url, trials, worker) for worker in range(count)]
    for restart in range(len(trials) + 1):
        try:
            with worker_pool(count) as pool:
                pool.map(take_trials, jobs, describe=lambda i: f"tune@{name}, trial worker {i}")
            return
        except WorkerDied as died:
            if restart == len(trials):
                raise
            print(f"{died}; its trial is run again", file=sys.stderr, flush=True)


def write_trial_table(path: Path, trials: list[TrialRow]) -> None:
    """The table of every trial (one row each, `TrialRow.row`) as CSV at `path`."""
    import pandas as pd

    write_csv(path, pd.DataFrame([trial.row for trial in trials]))


def trial_rows(all_trials: list) -> list[TrialRow]:
    """Every trial of the list's slots, whoever ran it, as the stage logs it (timings and hosts
    live in MLflow only, never in a DVC output)."""
    from lstm_vs_rnn.modeling.tuning import DIVERGED_ATTR, HOST_ATTR, SLOT_ATTR, WORKER_ATTR

    rows = []
    for trial in all_trials:
        if SLOT_ATTR not in trial.user_attrs:
            continue
        state = trial.state.name.lower()
        if trial.system_attrs.get("failed_trial") is not None:
            state += " (retry)"
        if trial.user_attrs.get(DIVERGED_ATTR):
            state += " (diverged)"
        tags = {
            "trial.state": state,
            "trial.host": str(trial.user_attrs.get(HOST_ATTR, "unknown")),
            "trial.worker": str(trial.user_attrs.get(WORKER_ATTR, "unknown")),
            "trial.slot": str(trial.user_attrs[SLOT_ATTR]),
            "trial.optuna_number": str(trial.number),
        }
        seconds = trial.duration.total_seconds() if trial.duration else None
        row = {
            "slot": trial.user_attrs[SLOT_ATTR],
            "optuna_number": trial.number,
            "state": state,
            "value": trial.value,
            "host": tags["trial.host"],
            "worker": tags["trial.worker"],
            "seconds": seconds,
            **trial.params,
        }
        curve = [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
        rows.append(TrialRow(trial.user_attrs[SLOT_ATTR], trial.params, curve, tags, row))
    return rows
