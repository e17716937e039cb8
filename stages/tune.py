"""Stage `tune@<model>-<fold>`: choose the entry's settings on the validation tail of one
rolling-origin fold's training part, with the same candidates and budget for every entry
(work: `lstm_vs_rnn.pipeline.tune`).

Writes tuning/fold_<k>/<model>.json. For a tuned entry, logs one nested MLflow run per
configuration, the chosen settings, how sure the choice is, the budget and a table of every
training; an entry that does not tune writes its listed settings and opens no MLflow run (they
are logged as `chosen.*` with its train@ run), so the stage loads neither torch, Optuna nor MLflow.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/tune.py lstm_tuned 0`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse
import tempfile
from pathlib import Path

from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.params import check_entry_and_fold, load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.pipeline import tune
from lstm_vs_rnn.stage_names import entry_stage

STAGE = "tune"


def parse_entry_and_fold() -> tuple[str, int]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    parser.add_argument("fold", type=int, help="a fold number of `evaluate.folds`")
    arguments = parser.parse_args()
    return arguments.model, arguments.fold


def main() -> None:
    name, fold = parse_entry_and_fold()
    params = load_params(PATHS.params)
    check_entry_and_fold(params, name, fold)
    paths, stage = PATHS.for_fold(fold), entry_stage(STAGE, name, fold)
    if name not in params.tuned_entries():
        tune.write_listed(params, paths, name)
        return
    from lstm_vs_rnn.tracking.runs import stage_run

    storage = tune.open_study_storage(params, name)
    with stage_run(stage, params, tune.PARAMS) as run:
        tuned = tune.run(params, paths, name, storage)
        for configuration in tuned.configurations:
            run.log_trial_run(
                name,
                configuration.position,
                configuration.params,
                configuration.val_loss_per_epoch,
                configuration.tags,
                configuration.metrics,
            )
        with tempfile.TemporaryDirectory() as folder:
            table = Path(folder) / f"trials_{name}.csv"
            tune.write_trial_table(table, tuned.trainings)
            run.log_artifact(table, "tuning")
        run.log_params({f"chosen.{key}": value for key, value in tuned.result["chosen"].items()})
        run.log_metrics(tune.tuning_metrics(tuned))


if __name__ == "__main__":
    run_entry_point(
        main,
        on_interrupt=(
            "interrupted: the running trials were failed (marked interrupted) and the MLflow run "
            "KILLED; 'dvc repro' resumes the study"
        ),
    )
