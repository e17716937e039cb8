"""The whole pipeline's work in one process, without DVC or MLflow: the reference cost.

Same library functions, files and figures as the four stages, in the same order, reading back
what the previous step wrote, as the stages do; only the tracking, the per-stage interpreters
and DVC's bookkeeping are missing. Usage: `python untracked_pipeline.py PARAMS_YAML OUT_DIR`
with PYTHONPATH pointing at the project's src.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.checkpoints import load_model, save_weights
from lstm_vs_rnn.data import generate_series, read_series
from lstm_vs_rnn.evaluation import forecast_metrics, persistence_forecast
from lstm_vs_rnn.files import read_array, write_array, write_csv, write_json, write_text
from lstm_vs_rnn.models import build_model
from lstm_vs_rnn.params import Params, load_params, split_point
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.plots import (
    error_histogram_figure,
    loss_figure,
    predictions_figure,
    save_figure,
    scaling_figure,
    scatter_figure,
    series_figure,
)
from lstm_vs_rnn.scaling import MinMaxScaling
from lstm_vs_rnn.training import configure_torch, predict, train_model
from lstm_vs_rnn.windows import make_windows, with_history


def generate(params: Params, paths: ProjectPaths) -> None:
    frame = generate_series(params.data)
    write_csv(paths.series_csv, frame)
    split = split_point(len(frame), params.data.train_fraction)
    save_figure(series_figure(frame, split), paths.figure("series"))


def scale(params: Params, paths: ProjectPaths) -> None:
    series = read_series(paths.series_csv)["y"].to_numpy()
    split = split_point(len(series), params.data.train_fraction)
    train, test = series[:split], series[split:]
    scaler = MinMaxScaling.fit(train)
    scaled_train, scaled_test = scaler.transform(train), scaler.transform(test)
    write_array(paths.train_array, scaled_train)
    write_array(paths.test_array, scaled_test)
    write_text(paths.scaler_json, scaler.to_json())
    save_figure(scaling_figure(train, test, scaled_train, scaled_test), paths.figure("scaling"))


def train(name: str, params: Params, paths: ProjectPaths, device: torch.device) -> None:
    series = torch.from_numpy(read_array(paths.train_array, "scale").astype(np.float32))
    windows, targets = make_windows(series, params.data.window)
    torch.manual_seed(params.train.seed)  # each stage is a fresh process, seeded once
    model = build_model(name, params.models[name])
    history = train_model(model, windows, targets, params.n_val_windows, params.train, device)
    model.cpu().eval()
    save_weights(model, paths.model_weights(name))
    frame = pd.DataFrame([vars(epoch) for epoch in history])
    write_csv(paths.loss_history(name), frame)
    save_figure(loss_figure({name: frame}), paths.figure(f"loss_{name}"))


def evaluate(params: Params, paths: ProjectPaths, device: torch.device) -> None:
    series = read_series(paths.series_csv)
    split = split_point(len(series), params.data.train_fraction)
    scaler = MinMaxScaling.from_json(paths.scaler_json)
    history = read_array(paths.train_array, "scale")
    test = read_array(paths.test_array, "scale")
    inputs = torch.from_numpy(with_history(history, test, params.data.window).astype(np.float32))
    windows, _ = make_windows(inputs, params.data.window)
    values = series["y"].to_numpy()
    t, actual = series["t"].to_numpy()[split:], values[split:]
    predictions, metrics = {}, {}
    for name, settings in params.models.items():
        model = load_model(name, settings, paths.model_weights(name)).to(device)
        scaled = predict(model, windows, device).numpy().astype(np.float64)
        predictions[name] = scaler.inverse_transform(scaled)
        metrics[name] = forecast_metrics(actual, predictions[name], values[:split])
    metrics["persistence"] = forecast_metrics(
        actual, persistence_forecast(values, len(actual)), values[:split]
    )
    metrics["noise_floor"] = forecast_metrics(
        actual, series["y_clean"].to_numpy()[split:], values[:split]
    )
    write_json(paths.metrics_json, metrics)
    for name, predicted in predictions.items():
        table = pd.DataFrame({"t": t, "actual": actual, "predicted": predicted})
        write_csv(paths.prediction_table(name), table)
    histories = {name: pd.read_csv(paths.loss_history(name)) for name in params.models}
    save_figure(loss_figure(histories), paths.figure("losses"))
    save_figure(predictions_figure(t, actual, predictions), paths.figure("predictions"))
    save_figure(error_histogram_figure(actual, predictions), paths.figure("errors"))
    save_figure(scatter_figure(actual, predictions), paths.figure("scatter"))


def main(params_file: Path, out: Path) -> None:
    params = load_params(params_file)
    paths = ProjectPaths(out)
    generate(params, paths)
    scale(params, paths)
    device = configure_torch(params.train)
    for name in params.models:
        train(name, params, paths, device)
    evaluate(params, paths, device)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
