"""Stage `evaluate`: test metrics of every model and the baselines, in original units.

Writes reports/metrics.json (DVC metrics), reports/plots/predictions/<model>.csv (DVC plots)
and the comparison figures; logs every metric to its own run, to the configuration's parent
run and, per model, to the training run that produced the evaluated weights.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.checkpoints import load_model
from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.data import read_series
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation import forecast_metrics, persistence_forecast
from lstm_vs_rnn.files import read_array, read_numeric_csv, write_csv, write_json
from lstm_vs_rnn.params import Params, load_params, split_point
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.plots import (
    error_histogram_figure,
    loss_figure,
    predictions_figure,
    save_figure,
    scatter_figure,
)
from lstm_vs_rnn.scaling import MinMaxScaling
from lstm_vs_rnn.tracking import stage_run
from lstm_vs_rnn.training import configure_torch, predict
from lstm_vs_rnn.windows import make_windows, with_history

FIGURES = ("losses", "predictions", "errors", "scatter")
LOSS_COLUMNS = ("epoch", "train_loss", "val_loss")
# The keys dvc.yaml lists for this stage (the device and threads decide prediction numerics).
PARAMS_USED = ("data.window", "data.train_fraction", "train.device", "train.num_threads", "models.")


def predict_test(params: Params, device: torch.device) -> dict[str, np.ndarray]:
    """Each model's one-step predictions for the test part, in original units."""
    train = read_array(PATHS.train_array, "scale")
    test = read_array(PATHS.test_array, "scale")
    scaler = MinMaxScaling.from_json(PATHS.scaler_json)
    inputs = torch.from_numpy(with_history(train, test, params.data.window).astype(np.float32))
    windows, _ = make_windows(inputs, params.data.window)
    predictions = {}
    for name, settings in params.models.items():
        model = load_model(name, settings, PATHS.model_weights(name)).to(device)
        scaled = predict(model, windows, device).numpy().astype(np.float64)
        predictions[name] = scaler.inverse_transform(scaled)
    return predictions


def compute_metrics(
    series: pd.DataFrame, split: int, predictions: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Per model, plus the baselines: persistence, and the noise floor when sin(t) is known."""
    values = series["y"].to_numpy()
    train, actual = values[:split], values[split:]
    if any(len(predicted) != len(actual) for predicted in predictions.values()):
        raise UserError(
            f"{PATHS.test_array}: its length does not match {PATHS.series_csv}; "
            f"re-run the 'scale' stage"
        )
    metrics = {
        name: forecast_metrics(actual, predicted, train) for name, predicted in predictions.items()
    }
    metrics["persistence"] = forecast_metrics(
        actual, persistence_forecast(values, len(actual)), train
    )
    if "y_clean" in series:
        metrics["noise_floor"] = forecast_metrics(
            actual, series["y_clean"].to_numpy()[split:], train
        )
    return metrics


def write_reports(
    series: pd.DataFrame,
    split: int,
    predictions: dict[str, np.ndarray],
    metrics: dict[str, dict[str, float]],
    params: Params,
) -> None:
    t, actual = series["t"].to_numpy()[split:], series["y"].to_numpy()[split:]
    write_json(PATHS.metrics_json, metrics)
    for name, predicted in predictions.items():
        write_csv(
            PATHS.prediction_table(name),
            pd.DataFrame({"t": t, "actual": actual, "predicted": predicted}),
        )
    histories = {
        name: read_numeric_csv(PATHS.loss_history(name), LOSS_COLUMNS, f"train@{name}")
        for name in params.models
    }
    save_figure(loss_figure(histories), PATHS.figure("losses"))
    save_figure(predictions_figure(t, actual, predictions), PATHS.figure("predictions"))
    save_figure(error_histogram_figure(actual, predictions), PATHS.figure("errors"))
    save_figure(scatter_figure(actual, predictions), PATHS.figure("scatter"))


def main() -> None:
    params = load_params(PATHS.params)
    series = read_series(PATHS.series_csv)
    split = split_point(len(series), params.data.train_fraction)
    device = configure_torch(params.train)
    with stage_run("evaluate", params, param_prefixes=PARAMS_USED) as run:
        predictions = predict_test(params, device)
        metrics = compute_metrics(series, split, predictions)
        write_reports(series, split, predictions, metrics, params)
        flat = {
            f"{owner}.{metric}": value
            for owner, values in metrics.items()
            for metric, value in values.items()
        }
        run.log_metrics(flat)
        run.log_to_parent(flat)
        for name in params.models:
            run.log_to_training_run(PATHS.model_weights(name), metrics[name])
        for figure in FIGURES:
            run.log_figure(PATHS.figure(figure))
        run.log_artifact(PATHS.metrics_json, "metrics")


if __name__ == "__main__":
    run_entry_point(main)
