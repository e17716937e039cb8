"""The `tune@<entry>-<fold>` stage's work: choose the entry's settings on the validation tail
of fold k's training part, with the same candidates and the same budget for every entry.

For a tuned entry (see `modeling.tuning`): draws the `tune.n_trials` candidates (the first is
the shared setting), runs successive halving over seeds in the Optuna study of this
configuration (each rung enqueued once the previous one is complete) on the worker pool
(`lstm_vs_rnn.workers`, as training's repeats: one process per usable core, or `tune.workers`),
and ends when the final rung is complete, whichever machine ran its trials (`make tune-worker`
elsewhere joins through a shared storage). For an entry that does not tune, the chosen settings
are its listed ones, and nothing heavier than the params is loaded (torch and Optuna are
imported where the tuned path needs them). Writes tuning/fold_<k>/<entry>.json.
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
from lstm_vs_rnn.stage_names import entry_stage
from lstm_vs_rnn.workers import WorkerDied, worker_pool

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

    from lstm_vs_rnn.modeling.tuning import ConfigurationRun

# The params keys the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both;
# `{entry}` is the stage's entry, dvc.yaml's `${key}`): what a trial's score depends on
# (modeling.tuning.study_name), not who runs it. A trial worker trains on one thread, so
# `train.num_threads` is not among them.
PARAMS = (
    "data.window",
    "train.epochs",
    "train.batch_size",
    "train.learning_rate",
    "train.val_fraction",
    "train.grad_clip_norm",
    "tune.n_trials",
    "tune.seed",
    "tune.first_seeds",
    "tune.halving",
    "tune.final_seeds",
    "tune.sampler_seed",
    "tune.space",
    "models.{entry}",
)


@dataclass(frozen=True)
class TuneResult:
    """A tuned entry's study: the written result (tuning/fold_<k>/<entry>.json), one record per
    configuration for its nested run, one row per training (retried and failed ones included)
    and the seconds the rungs took."""

    result: dict[str, Any]
    configurations: list[ConfigurationRun]
    trainings: list[dict[str, Any]]
    seconds: float


def write_listed(params: Params, paths: ProjectPaths, name: str) -> None:
    """tuning/fold_<k>/<name>.json of an entry that does not tune: its listed settings, no trial."""
    write_json(paths.tuning_result(name), tuning_result(params, name))


def open_study_storage(params: Params, name: str) -> RDBStorage:
    """The study storage, once entry `name`'s candidates are checked: the stage calls this
    before it opens its MLflow run, so a bad search space or storage touches no run.

    Raises UserError for a search space that does not fit the entry (or does not hold its
    shared setting) or a storage that cannot be opened.
    """
    from lstm_vs_rnn.modeling.tuning import candidate_list, open_storage, storage_url

    candidate_list(params, name)
    return open_storage(storage_url(params), params.tune.heartbeat_seconds)


def run(params: Params, paths: ProjectPaths, name: str, storage: RDBStorage) -> TuneResult:
    """Run every rung of entry `name`'s plan in `storage` and write tuning/fold_<k>/<name>.json.

    Raises UserError for a failed trial worker, a study in which every trial diverged, or
    anything the study storage refuses while the trials run (one line: its own cause).
    """
    from lstm_vs_rnn.modeling.halving import halving_result
    from lstm_vs_rnn.modeling.tuning import (
        candidate_list,
        configuration_runs,
        create_study,
        storage_refusals_explained,
        study_name,
        trial_rows,
        tuning_plan,
        tuning_seeds,
    )

    candidates = candidate_list(params, name)
    study = create_study(storage, study_name(params, name, paths.train_array))
    started = time.monotonic()
    with storage_refusals_explained(storage.url):
        evaluations = run_rungs_on_workers(params, paths, name, storage.url)
    seconds = time.monotonic() - started
    plan, seeds = tuning_plan(params.tune), tuning_seeds(params.tune)
    result = tuning_result(params, name, halving_result(candidates, plan, seeds, evaluations))
    write_json(paths.tuning_result(name), result)
    trials = study.get_trials(deepcopy=False)
    return TuneResult(result, configuration_runs(result, trials), trial_rows(trials), seconds)


def run_rungs_on_workers(
    params: Params, paths: ProjectPaths, name: str, url: str
) -> dict[tuple[int, int], Any]:
    """Every rung of the plan on `tune.workers` processes of the worker pool (default: one per
    usable core; with one, in this process): worker 0 enqueues the rungs and promotes, every
    worker runs trials. Returns each training's evaluation by (position, seed).

    A worker killed outright (SIGKILL, out of memory) loses nothing: its trial stops beating,
    is failed and run again (`modeling.tuning`), and the pool is started anew, at most
    `tune.n_trials` times. Raises the first error a worker's job raised, or
    `workers.WorkerDied` once the restarts are spent."""
    from lstm_vs_rnn.modeling.tuning import take_trials

    count = params.tune.workers or usable_cores()
    jobs = [(params, name, paths.train_array, url, worker) for worker in range(count)]
    for restart in range(params.tune.n_trials + 1):
        try:
            with worker_pool(count) as pool:
                results = pool.map(
                    take_trials,
                    jobs,
                    describe=lambda i: f"{entry_stage('tune', name, paths.fold)}, trial worker {i}",
                )
            return results[0]
        except WorkerDied as died:
            if restart == params.tune.n_trials:
                raise
            print(f"{died}; its trial is run again", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def write_trial_table(path: Path, trainings: list[dict[str, Any]]) -> None:
    """The table of every training of the study (one row each) as CSV at `path`."""
    import pandas as pd

    write_csv(path, pd.DataFrame(trainings))


def tuning_metrics(tuned: TuneResult) -> dict[str, float]:
    """The stage run's metrics: the winner's score, how sure the choice is, the budget in
    configurations, trainings and compute (CPU seconds of complete trainings: MLflow only)."""
    result, budget = tuned.result, tuned.result["budget"]
    sure = {
        key: result[key] for key in ("margin_se", "same_winner_fraction") if result[key] is not None
    }
    cpu = sum(
        row["cpu_seconds"] or 0.0
        for row in tuned.trainings
        if str(row["state"]).startswith("complete")
    )
    return {
        "best_val_loss": result["best_value"],
        **sure,
        "n_trials": budget["configurations"],
        "trainings": budget["trainings"],
        "optimizer_steps": budget["optimizer_steps"],
        "multiply_adds": budget["multiply_adds"],
        "cpu_seconds": float(cpu),
        "tune_seconds": tuned.seconds,
        "trainings_per_minute": 60 * budget["trainings"] / tuned.seconds,
    }
