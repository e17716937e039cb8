"""Stage `evaluate`: every repeat of every model against the baselines, and the models in pairs.

Writes reports/metrics.json (DVC metrics: per model, mean/median/std/min/max and the mean's 95%
interval over repeats; per pair, the paired RMSE difference and its verdict; the baselines),
reports/plots/repeats.csv (every repeat's test metrics), reports/plots/predictions/<model>.csv
(the best-validation repeat), reports/claims.md and the comparison figures. Logs the summaries
and verdicts to the configuration's parent run, and each repeat's test metrics to that repeat's
training run of this configuration.
"""

import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.checkpoints import load_model
from lstm_vs_rnn.claims import claims_report
from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.comparison import paired_comparisons, summarise
from lstm_vs_rnn.data import read_series
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation import (
    BASELINE_LABELS,
    autoregressive_forecast,
    forecast_metrics,
    persistence_forecast,
    training_summary,
)
from lstm_vs_rnn.files import read_array, read_numeric_csv, write_csv, write_json, write_text
from lstm_vs_rnn.params import Params, load_params, split_point
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.plots import (
    error_histogram_figure,
    loss_figure,
    paired_differences_figure,
    predictions_figure,
    repeats_figure,
    save_figure,
    scatter_figure,
)
from lstm_vs_rnn.scaling import MinMaxScaling
from lstm_vs_rnn.tracking import StageRun, config_hash, file_sha256, stage_run
from lstm_vs_rnn.training import best_validation_repeat, configure_torch, predict
from lstm_vs_rnn.windows import make_windows, with_history

FIGURES = ("repeats", "paired_differences", "losses", "predictions", "errors", "scatter")
LOSS_COLUMNS = ("repeat", "seed", "epoch", "train_loss", "val_loss")
# Summarised over repeats in metrics.json; every repeat's values are in repeats.csv.
SUMMARISED = ("test_rmse", "test_mae", "test_mase")
# The keys dvc.yaml lists for this stage (the device and threads decide prediction numerics).
PARAMS_USED = (
    "data.window",
    "data.train_fraction",
    "train.device",
    "train.num_threads",
    "train.repeats",
    "train.seed",
    "models.",
)


class Evaluation:
    """Everything evaluate computes, from the series, the weights and the loss histories."""

    def __init__(self, params: Params, device: torch.device) -> None:
        self.params = params
        self.series = read_series(PATHS.series_csv)
        self.split = split_point(len(self.series), params.data.train_fraction)
        values = self.series["y"].to_numpy()
        self.train, self.actual = values[: self.split], values[self.split :]
        self.histories = {name: read_loss_history(name, params) for name in params.models}
        self.predictions = predict_every_repeat(params, device, len(self.actual))
        self.baselines = self._baseline_metrics(values)
        self.per_repeat = self._per_repeat_table()
        self.comparisons = paired_comparisons(
            {name: self.column(name, "test_rmse") for name in params.models}
        )

    def column(self, model: str, metric: str) -> np.ndarray:
        rows = self.per_repeat[self.per_repeat["model"] == model]
        return rows.sort_values("repeat")[metric].to_numpy()

    def best_predictions(self) -> dict[str, np.ndarray]:
        """Each model's repeat with the best validation loss: the one logged as its model."""
        return {
            name: self.predictions[name][best_validation_repeat(history)]
            for name, history in self.histories.items()
        }

    def metrics(self) -> dict[str, object]:
        """metrics.json: summaries only, readable in `dvc metrics diff` and `dvc exp show`."""
        persistence = self.baselines["persistence"]["test_rmse"]
        summary: dict[str, object] = {}
        for name in self.params.models:
            summary[name] = {metric: summarise(self.column(name, metric)) for metric in SUMMARISED}
            summary[name]["failures"] = int(np.sum(self.column(name, "test_rmse") >= persistence))
        for comparison in self.comparisons:
            summary[comparison.key] = comparison.summary()
        return {**summary, **self.baselines}

    def _baseline_metrics(self, values: np.ndarray) -> dict[str, dict[str, float]]:
        window = self.params.data.window
        history_and_test = with_history(self.train, self.actual, window)
        forecasts = {
            "persistence": persistence_forecast(values, len(self.actual)),
            "ar": autoregressive_forecast(self.train, history_and_test, window),
        }
        if "y_clean" in self.series:
            forecasts["noise_floor"] = self.series["y_clean"].to_numpy()[self.split :]
        return {
            name: forecast_metrics(self.actual, forecast, self.train)
            for name, forecast in forecasts.items()
        }

    def _per_repeat_table(self) -> pd.DataFrame:
        frames = []
        for name, history in self.histories.items():
            tests = pd.DataFrame(
                [
                    forecast_metrics(self.actual, predicted, self.train)
                    for predicted in self.predictions[name]
                ]
            )
            seeds = history.groupby("repeat")["seed"].first().to_numpy()
            frame = pd.concat([training_summary(history), tests], axis=1)
            frame.insert(0, "seed", seeds)
            frame.insert(0, "model", name)
            frames.append(frame)
        table = pd.concat(frames, ignore_index=True)
        return table[["model", "repeat", *table.columns.drop(["model", "repeat"])]]


def read_loss_history(name: str, params: Params) -> pd.DataFrame:
    """The loss history of every repeat of `name`, checked against `train.repeats`."""
    history = read_numeric_csv(PATHS.loss_history(name), LOSS_COLUMNS, f"train@{name}")
    if sorted(history["repeat"].unique()) != list(range(params.train.repeats)):
        raise UserError(
            f"{PATHS.loss_history(name)}: holds repeats {sorted(history['repeat'].unique())}, "
            f"but train.repeats = {params.train.repeats}; re-run the 'train@{name}' stage"
        )
    return history.astype({"repeat": int, "seed": int, "epoch": int})


def predict_every_repeat(
    params: Params, device: torch.device, n_test: int
) -> dict[str, list[np.ndarray]]:
    """Each repeat's one-step predictions for the test part, in original units."""
    train = read_array(PATHS.train_array, "scale")
    test = read_array(PATHS.test_array, "scale")
    if len(test) != n_test:
        raise UserError(
            f"{PATHS.test_array}: its length does not match {PATHS.series_csv}; "
            f"re-run the 'scale' stage"
        )
    scaler = MinMaxScaling.from_json(PATHS.scaler_json)
    inputs = torch.from_numpy(with_history(train, test, params.data.window).astype(np.float32))
    windows, _ = make_windows(inputs, params.data.window)
    predictions: dict[str, list[np.ndarray]] = {}
    for name, settings in params.models.items():
        predictions[name] = []
        for repeat in range(params.train.repeats):
            model = load_model(name, settings, PATHS.model_weights(name, repeat)).to(device)
            scaled = predict(model, windows, device).numpy().astype(np.float64)
            predictions[name].append(scaler.inverse_transform(scaled))
    return predictions


def write_reports(evaluation: Evaluation, metrics: dict[str, object]) -> None:
    series, split = evaluation.series, evaluation.split
    t = series["t"].to_numpy()[split:]
    write_json(PATHS.metrics_json, metrics)
    write_csv(PATHS.repeats_table, evaluation.per_repeat)
    best = evaluation.best_predictions()
    for name, predicted in best.items():
        write_csv(
            PATHS.prediction_table(name),
            pd.DataFrame({"t": t, "actual": evaluation.actual, "predicted": predicted}),
        )
    baseline_rmse = {name: values["test_rmse"] for name, values in evaluation.baselines.items()}
    write_text(
        PATHS.claims_md,
        claims_report(
            evaluation.per_repeat,
            baseline_rmse,
            evaluation.comparisons,
            evaluation.params.repeat_seeds(),
        ),
    )
    rmse = {name: evaluation.column(name, "test_rmse") for name in evaluation.params.models}
    labelled = {BASELINE_LABELS[name]: value for name, value in baseline_rmse.items()}
    save_figure(repeats_figure(rmse, labelled), PATHS.figure("repeats"))
    save_figure(
        paired_differences_figure(evaluation.comparisons), PATHS.figure("paired_differences")
    )
    save_figure(loss_figure(evaluation.histories), PATHS.figure("losses"))
    save_figure(predictions_figure(t, evaluation.actual, best), PATHS.figure("predictions"))
    save_figure(error_histogram_figure(evaluation.actual, best), PATHS.figure("errors"))
    save_figure(scatter_figure(evaluation.actual, best), PATHS.figure("scatter"))


def log_to_mlflow(run: StageRun, evaluation: Evaluation, metrics: dict[str, object]) -> None:
    """Summaries and verdicts to this run and the parent; each repeat's test metrics to its
    training run of this configuration, or a note where the weights came from elsewhere."""
    numbers, verdicts = flatten(metrics)
    run.log_metrics(numbers)
    run.log_to_parent(numbers, verdicts)
    run.set_tags(verdicts)
    params = evaluation.params
    tested = {
        file_sha256(PATHS.model_weights(name, repeat)): metrics_of_repeat
        for name in params.models
        for repeat, metrics_of_repeat in enumerate(
            evaluation.per_repeat[evaluation.per_repeat["model"] == name]
            .sort_values("repeat")[["test_rmse", "test_mae", "test_mase", "test_r2"]]
            .to_dict("records")
        )
    }
    untracked = run.log_to_repeat_runs(config_hash(params), tested)
    if untracked:
        run.note_weights_from_elsewhere(run.configurations_that_trained(untracked))
    for figure in FIGURES:
        run.log_figure(PATHS.figure(figure))
    run.log_artifact(PATHS.metrics_json, "metrics")
    run.log_artifact(PATHS.claims_md, "claims")
    run.log_artifact(PATHS.repeats_table, "metrics")


def flatten(
    metrics: dict[str, object], prefix: str = ""
) -> tuple[dict[str, float], dict[str, str]]:
    """metrics.json as MLflow metrics (numbers) and tags (verdicts); "n/a" goes to neither."""
    numbers: dict[str, float] = {}
    texts: dict[str, str] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            inner_numbers, inner_texts = flatten(value, f"{name}.")
            numbers.update(inner_numbers)
            texts.update(inner_texts)
        elif key == "verdict":
            texts[name] = str(value)
        elif isinstance(value, (int, float)):
            numbers[name] = float(value)
    return numbers, texts


def main() -> None:
    params = load_params(PATHS.params)
    device = configure_torch(params.train)
    with stage_run("evaluate", params, param_prefixes=PARAMS_USED) as run:
        evaluation = Evaluation(params, device)
        metrics = evaluation.metrics()
        write_reports(evaluation, metrics)
        log_to_mlflow(run, evaluation, metrics)


if __name__ == "__main__":
    run_entry_point(main)
