"""The `scale` stage's work: the chronological split, and min-max scaling fitted on the
training part only (no information from the test part reaches the models)."""

import numpy as np

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import check_learnable, read_series
from lstm_vs_rnn.files import write_array, write_text
from lstm_vs_rnn.params import Params, split_point
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.reporting.figures import save_figure, scaling_figure
from lstm_vs_rnn.stage_result import StageResult

# The params keys the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both).
PARAMS = ("data.train_fraction",)


def read_checked(params: Params, paths: ProjectPaths) -> np.ndarray:
    """The values of data/raw/series.csv, once checked that the models can learn from them
    (the stage reads them before it opens its MLflow run).

    Raises UserError when the file is missing or unreadable, or the series (or its training
    part) is flat (`data.sources.check_learnable`).
    """
    series = read_series(paths.series_csv)["y"].to_numpy()
    check_learnable(series, params, paths.series_csv.relative_to(paths.root).as_posix(), "y")
    return series


def run(params: Params, paths: ProjectPaths, series: np.ndarray) -> StageResult:
    """Split `series` (`read_checked`), write data/processed/{train,test}.npy (scaled,
    float64), the scaler's parameters as JSON (no pickle) and reports/figures/scaling.png;
    return the scaler's range and the parts' sizes."""
    split = split_point(len(series), params.data.train_fraction)
    train, test = series[:split], series[split:]
    scaler = MinMaxScaling.fit(train)
    scaled_train, scaled_test = scaler.transform(train), scaler.transform(test)
    write_array(paths.train_array, scaled_train)
    write_array(paths.test_array, scaled_test)
    write_text(paths.scaler_json, scaler.to_json())
    save_figure(scaling_figure(train, test, scaled_train, scaled_test), paths.figure("scaling"))
    return StageResult(
        metrics={
            "data_min": scaler.data_min,
            "data_max": scaler.data_max,
            "n_train": len(train),
            "n_test": len(test),
            "test_scaled_min": float(scaled_test.min()),
            "test_scaled_max": float(scaled_test.max()),
        },
        figures=[paths.figure("scaling")],
        artifacts=[(paths.scaler_json, "scaler")],
    )
