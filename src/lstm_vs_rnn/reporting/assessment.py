"""Every repeat of every model against the baselines, and the models in pairs: the work of the
`evaluate` stage, from the files the earlier stages wrote, without any tracking.

Kept apart from the stage so that the benchmarks run exactly the same work untracked.
"""

import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import read_series, series_labels
from lstm_vs_rnn.data.time_axis import numeric_time, time_text
from lstm_vs_rnn.data.windows import make_windows, with_history
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.baselines import (
    BASELINE_LABELS,
    autoregressive_forecast,
    fit_autoregressive,
    persistence_forecast,
)
from lstm_vs_rnn.evaluation.gradients import measure_gradient_flow
from lstm_vs_rnn.evaluation.horizon import horizon_errors, with_horizon_headline
from lstm_vs_rnn.evaluation.metrics import forecast_metrics, training_summary
from lstm_vs_rnn.evaluation.statistics import paired_comparisons, summarise
from lstm_vs_rnn.files import read_array, read_numeric_csv, write_csv, write_json, write_text
from lstm_vs_rnn.modeling.checkpoints import load_model
from lstm_vs_rnn.modeling.chosen_settings import TUNABLE, load_tuning_result, with_chosen_models
from lstm_vs_rnn.modeling.networks import build_model, count_parameters
from lstm_vs_rnn.modeling.prediction import predict
from lstm_vs_rnn.modeling.training import best_validation_repeat
from lstm_vs_rnn.params import Params, split_point
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.reporting.claims import claims_report, verdict_family
from lstm_vs_rnn.reporting.figures import (
    error_histogram_figure,
    gradient_flow_figure,
    horizon_figure,
    loss_figure,
    paired_differences_figure,
    predictions_figure,
    repeats_figure,
    save_figure,
    scatter_figure,
    tuning_progress_figure,
    tuning_space_figure,
)

FIGURES = (
    "repeats",
    "paired_differences",
    "losses",
    "predictions",
    "errors",
    "scatter",
    "gradient_flow",
    "horizon",
    "tuning_progress",
    "tuning_space",
)
LOSS_COLUMNS = ("repeat", "seed", "epoch", "train_loss", "val_loss")
# Summarised over repeats in metrics.json; every repeat's values are in repeats.csv.
SUMMARISED = ("test_rmse", "test_mae", "test_mase")
# Each repeat's test metrics, also written into its training run.
REPEAT_METRICS = ("test_rmse", "test_mae", "test_mase", "test_r2")


class Assessment:
    """Everything evaluate computes, from the series, the weights and the loss histories."""

    def __init__(self, params: Params, paths: ProjectPaths, device: torch.device) -> None:
        """`params` as configured; `self.params` has each entry's network at its chosen
        settings (tuning/<name>.json), which is what its weights were trained at."""
        self.configured, self.paths = params, paths
        self.tuning = {
            name: load_tuning_result(params, name, paths.tuning_result(name))
            for name in params.models
        }
        self.params = with_chosen_models(
            params, {name: result["chosen"] for name, result in self.tuning.items()}
        )
        params = self.params
        self.series = read_series(paths.series_csv)
        self.split = split_point(len(self.series), params.data.train_fraction)
        values = self.series["y"].to_numpy()
        self.train, self.actual = values[: self.split], values[self.split :]
        self.histories = {name: self._loss_history(name) for name in params.models}
        self.parameter_counts = {
            name: count_parameters(build_model(settings))
            for name, settings in params.models.items()
        }
        self.predictions = self._predict_every_repeat(device)
        self.gradients = measure_gradient_flow(params, paths, device)
        self.autoregression = fit_autoregressive(self.train, params.data.window)
        self.baselines = self._baseline_metrics(values)
        self.horizon = horizon_errors(
            params,
            paths,
            device,
            (self.train, self.actual),
            self._clean_test(),
            self.autoregression,
        )
        self.per_repeat = self._per_repeat_table()
        # Every verdict of the run is one family, Holm-corrected together.
        self.comparisons, self.claims = verdict_family(
            paired_comparisons({name: self.column(name, "test_rmse") for name in params.models}),
            self.per_repeat,
            self.baselines["ar"]["test_rmse"],
            self.gradients,
        )

    def column(self, model: str, metric: str) -> np.ndarray:
        """`metric` of every repeat of `model`, in repeat order."""
        rows = self.per_repeat[self.per_repeat["model"] == model]
        return rows.sort_values("repeat")[metric].to_numpy()

    def repeat_metrics(self, model: str) -> list[dict[str, float]]:
        rows = self.per_repeat[self.per_repeat["model"] == model].sort_values("repeat")
        return rows[list(REPEAT_METRICS)].to_dict("records")

    def best_predictions(self) -> dict[str, np.ndarray]:
        """Each model's repeat whose saved weights have the lowest validation loss: the one
        logged as its model (`best_validation_repeat`)."""
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
            summary[name]["n_parameters"] = self.parameter_counts[name]
            summary[name]["grad_oldest_over_newest"] = self.gradients.oldest_over_newest(name)
        for comparison in self.comparisons:
            summary[comparison.key] = comparison.summary()
        return with_horizon_headline(
            {**summary, **self.baselines}, self.horizon, self.params.evaluate.horizon
        )

    def write_reports(self, metrics: dict[str, object]) -> None:
        """metrics.json, the per-repeat table, the predictions, claims.md and the figures."""
        paths = self.paths
        t = self.series["t"].to_numpy()[self.split :]
        write_json(paths.metrics_json, metrics)
        write_csv(paths.repeats_table, self.per_repeat)
        best = self.best_predictions()
        write_csv(paths.predictions_table, long_table(t, {"actual": self.actual, **best}))
        curves = [history.assign(model=name) for name, history in self.histories.items()]
        write_csv(paths.loss_curves, pd.concat(curves, ignore_index=True))
        write_csv(paths.grad_sensitivity, self.gradients.table)
        baseline_rmse = {name: values["test_rmse"] for name, values in self.baselines.items()}
        write_text(
            paths.claims_md,
            claims_report(
                self.per_repeat,
                baseline_rmse,
                self.comparisons,
                self.params.repeat_seeds(),
                self.model_table(),
                self.gradients,
                self.claims,
                self.tuning,
            ),
        )
        self._write_tuning_figures()
        rmse = {name: self.column(name, "test_rmse") for name in self.params.models}
        labelled = {BASELINE_LABELS[name]: value for name, value in baseline_rmse.items()}
        save_figure(repeats_figure(rmse, labelled), paths.figure("repeats"))
        save_figure(paired_differences_figure(self.comparisons), paths.figure("paired_differences"))
        save_figure(loss_figure(self.histories), paths.figure("losses"))
        save_figure(
            predictions_figure(t, self.actual, best, series_labels(self.params.data, self.series)),
            paths.figure("predictions"),
        )
        save_figure(error_histogram_figure(self.actual, best), paths.figure("errors"))
        save_figure(scatter_figure(self.actual, best), paths.figure("scatter"))
        save_figure(gradient_flow_figure(self.gradients.table), paths.figure("gradient_flow"))
        self._write_horizon_reports()

    def model_table(self) -> pd.DataFrame:
        """Each entry's architecture and size: a comparison is read against its budget."""
        return pd.DataFrame(
            [
                {
                    "model": name,
                    "arch": settings.arch,
                    "hidden_size": settings.hidden_size,
                    "num_layers": settings.num_layers,
                    "n_parameters": self.parameter_counts[name],
                }
                for name, settings in self.params.models.items()
            ]
        )

    def _write_horizon_reports(self) -> None:
        """RMSE per forecast step: the long table for DVC plots and the figure."""
        errors = self.horizon
        write_csv(self.paths.horizon_table, errors.table)
        baselines = {BASELINE_LABELS[name]: curve for name, curve in errors.baselines.items()}
        figure = horizon_figure(errors.models, baselines, self.params.train.repeats, errors.origins)
        save_figure(figure, self.paths.figure("horizon"))

    def _loss_history(self, name: str) -> pd.DataFrame:
        """The loss history of every repeat of `name`, checked against `train.repeats`."""
        path = self.paths.loss_history(name)
        history = read_numeric_csv(path, LOSS_COLUMNS, f"train@{name}")
        repeats = sorted(int(repeat) for repeat in history["repeat"].unique())
        if repeats != list(range(self.params.train.repeats)):
            raise UserError(
                f"{path}: holds repeats {repeats}, but train.repeats = "
                f"{self.params.train.repeats}; re-run the 'train@{name}' stage"
            )
        return history.astype({"repeat": int, "seed": int, "epoch": int})

    def _write_tuning_figures(self) -> None:
        """Best-so-far per trial for every tuned entry, and each trial's score per setting."""
        tuned = {name: result for name, result in self.tuning.items() if result["tuned"]}
        best_so_far = {
            name: np.minimum.accumulate(
                [np.inf if t["value"] is None else t["value"] for t in result["trials"]]
            ).tolist()
            for name, result in tuned.items()
        }
        save_figure(tuning_progress_figure(best_so_far), self.paths.figure("tuning_progress"))
        rows = [
            {"entry": name, "value": trial["value"], **trial["params"]}
            for name, result in tuned.items()
            for trial in result["trials"]
            if trial["value"] is not None
        ]
        keys = [key for key in TUNABLE if any(key in row for row in rows)]
        frame = pd.DataFrame(rows, columns=["entry", "value", *keys])
        save_figure(tuning_space_figure(frame, keys), self.paths.figure("tuning_space"))

    def _predict_every_repeat(self, device: torch.device) -> dict[str, list[np.ndarray]]:
        """Each repeat's one-step predictions for the test part, in original units."""
        paths, window = self.paths, self.params.data.window
        train = read_array(paths.train_array, "scale")
        test = read_array(paths.test_array, "scale")
        if len(test) != len(self.actual):
            raise UserError(
                f"{paths.test_array}: its length does not match {paths.series_csv}; "
                f"re-run the 'scale' stage"
            )
        scaler = MinMaxScaling.from_json(paths.scaler_json)
        inputs = torch.from_numpy(with_history(train, test, window).astype(np.float32))
        windows, _ = make_windows(inputs, window)
        predictions: dict[str, list[np.ndarray]] = {}
        for name, settings in self.params.models.items():
            predictions[name] = []
            for repeat in range(self.params.train.repeats):
                model = load_model(name, settings, paths.model_weights(name, repeat)).to(device)
                scaled = predict(model, windows, device).numpy().astype(np.float64)
                predictions[name].append(scaler.inverse_transform(scaled))
        return predictions

    def _baseline_metrics(self, values: np.ndarray) -> dict[str, dict[str, float]]:
        window = self.params.data.window
        history_and_test = with_history(self.train, self.actual, window)
        forecasts = {
            "persistence": persistence_forecast(values, len(self.actual)),
            "ar": autoregressive_forecast(self.autoregression, history_and_test),
        }
        clean = self._clean_test()
        if clean is not None:
            forecasts["noise_floor"] = clean
        return {
            name: forecast_metrics(self.actual, forecast, self.train)
            for name, forecast in forecasts.items()
        }

    def _clean_test(self) -> np.ndarray | None:
        """The test part's clean signal where it is known (the synthetic series)."""
        if "y_clean" not in self.series:
            return None
        return self.series["y_clean"].to_numpy()[self.split :]

    def _per_repeat_table(self) -> pd.DataFrame:
        """One row per model and repeat: its seed, training summary and test metrics."""
        frames = []
        for name, history in self.histories.items():
            tests = pd.DataFrame(
                [forecast_metrics(self.actual, p, self.train) for p in self.predictions[name]]
            )
            frame = pd.concat([training_summary(history), tests], axis=1)
            frame.insert(1, "seed", history.groupby("repeat")["seed"].first().to_numpy())
            frame.insert(0, "model", name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def long_table(t: np.ndarray, series: dict[str, np.ndarray]) -> pd.DataFrame:
    """Columns t, model, value: the shape DVC's per-model templates colour by. For a dated
    series `t` holds decimal years (DVC's plot draws it over numbers) and a `date` column the
    dates as ISO text."""
    times = {"t": numeric_time(t)}
    if np.issubdtype(t.dtype, np.datetime64):
        times["date"] = [time_text(stamp) for stamp in pd.DatetimeIndex(t)]
    return pd.concat(
        [
            pd.DataFrame({**times, "model": name, "value": values})
            for name, values in series.items()
        ],
        ignore_index=True,
    )
