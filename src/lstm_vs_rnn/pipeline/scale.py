"""The `scale` stage's work: each rolling-origin fold's chronological split, and min-max
scaling fitted on that fold's training part only (no information from its scored block, or
anything after it, reaches its models)."""

import numpy as np

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import check_learnable, read_series
from lstm_vs_rnn.files import write_array, write_text
from lstm_vs_rnn.params import Params, fold_bounds
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.reporting.figures import save_figure, scaling_figure
from lstm_vs_rnn.stage_result import StageResult

# The params keys the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both).
PARAMS = ("data.train_fraction", "evaluate.folds")


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
    """For each fold of `evaluate.folds`, split `series` (`read_checked`) at the fold's origin
    and write data/processed/fold_<k>/{train,test}.npy (the training part and the scored
    block, scaled by a scaler fitted on the training part, float64) and the scaler's
    parameters as JSON (no pickle); draw fold 0's split to reports/figures/scaling.png.
    Returns each fold's scaler range and part sizes (fold 0's unprefixed, as before folds)."""
    metrics: dict[str, float] = {}
    for fold in sorted(params.evaluate.folds):
        fold_paths = paths.for_fold(fold)
        origin, end = fold_bounds(len(series), params.data.train_fraction, fold)
        train, test = series[:origin], series[origin:end]
        scaler = MinMaxScaling.fit(train)
        scaled_train, scaled_test = scaler.transform(train), scaler.transform(test)
        write_array(fold_paths.train_array, scaled_train)
        write_array(fold_paths.test_array, scaled_test)
        write_text(fold_paths.scaler_json, scaler.to_json())
        if fold == 0:
            figure = scaling_figure(train, test, scaled_train, scaled_test)
            save_figure(figure, paths.figure("scaling"))
        prefix = "" if fold == 0 else f"fold_{fold}."
        metrics.update(
            {
                f"{prefix}data_min": scaler.data_min,
                f"{prefix}data_max": scaler.data_max,
                f"{prefix}n_train": len(train),
                f"{prefix}n_test": len(test),
                f"{prefix}test_scaled_min": float(scaled_test.min()),
                f"{prefix}test_scaled_max": float(scaled_test.max()),
            }
        )
    return StageResult(
        metrics=metrics,
        figures=[paths.figure("scaling")],
        artifacts=[
            (paths.for_fold(fold).scaler_json, f"scaler/fold_{fold}")
            for fold in sorted(params.evaluate.folds)
        ],
    )
