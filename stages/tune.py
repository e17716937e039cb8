"""Stage `tune@<model>`: choose the entry's settings on the validation tail, same budget for all.

For a tuned entry (see `modeling.tuning`): draws the `tune.n_trials` candidates, runs successive
halving over seeds in the Optuna study of this configuration (each rung enqueued once the
previous one is complete), starts one worker process per usable core (or `tune.workers`), and
waits until the final rung is complete, whichever machine ran its trials (`make tune-worker`
elsewhere joins through a shared storage). For an entry that does not tune,
the chosen settings are its listed ones, and the stage loads no torch, Optuna, training code or
MLflow (they are imported where the tuned path needs them) and logs no MLflow run. Writes
tuning/<model>.json; for a tuned entry, logs one nested MLflow run per configuration, the chosen
settings, how sure the choice is, the budget and a table of every training.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/tune.py lstm_tuned`.
"""

from __future__ import annotations

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.files import write_csv, write_json
from lstm_vs_rnn.modeling.chosen_settings import tuning_result
from lstm_vs_rnn.params import Params, load_params
from lstm_vs_rnn.paths import PATHS, PROJECT_ROOT
from lstm_vs_rnn.tracking.runs import StageRun, stage_run

if TYPE_CHECKING:
    import pandas as pd
    from optuna.storages import RDBStorage


def parse_model_name() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    return parser.parse_args().model


# How long the workers of a finished study get to exit by themselves (a worker still importing
# torch needs about 3 s to see that no trial is left).
FINISH_GRACE_SECONDS = 10.0


def worker_count(params: Params) -> int:
    """`tune.workers`, else every core this process may run on (each trial uses one thread)."""
    return params.tune.workers or len(os.sched_getaffinity(0))


class LocalWorkers:
    """Worker processes (`commands.tune_worker`) on this machine for one entry's study."""

    def __init__(self, entry: str, count: int) -> None:
        self.entry, self.count = entry, count
        self.processes: list[subprocess.Popen] = []

    def poll(self, trials_waiting: bool) -> None:
        """Raise if a worker failed (one killed by a signal did not: its trial is retried);
        start `count` workers when trials are waiting and none is running."""
        failed = [process.returncode for process in self.processes if (process.poll() or 0) > 0]
        if failed:
            raise UserError(f"tune@{self.entry}: a trial worker failed (exit {failed[0]})")
        if not trials_waiting or any(process.poll() is None for process in self.processes):
            return
        from lstm_vs_rnn.commands import tune_worker

        environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
        command = [sys.executable, "-m", tune_worker.__name__, "--entry", self.entry]
        self.processes = [
            subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment) for _ in range(self.count)
        ]

    def finish(self) -> None:
        """Every trial is complete: each worker sees the empty queue and exits by itself
        (stopping one still loading would print that it was interrupted); any left after
        `FINISH_GRACE_SECONDS` is stopped."""
        deadline = time.monotonic() + FINISH_GRACE_SECONDS
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        self.stop()

    def stop(self) -> None:
        """Stop every worker now (SIGTERM: a trial it was running is failed and run again)."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait()


def run_study(params: Params, name: str, storage: RDBStorage) -> tuple[dict, list, float]:
    """Every rung of the entry's plan complete; returns the successive-halving result, all
    trials of the study (retried and failed ones included) and the seconds it took."""
    from lstm_vs_rnn.modeling.halving import halving_result
    from lstm_vs_rnn.modeling.tuning import (
        candidate_list,
        create_study,
        evaluations,
        run_rungs,
        study_name,
        tuning_plan,
        tuning_seeds,
    )

    candidates = candidate_list(params, name)
    study = create_study(storage, study_name(params, name, PATHS.train_array))
    workers = LocalWorkers(name, worker_count(params))
    started = time.monotonic()
    try:
        done = run_rungs(study, candidates, params.tune, workers.poll)
    except BaseException:
        workers.stop()
        raise
    seconds = time.monotonic() - started
    workers.finish()
    plan, seeds = tuning_plan(params.tune), tuning_seeds(params.tune)
    result = halving_result(candidates, plan, seeds, evaluations(done))
    return result, study.get_trials(deepcopy=False), seconds


def log_trials(run: StageRun, name: str, result: dict, all_trials: list) -> pd.DataFrame:
    """One nested run per configuration and the table of every training (no timings in DVC
    outputs: hosts, durations and CPU seconds live in MLflow only)."""
    import pandas as pd

    from lstm_vs_rnn.modeling.tuning import configuration_runs, trial_rows

    for trial in configuration_runs(result, all_trials):
        run.log_trial_run(
            name, trial.position, trial.params, trial.val_loss_per_epoch, trial.tags, trial.metrics
        )
    return pd.DataFrame(trial_rows(all_trials))


def main() -> None:
    name = parse_model_name()
    params = load_params(PATHS.params)
    if name not in params.models:
        raise UserError(
            f"params.yaml: no model '{name}' under models (configured: {', '.join(params.models)})"
        )
    if name not in params.tuned_entries():
        # Nothing is tuned, so nothing is tracked: the listed settings are logged as `chosen.*`
        # with the entry's train@ run, and opening the store would cost this stage 2 s.
        write_json(PATHS.tuning_result(name), tuning_result(params, name))
        return
    prefixes = ("data.window", "train.", "tune.", f"models.{name}.")
    from lstm_vs_rnn.modeling.tuning import candidate_list, open_storage, storage_url

    candidate_list(params, name)
    storage = open_storage(storage_url(params), params.tune.heartbeat_seconds)
    with stage_run(f"tune@{name}", params, param_prefixes=prefixes) as run:
        halving, all_trials, seconds = run_study(params, name, storage)
        result = tuning_result(params, name, halving)
        table = log_trials(run, name, result, all_trials)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"trials_{name}.csv"
            write_csv(path, table)
            run.log_artifact(path, "tuning")
        run.log_params({f"chosen.{key}": value for key, value in result["chosen"].items()})
        run.log_metrics(tuning_metrics(result, table, seconds))
        write_json(PATHS.tuning_result(name), result)


def tuning_metrics(result: dict, table: pd.DataFrame, seconds: float) -> dict[str, float]:
    """The stage run's metrics: the winner's score, how sure the choice is, the budget in
    configurations, trainings and compute (CPU seconds of complete trainings: MLflow only)."""
    budget = result["budget"]
    sure = {
        key: result[key] for key in ("margin_se", "same_winner_fraction") if result[key] is not None
    }
    complete = table[table["state"].str.startswith("complete")]
    return {
        "best_val_loss": result["best_value"],
        **sure,
        "n_trials": budget["configurations"],
        "trainings": budget["trainings"],
        "optimizer_steps": budget["optimizer_steps"],
        "multiply_adds": budget["multiply_adds"],
        "cpu_seconds": float(complete["cpu_seconds"].sum()),
        "tune_seconds": seconds,
        "trainings_per_minute": 60 * budget["trainings"] / seconds,
    }


if __name__ == "__main__":
    run_entry_point(main)
