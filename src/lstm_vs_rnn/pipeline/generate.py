"""The `generate` stage's work: the series `data.source` names (a noisy sine, a lagged series or
a column of the user's CSV), written to data/raw/series.csv, and its figure."""

import pandas as pd

from lstm_vs_rnn.data.sources import series_labels
from lstm_vs_rnn.files import write_csv
from lstm_vs_rnn.params import Params, split_point
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.reporting.figures import save_figure, series_figure
from lstm_vs_rnn.stage_result import StageResult

# The params keys the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both
# agree): the source's own keys, and the split and window that a CSV's length is checked against.
PARAMS = ("data",)


def run(params: Params, paths: ProjectPaths, frame: pd.DataFrame) -> StageResult:
    """Write `frame`, the series `data.sources.load_series` read or made (columns t, y, and
    y_clean where the clean signal is known), to data/raw/series.csv, draw
    reports/figures/series.png, and return the series' size and spread. The stage loads the
    series first, so that a CSV the pipeline cannot use stops it before MLflow is touched.
    """
    split = split_point(len(frame), params.data.train_fraction)
    write_csv(paths.series_csv, frame)
    save_figure(
        series_figure(frame, split, series_labels(params.data, frame)), paths.figure("series")
    )
    return StageResult(
        metrics={
            "n_points": len(frame),
            "n_train": split,
            "n_test": len(frame) - split,
            "y_std": float(frame["y"].std()),
        },
        figures=[paths.figure("series")],
    )
