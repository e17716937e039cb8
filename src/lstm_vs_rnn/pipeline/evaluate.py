"""The `evaluate` stage's work: every repeat of every model against the baselines, and the
models in pairs, from the files the earlier stages wrote.

Writes reports/metrics.json (DVC metrics: per model, mean/median/std/min/max and the mean's 95%
interval over repeats; per pair, the paired RMSE difference with its interval at its tier's
level, the sign-flip test's adjusted p-value and the verdict, in tiers (see reporting.claims);
each network against AR (Diebold-Mariano); the baselines), reports/plots/repeats.csv
(every repeat's test metrics), reports/plots/predictions.csv (the test part and, per model, the
one-step predictions of the repeat logged as its model), reports/plots/grad_sensitivity.csv
(the forecast's sensitivity to each lag, per model, trained and at init),
reports/plots/horizon.csv (RMSE per step of the recursive multi-step forecast, every repeat and
baseline), reports/claims.md and the comparison figures. Each repeat's weights are loaded once.
"""

from dataclasses import dataclass
from pathlib import Path

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
from lstm_vs_rnn.evaluation.statistics import summarise
from lstm_vs_rnn.evaluation.tuning_check import (
    FreshSeedCheck,
    fresh_seed_check,
    shared_setting_twin,
)
from lstm_vs_rnn.files import read_array, read_numeric_csv, write_csv, write_json, write_text
from lstm_vs_rnn.modeling.checkpoints import load_model
from lstm_vs_rnn.modeling.chosen_settings import TUNABLE, at_chosen_settings
from lstm_vs_rnn.modeling.networks import RecurrentForecaster, build_model, count_parameters
from lstm_vs_rnn.modeling.prediction import predict
from lstm_vs_rnn.modeling.training import best_validation_repeat, configure_torch
from lstm_vs_rnn.params import Params, split_point
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.reporting.claims import assess_verdicts, claims_report
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
from lstm_vs_rnn.stage_result import StageResult

# The params keys the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both):
# the device and threads decide prediction numerics.
PARAMS = (
    "data.window",
    "data.train_fraction",
    "train.device",
    "train.num_threads",
    "train.repeats",
    "train.seed",
    "models",
    "evaluate",
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
        resolved = {
            name: at_chosen_settings(params, name, paths.tuning_result(name))
            for name in params.models
        }
        self.tuning = {name: result for name, (_, result) in resolved.items()}
        models = {name: chosen.models[name] for name, (chosen, _) in resolved.items()}
        self.params = params.model_copy(update={"models": models})
        params = self.params
        self.series = read_series(paths.series_csv)
        self.split = split_point(len(self.series), params.data.train_fraction)
        values = self.series["y"].to_numpy()
        self.train, self.actual = values[: self.split], values[self.split :]
        self.histories = {name: self._loss_history(name) for name in params.models}
        self.fresh_checks = self._fresh_seed_checks()
        self.parameter_counts = {
            name: count_parameters(build_model(settings))
            for name, settings in params.models.items()
        }
        self.trained = load_repeats(params, paths)
        self.predictions = self._predict_every_repeat(device)
        self.gradients = measure_gradient_flow(params, paths, device, self.trained)
        self.autoregression = fit_autoregressive(self.train, params.data.window)
        self.baselines = self._baseline_metrics(values)
        self.horizon = horizon_errors(
            params,
            paths,
            device,
            (self.train, self.actual),
            self._clean_test(),
            self.autoregression,
            self.trained,
        )
        self.per_repeat = self._per_repeat_table()
        # The verdicts in tiers fixed before the run (reporting.claims).
        self.verdicts = assess_verdicts(
            params.evaluate.primary,
            params.evaluate.equivalence_margin,
            self.per_repeat,
            self.predictions,
            self.actual,
            self._ar_forecast(),
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
        summary: dict[str, object] = {
            check.entry: {"fresh_seed": fresh_seed_summary(check)} for check in self.fresh_checks
        }
        for name in self.params.models:
            summary.setdefault(name, {}).update(
                {metric: summarise(self.column(name, metric)) for metric in SUMMARISED}
            )
            summary[name]["failures"] = int(np.sum(self.column(name, "test_rmse") >= persistence))
            summary[name]["n_parameters"] = self.parameter_counts[name]
            summary[name]["grad_oldest_over_newest"] = self.gradients.oldest_over_newest(name)
        summary.update(self.verdicts.metrics())
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
                self.verdicts,
                self.params.repeat_seeds(),
                self.model_table(),
                self.gradients,
                self.tuning,
                self.fresh_checks,
            ),
        )
        self._write_tuning_figures()
        rmse = {name: self.column(name, "test_rmse") for name in self.params.models}
        labelled = {BASELINE_LABELS[name]: value for name, value in baseline_rmse.items()}
        save_figure(repeats_figure(rmse, labelled), paths.figure("repeats"))
        pairs = self.verdicts.pair_verdicts()
        save_figure(paired_differences_figure(pairs), paths.figure("paired_differences"))
        save_figure(loss_figure(self.histories), paths.figure("losses"))
        save_figure(
            predictions_figure(t, self.actual, best, series_labels(self.params.data, self.series)),
            paths.figure("predictions"),
        )
        save_figure(error_histogram_figure(self.actual, best), paths.figure("errors"))
        save_figure(scatter_figure(self.actual, best), paths.figure("scatter"))
        save_figure(gradient_flow_figure(self.gradients.table), paths.figure("gradient_flow"))
        self._write_horizon_reports()

    def _fresh_seed_checks(self) -> list[FreshSeedCheck]:
        """Each tuned entry's choice re-scored on its training repeats' fresh seeds, against
        its shared-setting twin (`evaluation.tuning_check`); none for an entry without one."""
        checks = []
        for name, result in self.tuning.items():
            twin = shared_setting_twin(self.configured, name) if result["tuned"] else None
            if twin is not None:
                checks.append(
                    fresh_seed_check(result, self.histories[name], twin, self.histories[twin])
                )
        return checks

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
        for name, repeats in self.trained.items():
            predictions[name] = []
            for model in repeats:
                scaled = predict(model.to(device), windows, device).numpy().astype(np.float64)
                predictions[name].append(scaler.inverse_transform(scaled))
        return predictions

    def _ar_forecast(self) -> np.ndarray:
        """The linear AR baseline's one-step forecasts of the test part, original units."""
        history_and_test = with_history(self.train, self.actual, self.params.data.window)
        return autoregressive_forecast(self.autoregression, history_and_test)

    def _baseline_metrics(self, values: np.ndarray) -> dict[str, dict[str, float]]:
        forecasts = {
            "persistence": persistence_forecast(values, len(self.actual)),
            "ar": self._ar_forecast(),
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


def fresh_seed_summary(check: FreshSeedCheck) -> dict[str, object]:
    """A tuned entry's fresh-seed check as metrics.json holds it (validation MSE, scaled)."""
    return {
        "tuning_val_loss": check.tuning_score,
        "fresh_val_loss_mean": check.fresh_mean,
        "twin_val_loss_mean": check.twin_mean,
        "repeats_better_than_twin": check.tuned_better,
        "verdict": (
            f"worse than {check.twin}" if check.worse_than_twin else f"holds against {check.twin}"
        ),
    }


def load_repeats(params: Params, paths: ProjectPaths) -> dict[str, list[RecurrentForecaster]]:
    """Every repeat of every entry of `params.models` (at the settings it was trained at),
    `[name][repeat]`, from models/<name>/repeat_<i>.pt: each loaded once for the predictions,
    the multi-step rollouts and the gradient flow (about 10^4 parameters each by default).

    Raises UserError naming the file whose weights are missing or do not fit (`load_model`)."""
    return {
        name: [
            load_model(name, settings, paths.model_weights(name, repeat))
            for repeat in range(params.train.repeats)
        ]
        for name, settings in params.models.items()
    }


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


@dataclass(frozen=True)
class EvaluateResult:
    """What evaluate logs: `metrics` is metrics.json as written (nested); `logged` holds the
    per-lag sensitivity medians (step = lag), the mean RMSE per forecast step (step = h), the
    figures and the report files; `repeat_metrics` maps each repeat's weights file to its test
    metrics, for that repeat's training run."""

    metrics: dict[str, object]
    logged: StageResult
    repeat_metrics: dict[Path, dict[str, float]]


def run(params: Params, paths: ProjectPaths) -> EvaluateResult:
    """Assess every repeat of every entry and write the reports (see the module's docstring).

    Raises UserError when an earlier stage's output is missing, unreadable or does not match
    params.yaml (the file is named, with the stage that writes it).
    """
    assessment = Assessment(params, paths, configure_torch(params.train))
    metrics = assessment.metrics()
    assessment.write_reports(metrics)
    stepped: dict[int, dict[str, float]] = {}
    for per_step in (assessment.gradients.median_by_lag(), assessment.horizon.mean_per_step()):
        for step, values in per_step.items():
            stepped.setdefault(step, {}).update(values)
    logged = StageResult(
        stepped=stepped,
        figures=[paths.figure(figure) for figure in FIGURES],
        artifacts=[
            (paths.metrics_json, "metrics"),
            (paths.repeats_table, "metrics"),
            (paths.claims_md, "claims"),
        ],
    )
    repeat_metrics = {
        paths.model_weights(name, repeat): values
        for name in assessment.params.models
        for repeat, values in enumerate(assessment.repeat_metrics(name))
    }
    return EvaluateResult(metrics, logged, repeat_metrics)
