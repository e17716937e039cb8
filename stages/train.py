"""Stage `train@<model>`: fit one forecaster `train.repeats` times on the scaled training windows
(work: `lstm_vs_rnn.pipeline.train`).

Writes models/<model>/repeat_<i>.pt (state_dicts), reports/plots/losses/<model>.csv and
reports/figures/loss_<model>.png; logs one MLflow run per repeat under the stage's run, fed its
losses as it trains, and, as the model `<model>` forecasting in the series' units, the repeat
whose saved (final-epoch) weights have the lowest validation loss, registered as a version of
the registered model `<experiment>.<model>` (tracking.registry). A terminal shows one live
progress line, a log one line per repeat.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/train.py lstm`.

Only the entry-point plumbing is imported at the top: repeats train on spawned worker
processes, which import this script again, and should load only what a repeat needs.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse

from lstm_vs_rnn.entry_point import run_entry_point


def parse_model_name() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    return parser.parse_args().model


def main() -> None:
    from lstm_vs_rnn.errors import UserError
    from lstm_vs_rnn.params import load_params
    from lstm_vs_rnn.paths import PATHS
    from lstm_vs_rnn.pipeline import train
    from lstm_vs_rnn.tracking.registry import register_forecaster
    from lstm_vs_rnn.tracking.repeat_runs import RepeatRuns
    from lstm_vs_rnn.tracking.runs import stage_run

    name = parse_model_name()
    params = load_params(PATHS.params)
    if name not in params.models:
        raise UserError(
            f"params.yaml: no model '{name}' under models (configured: {', '.join(params.models)})"
        )
    with stage_run(f"train@{name}", params, train.PARAMS) as run:
        repeats = RepeatRuns(run, name)
        try:
            result = train.run(params, PATHS, name, repeats)
        except BaseException as error:
            repeats.end_unfinished(error)
            raise
        run.log_result(result.logged)
        best = result.best
        model_id = run.log_forecaster(name, best.files, best.spec, best.input_example, best.tags)
        register_forecaster(run, name, model_id, best.files.weights)
        run.set_tags({f"logged_model.{key}": best.tags[key] for key in ("repeat", "seed")})


if __name__ == "__main__":
    run_entry_point(main)
