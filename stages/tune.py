"""Stage `tune@<model>`: choose the entry's settings on the validation tail, same budget for all.

For a tuned entry (see `modeling.tuning`): draws the `tune.n_trials` trial list, enqueues it in
the Optuna study of this configuration, starts one worker process per usable core (or
`tune.workers`), and waits until every trial of the list is complete, whichever machine ran it
(`make tune-worker` elsewhere joins through a shared storage). For an entry that does not tune,
the chosen settings are its listed ones, and the stage loads no torch, Optuna, training code or
MLflow (they are imported where the tuned path needs them) and logs no MLflow run. Writes
tuning/<model>.json; for a tuned entry, logs one nested MLflow run per trial, the chosen
settings and a table of the trials.
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
        command.append(tune_worker.FOR_STAGE)
        self.processes = [
            subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment) for _ in range(self.count)
        ]

    def finish(self) -> None:
        """Every trial is complete: each worker sees the empty queue and exits by itself;
        any left after `FINISH_GRACE_SECONDS` (one still loading torch) is stopped."""
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


def run_study(params: Params, name: str, storage: RDBStorage) -> tuple[list[dict], list, float]:
    """Every trial of the entry's list complete; returns their records, all trials of the study
    (retried and failed ones included) and the seconds it took."""
    from lstm_vs_rnn.modeling.tuning import (
        create_study,
        search_space,
        study_name,
        trial_list,
        trial_record,
        wait_until_done,
    )

    space = search_space(params, name)
    trials = trial_list(space, params.tune.n_trials, params.tune.sampler_seed)
    study = create_study(storage, study_name(params, name, PATHS.train_array), trials)
    workers = LocalWorkers(name, worker_count(params))
    started = time.monotonic()
    try:
        done = wait_until_done(study, trials, workers.poll)
    except BaseException:
        workers.stop()
        raise
    seconds = time.monotonic() - started
    workers.finish()
    records = [trial_record(slot, done[slot]) for slot in sorted(done)]
    return records, study.get_trials(deepcopy=False), seconds


def log_trials(run: StageRun, name: str, all_trials: list) -> pd.DataFrame:
    """One nested run per trial of the study and the table of them all (no timings in DVC
    outputs: hosts and durations live in MLflow only)."""
    import pandas as pd

    from lstm_vs_rnn.modeling.tuning import (
        DIVERGED_ATTR,
        HOST_ATTR,
        INTERRUPTED_ATTR,
        SLOT_ATTR,
        WORKER_ATTR,
    )

    rows = []
    for trial in all_trials:
        if SLOT_ATTR not in trial.user_attrs:
            continue
        state = trial.state.name.lower()
        if trial.system_attrs.get("failed_trial") is not None:
            state += " (retry)"
        if trial.user_attrs.get(DIVERGED_ATTR):
            state += " (diverged)"
        if trial.user_attrs.get(INTERRUPTED_ATTR):
            state += " (interrupted)"
        curve = [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
        tags = {
            "trial.state": state,
            "trial.host": str(trial.user_attrs.get(HOST_ATTR, "unknown")),
            "trial.worker": str(trial.user_attrs.get(WORKER_ATTR, "unknown")),
            "trial.slot": str(trial.user_attrs[SLOT_ATTR]),
            "trial.optuna_number": str(trial.number),
        }
        run.log_trial_run(name, trial.user_attrs[SLOT_ATTR], trial.params, curve, tags)
        seconds = trial.duration.total_seconds() if trial.duration else None
        rows.append(
            {
                "slot": trial.user_attrs[SLOT_ATTR],
                "optuna_number": trial.number,
                "state": state,
                "value": trial.value,
                "host": tags["trial.host"],
                "worker": tags["trial.worker"],
                "seconds": seconds,
                **trial.params,
            }
        )
    return pd.DataFrame(rows)


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
        write_json(PATHS.tuning_result(name), tuning_result(params, name, []))
        return
    prefixes = ("data.window", "train.", "tune.", f"models.{name}.")
    from lstm_vs_rnn.modeling.tuning import (
        open_storage,
        search_space,
        storage_refusals_explained,
        storage_url,
    )

    search_space(params, name)
    storage = open_storage(storage_url(params), params.tune.heartbeat_seconds)
    with stage_run(f"tune@{name}", params, param_prefixes=prefixes) as run:
        with storage_refusals_explained(storage_url(params)):
            records, all_trials, seconds = run_study(params, name, storage)
        result = tuning_result(params, name, records)
        table = log_trials(run, name, all_trials)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"trials_{name}.csv"
            write_csv(path, table)
            run.log_artifact(path, "tuning")
        run.log_params({f"chosen.{key}": value for key, value in result["chosen"].items()})
        run.log_metrics(
            {
                "best_val_loss": result["best_value"],
                "n_trials": len(records),
                "tune_seconds": seconds,
                "trials_per_minute": 60 * len(records) / seconds,
            }
        )
        write_json(PATHS.tuning_result(name), result)


if __name__ == "__main__":
    run_entry_point(
        main,
        on_interrupt=(
            "interrupted: the running trials were failed (marked interrupted) and the MLflow run "
            "KILLED; 'dvc repro' resumes the study"
        ),
    )
