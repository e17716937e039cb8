"""Stage `train@<model>-<fold>`: fit one forecaster `train.repeats` times on the scaled training
windows of one rolling-origin fold (work: `lstm_vs_rnn.pipeline.train`).

Writes models/fold_<k>/<model>/repeat_<i>.pt (state_dicts),
reports/plots/losses/fold_<k>/<model>.csv and reports/figures/fold_<k>/loss_<model>.png; logs
one MLflow run per repeat under the stage's run, fed its losses as it trains, and, as the model
`<model>` forecasting in the series' units, the repeat whose saved (final-epoch) weights have
the lowest validation loss; fold 0's (trained on the most data) is registered as a version of
the registered model `<experiment>.<model>` (tracking.registry). A terminal shows one live
progress line, a log one line per repeat.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/train.py lstm 0`.

Only the entry-point plumbing is imported at the top: repeats train on spawned worker
processes, which import this script again, and should load only what a repeat needs.
"""

from __future__ import annotations

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse
from typing import TYPE_CHECKING

from lstm_vs_rnn.entry_point import run_entry_point

if TYPE_CHECKING:
    from lstm_vs_rnn.params import Params
    from lstm_vs_rnn.paths import ProjectPaths
    from lstm_vs_rnn.workers import InProcessPool, WorkerPool

STAGE = "train"
# What the repeats' workers import before their first job, while this process imports MLflow
# and opens its run: the job's module, and torch._dynamo, which torch.optim imports at its
# first step (1.0-1.3 s).
WORKER_PRELOAD = ("lstm_vs_rnn.modeling.repeats", "torch._dynamo")


def parse_entry_and_fold() -> tuple[str, int]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    parser.add_argument("fold", type=int, help="a fold number of `evaluate.folds`")
    arguments = parser.parse_args()
    return arguments.model, arguments.fold


def main() -> None:
    from lstm_vs_rnn.params import check_entry_and_fold, load_params
    from lstm_vs_rnn.paths import PATHS
    from lstm_vs_rnn.processes import workers_for
    from lstm_vs_rnn.workers import worker_pool

    name, fold = parse_entry_and_fold()
    params = load_params(PATHS.params)
    check_entry_and_fold(params, name, fold)
    with worker_pool(
        workers_for(params.train.workers, params.train.repeats), preload=WORKER_PRELOAD
    ) as pool:
        train_and_log(params, PATHS.for_fold(fold), name, pool)


def train_and_log(
    params: Params, paths: ProjectPaths, name: str, pool: WorkerPool | InProcessPool
) -> None:
    """The stage's run: its work on `pool`, whose workers are already starting, and its
    records (imported here, after the workers were started)."""
    from lstm_vs_rnn.pipeline import train
    from lstm_vs_rnn.stage_names import entry_stage
    from lstm_vs_rnn.tracking.registry import register_forecaster
    from lstm_vs_rnn.tracking.repeat_runs import RepeatRuns
    from lstm_vs_rnn.tracking.runs import stage_run

    fold = paths.fold
    with stage_run(entry_stage(STAGE, name, fold), params, train.PARAMS) as run:
        repeats = RepeatRuns(run, name)
        try:
            result = train.run(params, paths, name, repeats, pool)
        except BaseException as error:
            repeats.end_unfinished(error)
            raise
        pool.close()  # the workers end now, not at the stage's exit (see WorkerPool._release)
        run.log_result(result.logged)
        best = result.best
        model_id = run.log_forecaster(name, best.files, best.spec, best.input_example, best.tags)
        if fold == 0:
            register_forecaster(run, name, model_id, best.files.weights)
        run.set_tags({f"logged_model.{key}": best.tags[key] for key in ("repeat", "seed")})


if __name__ == "__main__":
    run_entry_point(main)
