"""The `evaluate` stage's work: every repeat of every model against the baselines, and the
models in pairs, on every rolling-origin fold of `evaluate.folds`, from the files the earlier
stages wrote. Verdicts and summaries pool the folds (`Assessment`); repeats.csv holds every
fold's rows (column `fold`), metrics.json each fold's means under `folds`.

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
    LinearAutoregression,
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
from lstm_vs_rnn.params import Params, fold_bounds
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.reporting.claims import (
    FoldBlock,
    assess_verdicts,
    claims_report,
    fold_variance_splits,
    folds_section,
)
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
from lstm_vs_rnn.stage_names import entry_stage
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


@dataclass(frozen=True)
class FoldScores:
    """One rolling-origin fold scored: its models (at the settings its tune stages chose)
    trained on values [0, origin) and forecasting [origin, end) one step ahead, with the
    baselines fitted on the same training part."""

    fold: int
    origin: int
    end: int
    params: Params  # each entry's network at this fold's chosen settings
    tuning: dict[str, dict]  # tuning/fold_<k>/<entry>.json
    histories: dict[str, pd.DataFrame]  # loss history of every repeat, per entry
    trained: dict[str, list[RecurrentForecaster]]  # [entry][repeat]
    train: np.ndarray  # (origin,) the training part, original units
    actual: np.ndarray  # (end - origin,) the scored block, original units
    clean: np.ndarray | None  # its clean signal where known (the synthetic series), else None
    predictions: dict[str, list[np.ndarray]]  # [entry][repeat] -> (end - origin,)
    autoregression: LinearAutoregression
    ar_forecast: np.ndarray  # (end - origin,)
    baselines: dict[str, dict[str, float]]  # baseline -> its test metrics
    per_repeat: pd.DataFrame  # one row per entry and repeat


def score_fold(
    configured: Params, paths: ProjectPaths, series: pd.DataFrame, device: torch.device
) -> FoldScores:
    """Score fold `paths.fold` (see `FoldScores`) from its tune, train and scale outputs.

    Raises UserError when one of them is missing, unreadable or does not match params.yaml.
    """
    resolved = {
        name: at_chosen_settings(configured, name, paths.tuning_result(name))
        for name in configured.models
    }
    models = {name: chosen.models[name] for name, (chosen, _) in resolved.items()}
    params = configured.model_copy(update={"models": models})
    values = series["y"].to_numpy()
    origin, end = fold_bounds(len(values), params.data.train_fraction, paths.fold)
    train, actual = values[:origin], values[origin:end]
    histories = {name: read_loss_history(params, paths, name) for name in params.models}
    trained = load_repeats(params, paths)
    predictions = predict_every_repeat(params, paths, trained, len(actual), device)
    autoregression = fit_autoregressive(train, params.data.window)
    ar_forecast = autoregressive_forecast(
        autoregression, with_history(train, actual, params.data.window)
    )
    forecasts = {"persistence": persistence_forecast(values[:end], len(actual)), "ar": ar_forecast}
    clean = series["y_clean"].to_numpy()[origin:end] if "y_clean" in series else None
    if clean is not None:
        forecasts["noise_floor"] = clean
    baselines = {
        name: forecast_metrics(actual, forecast, train) for name, forecast in forecasts.items()
    }
    per_repeat = per_repeat_table(histories, predictions, actual, train)
    return FoldScores(
        paths.fold,
        origin,
        end,
        params,
        {name: result for name, (_, result) in resolved.items()},
        histories,
        trained,
        train,
        actual,
        clean,
        predictions,
        autoregression,
        ar_forecast,
        baselines,
        per_repeat,
    )


class Assessment:
    """Everything evaluate computes, from the series, the weights and the loss histories of
    every fold of `evaluate.folds`.

    Verdicts and summaries pool repeats and folds: each repeat's statistic is its mean over
    the folds (a repeat's seed is the same in every fold, so the repeats stay the test's
    independent units), and a model's forecasts against AR run over every fold's scored block
    in time order. The figures of single forecasts, the gradient flow, the multi-step horizon
    and the fresh-seed check of tuning are fold 0's: the latest origin, trained on the most
    data, whose models are the registered ones."""

    def __init__(self, params: Params, paths: ProjectPaths, device: torch.device) -> None:
        """`params` as configured; `self.params` has each entry's network at fold 0's chosen
        settings (tuning/fold_0/<name>.json), which is what its weights were trained at."""
        self.configured, self.paths = params, paths.for_fold(0)
        self.series = read_series(paths.series_csv)
        self.folds = {
            fold: score_fold(params, paths.for_fold(fold), self.series, device)
            for fold in sorted(params.evaluate.folds)
        }
        latest = self.folds[0]
        self.params, self.tuning, self.histories = latest.params, latest.tuning, latest.histories
        self.split, self.train, self.actual = latest.origin, latest.train, latest.actual
        self.trained, self.predictions = latest.trained, latest.predictions
        params, paths = self.params, self.paths
        self.fresh_checks = self._fresh_seed_checks()
        self.parameter_counts = {
            name: count_parameters(build_model(settings))
            for name, settings in params.models.items()
        }
        self.gradients = measure_gradient_flow(params, paths, device, self.trained)
        self.horizon = horizon_errors(
            params,
            paths,
            device,
            (self.train, self.actual),
            latest.clean,
            latest.autoregression,
            self.trained,
        )
        self.per_fold_repeat = pd.concat(
            [scores.per_repeat.assign(fold=fold) for fold, scores in self.folds.items()],
            ignore_index=True,
        )
        self.per_repeat = pooled_over_folds(self.per_fold_repeat)
        self.baselines = {
            name: {
                metric: float(np.mean([s.baselines[name][metric] for s in self.folds.values()]))
                for metric in values
            }
            for name, values in latest.baselines.items()
        }
        in_time_order = sorted(self.folds.values(), key=lambda scores: scores.origin)
        # The verdicts in tiers fixed before the run (reporting.claims).
        self.verdicts = assess_verdicts(
            params.evaluate.primary,
            params.evaluate.equivalence_margin,
            self.per_repeat,
            {
                name: [
                    np.concatenate([s.predictions[name][repeat] for s in in_time_order])
                    for repeat in range(params.train.repeats)
                ]
                for name in params.models
            },
            np.concatenate([s.actual for s in in_time_order]),
            np.concatenate([s.ar_forecast for s in in_time_order]),
            self.gradients,
        )

    def column(self, model: str, metric: str) -> np.ndarray:
        """`metric` of every repeat of `model`, in repeat order."""
        rows = self.per_repeat[self.per_repeat["model"] == model]
        return rows.sort_values("repeat")[metric].to_numpy()

    def repeat_metrics(self, model: str, fold: int) -> list[dict[str, float]]:
        """Each repeat's test metrics of `model` on fold `fold`'s scored block."""
        table = self.per_fold_repeat
        rows = table[(table["model"] == model) & (table["fold"] == fold)].sort_values("repeat")
        return rows[list(REPEAT_METRICS)].to_dict("records")

    def best_predictions(self) -> dict[str, np.ndarray]:
        """Each model's repeat whose saved weights have the lowest validation loss: the one
        logged as its model (`best_validation_repeat`)."""
        return {
            name: self.predictions[name][best_validation_repeat(history)]
            for name, history in self.histories.items()
        }

    def fold_blocks(self) -> list[FoldBlock]:
        """Where each fold trains and what it scores, fold by fold."""
        return [FoldBlock(fold, s.origin, s.end) for fold, s in self.folds.items()]

    def primary_pairs(self) -> list[tuple[str, str]]:
        """The primary pairs this configuration holds, as tested."""
        return [(v.comparison.first, v.comparison.second) for v in self.verdicts.primary]

    def fold_metrics(self) -> dict[str, object]:
        """metrics.json's `folds`: each fold's blocks and mean test RMSE per model, and each
        primary pair's variance shares (folds, seeds, seed x fold); empty with one fold."""
        if len(self.folds) < 2:
            return {}
        table = self.per_fold_repeat
        summary: dict[str, object] = {
            f"fold_{block.fold}": {
                "origin": block.origin,
                "end": block.end,
                "test_rmse_mean": {
                    name: float(
                        table[(table["fold"] == block.fold) & (table["model"] == name)][
                            "test_rmse"
                        ].mean()
                    )
                    for name in self.params.models
                },
            }
            for block in self.fold_blocks()
        }
        splits = fold_variance_splits(table, self.primary_pairs())
        summary["variance_shares"] = {
            f"{first}_vs_{second}": split.shares() for (first, second), split in splits.items()
        }
        return {"folds": summary}

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
        summary.update(self.fold_metrics())
        return with_horizon_headline(
            {**summary, **self.baselines}, self.horizon, self.params.evaluate.horizon
        )

    def write_reports(self, metrics: dict[str, object]) -> None:
        """metrics.json, the per-repeat table, the predictions, claims.md and the figures."""
        paths = self.paths
        t = self.series["t"].to_numpy()[self.split : self.split + len(self.actual)]
        write_json(paths.metrics_json, metrics)
        write_csv(paths.repeats_table, self.per_fold_repeat)
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
                folds_section(self.fold_blocks(), self.per_fold_repeat, self.primary_pairs()),
            ),
        )
        self._write_tuning_figures()
        rmse = {name: self.column(name, "test_rmse") for name in self.params.models}
        labelled = {BASELINE_LABELS[name]: value for name, value in baseline_rmse.items()}
        save_figure(repeats_figure(rmse, labelled, len(self.folds)), paths.figure("repeats"))
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


def read_loss_history(params: Params, paths: ProjectPaths, name: str) -> pd.DataFrame:
    """The loss history of every repeat of `name` in fold `paths.fold`, checked against
    `train.repeats`. Raises UserError naming the file and the stage to re-run."""
    path = paths.loss_history(name)
    stage = entry_stage("train", name, paths.fold)
    history = read_numeric_csv(path, LOSS_COLUMNS, stage)
    repeats = sorted(int(repeat) for repeat in history["repeat"].unique())
    if repeats != list(range(params.train.repeats)):
        raise UserError(
            f"{path}: holds repeats {repeats}, but train.repeats = "
            f"{params.train.repeats}; re-run the '{stage}' stage"
        )
    return history.astype({"repeat": int, "seed": int, "epoch": int})


def predict_every_repeat(
    params: Params,
    paths: ProjectPaths,
    trained: dict[str, list[RecurrentForecaster]],
    n_scored: int,
    device: torch.device,
) -> dict[str, list[np.ndarray]]:
    """Each repeat's one-step predictions of fold `paths.fold`'s scored block, shape
    (n_scored,) each, in original units. Raises UserError when the fold's scaled block does
    not hold `n_scored` values (a series changed since the scale stage ran)."""
    window = params.data.window
    train = read_array(paths.train_array, "scale")
    test = read_array(paths.test_array, "scale")
    if len(test) != n_scored:
        raise UserError(
            f"{paths.test_array}: its length does not match {paths.series_csv}; "
            f"re-run the 'scale' stage"
        )
    scaler = MinMaxScaling.from_json(paths.scaler_json)
    inputs = torch.from_numpy(with_history(train, test, window).astype(np.float32))
    windows, _ = make_windows(inputs, window)
    predictions: dict[str, list[np.ndarray]] = {}
    for name, repeats in trained.items():
        predictions[name] = []
        for model in repeats:
            scaled = predict(model.to(device), windows, device).numpy().astype(np.float64)
            predictions[name].append(scaler.inverse_transform(scaled))
    return predictions


def per_repeat_table(
    histories: dict[str, pd.DataFrame],
    predictions: dict[str, list[np.ndarray]],
    actual: np.ndarray,
    train: np.ndarray,
) -> pd.DataFrame:
    """One row per model and repeat: its seed, training summary and test metrics."""
    frames = []
    for name, history in histories.items():
        tests = pd.DataFrame([forecast_metrics(actual, p, train) for p in predictions[name]])
        frame = pd.concat([training_summary(history), tests], axis=1)
        frame.insert(1, "seed", history.groupby("repeat")["seed"].first().to_numpy())
        frame.insert(0, "model", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pooled_over_folds(per_fold_repeat: pd.DataFrame) -> pd.DataFrame:
    """`per_fold_repeat` (one row per fold, model and repeat) as one row per model and repeat,
    each number its mean over the folds; with one fold, that fold's rows as they are."""
    if per_fold_repeat["fold"].nunique() == 1:
        return per_fold_repeat.drop(columns="fold")
    pooled = (
        per_fold_repeat.drop(columns="fold")
        .groupby(["model", "repeat"], sort=False)
        .mean(numeric_only=True)
        .reset_index()
    )
    return pooled.astype({"seed": int})


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
    `[name][repeat]`, from models/fold_<k>/<name>/repeat_<i>.pt of fold k = `paths.fold`:
    each loaded once for the predictions, the multi-step rollouts and the gradient flow
    (about 10^4 parameters each by default).

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
        paths.for_fold(fold).model_weights(name, repeat): values
        for fold in assessment.folds
        for name in assessment.params.models
        for repeat, values in enumerate(assessment.repeat_metrics(name, fold))
    }
    return EvaluateResult(metrics, logged, repeat_metrics)
