"""`make tune-worker`: take trials of the running tuning studies until they are finished.

Run it in a clone on any machine that reaches the team's study storage (OPTUNA_STORAGE, or
`tune.storage` in params.yaml), with the same params, code and data as the machine running
`dvc repro` (run `dvc repro scale` first: the worker reads each fold's scaled training part,
and takes the trials of every fold's study, fold by fold). Study names
derive from that configuration, so a worker of another configuration finds no study and waits.
The tune stage starts these workers itself, one per usable core, for its own entry. A worker
keeps taking trials rung after rung until the stage marks the study finished (or nothing has
been waiting or running for a minute: the stage is gone).

Usage: python -m lstm_vs_rnn.commands.tune_worker [--entry NAME ...] [--wait SECONDS]

Ctrl-C or SIGTERM fails the trial it is running, marked with the user attribute `interrupted`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse
import signal
import sys
import time

import optuna
import torch

from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.modeling.tuning import (
    load_study,
    objective,
    open_storage,
    storage_refusals_explained,
    storage_url,
    study_name,
    training_data,
    work,
)
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.stage_names import entry_stage

FOR_STAGE = "--for-stage"
INTERRUPTED = (
    "tune worker interrupted: a trial it was running is failed (marked interrupted) and run "
    "again by another worker"
)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", action="append", help="a tuned model entry (default: all)")
    parser.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for a study to be created"
    )
    parser.add_argument(
        FOR_STAGE,
        action="store_true",
        help="started by the tune stage, which alone takes Ctrl-C and then stops this worker "
        "(quietly: the stage says it was interrupted)",
    )
    return parser.parse_args()


def wait_for_study(storage: optuna.storages.RDBStorage, name: str, seconds: float) -> bool:
    """True once study `name` exists; False after `seconds` without it."""
    deadline = time.monotonic() + seconds
    while True:
        if name in {summary.study_name for summary in optuna.get_all_study_summaries(storage)}:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def main() -> None:
    arguments = parse_arguments()
    if arguments.for_stage:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    params = load_params(PATHS.params)
    torch.set_num_threads(1)
    entries = arguments.entry or params.tuned_entries()
    unknown = sorted(set(entries) - set(params.tuned_entries()))
    if unknown:
        raise UserError(
            f"--entry {', '.join(unknown)}: not a tuned entry (tuned: "
            f"{', '.join(params.tuned_entries()) or 'none'})"
        )
    storage = open_storage(storage_url(params), params.tune.heartbeat_seconds)
    for fold in sorted(params.evaluate.folds):
        train_array = PATHS.for_fold(fold).train_array
        data = training_data(params, train_array)
        for entry in entries:
            stage = entry_stage("tune", entry, fold)
            name = study_name(params, entry, train_array)
            if not wait_for_study(storage, name, arguments.wait):
                print(f"{stage}: no study {name} in the storage; nothing to do")
                continue
            with storage_refusals_explained(storage_url(params)):
                ran = work(load_study(storage, name), objective(params, entry, data))
            print(f"{stage}: ran {ran} trial(s) of study {name}")


if __name__ == "__main__":
    run_entry_point(main, on_interrupt="" if FOR_STAGE in sys.argv else INTERRUPTED)
