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

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse

from lstm_vs_rnn.entry_point import run_entry_point

STAGE = "train"


def parse_entry_and_fold() -> tuple[str, int]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    parser.add_argument("fold", type=int, help="a fold number of `evaluate.folds`")
    arguments = parser.parse_args()
    return arguments.model, arguments.fold


def main() -> None:
    from lstm_vs_rnn.params import check_entry_and_fold, load_params
    from lstm_vs_rnn.paths import PATHS
    from lstm_vs_rnn.pipeline import train
    from lstm_vs_rnn.stage_names import entry_stage
    from lstm_vs_rnn.tracking.registry import register_forecaster
    from lstm_vs_rnn.tracking.repeat_runs import RepeatRuns
    from lstm_vs_rnn.tracking.runs import stage_run

    name, fold = parse_entry_and_fold()
    params = load_params(PATHS.params)
    check_entry_and_fold(params, name, fold)
    paths, stage = PATHS.for_fold(fold), entry_stage(STAGE, name, fold)
    with stage_run(stage, params, train.PARAMS) as run:
        repeats = RepeatRuns(run, name)
        try:
            result = train.run(params, paths, name, repeats)
        except BaseException as error:
            repeats.end_unfinished(error)
            raise
        run.log_result(result.logged)
        best = result.best
        model_id = run.log_forecaster(name, best.files, best.spec, best.input_example, best.tags)
        if fold == 0:
            register_forecaster(run, name, model_id, best.files.weights)
        run.set_tags({f"logged_model.{key}": best.tags[key] for key in ("repeat", "seed")})


if __name__ == "__main__":
    run_entry_point(main)
