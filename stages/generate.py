"""Stage `generate`: the series `data.source` names (a noisy sine, a lagged series or a column
of the user's CSV), written to data/raw/series.csv.

Run by `dvc repro`; directly: `PYTHONPATH=src python stages/generate.py`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.data.sources import load_series, series_labels
from lstm_vs_rnn.files import write_csv
from lstm_vs_rnn.params import load_params, split_point
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.reporting.figures import save_figure, series_figure
from lstm_vs_rnn.tracking.runs import stage_run

# The keys dvc.yaml lists for this stage: the source's own, and the split and window that a
# CSV's length is checked against.
PARAMS_USED = ("data.",)


def main() -> None:
    params = load_params(PATHS.params)
    frame = load_series(params, PATHS.root)  # a bad CSV stops here, before MLflow is touched
    with stage_run("generate", params, param_prefixes=PARAMS_USED) as run:
        split = split_point(len(frame), params.data.train_fraction)
        write_csv(PATHS.series_csv, frame)
        save_figure(
            series_figure(frame, split, series_labels(params.data, frame)), PATHS.figure("series")
        )
        run.log_metrics(
            {
                "n_points": len(frame),
                "n_train": split,
                "n_test": len(frame) - split,
                "y_std": float(frame["y"].std()),
            }
        )
        run.log_figure(PATHS.figure("series"))


if __name__ == "__main__":
    run_entry_point(main)
