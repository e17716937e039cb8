"""Error versus forecast horizon (`evaluate.horizon`): every repeat of every model and the
baselines rolled out recursively over the test part and scored step by step, in the series'
units.

Forecast origins: a forecast from origin o predicts test points o, o+1, ..., o+horizon-1 from
the `window` values before o (the last training points for the first origins). Only the origins
whose every step falls inside the test part are used, the same for every step, so the curve of
RMSE against the step shows the effect of the horizon and not of which test points are scored.
Step 1 from those origins is the one-step forecast (the networks' up to float32 rounding:
their batches hold other windows). Above MAX_ORIGINS origins (long series), every k-th origin
from the first is used, k the smallest stride that keeps at most MAX_ORIGINS: deterministic and
spread over the whole test part.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import lagged_best_forecast
from lstm_vs_rnn.data.windows import with_history
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.baselines import LinearAutoregression
from lstm_vs_rnn.evaluation.statistics import NOT_AVAILABLE, Number, mean_interval
from lstm_vs_rnn.files import read_array
from lstm_vs_rnn.modeling.multistep import (
    network_forecaster,
    persistence_forecaster,
    roll_out_chunks,
)
from lstm_vs_rnn.params import DataParams, LaggedData, Params
from lstm_vs_rnn.paths import ProjectPaths

# Steps reported in metrics.json (those up to the horizon), and the horizon itself.
HEADLINE_STEPS = (1, 5, 10)
# Origins scored at most (see the module docstring). Each costs `horizon` forward passes per
# repeat; every origin of a 10^6-point test part (2x10^5) at horizon 20 would be 20 times the
# one-step predictions' work (about 16 min for two models at 8,500 windows/s). At 5,000 it is
# half of it, and each step's RMSE still averages over 5,000 forecasts.
MAX_ORIGINS = 5_000

ForecastChunks = Iterable[tuple[slice, np.ndarray]]


def forecast_origins(n_test: int, horizon: int) -> slice:
    """Test positions the forecasts start from (a slice, so windows over them stay views)."""
    n_full = n_test - horizon + 1
    stride = -(-n_full // MAX_ORIGINS)
    return slice(0, n_full, stride)


def check_horizon(params: Params, paths: ProjectPaths) -> None:
    """Stop before any work when `evaluate.horizon` leaves no origin in the test part."""
    n_test = len(read_array(paths.test_array, "scale"))
    horizon = params.evaluate.horizon
    if horizon > n_test:
        raise UserError(
            f"params.yaml: evaluate.horizon = {horizon} leaves no forecast origin: the test "
            f"part has {n_test} points and every step must fall inside it, so at most {n_test}"
        )


def horizon_errors(
    params: Params,
    paths: ProjectPaths,
    device: torch.device,
    series: tuple[np.ndarray, np.ndarray],
    clean_test: np.ndarray | None,
    autoregression: LinearAutoregression,
    trained: Mapping[str, Sequence[nn.Module]],
) -> "HorizonErrors":
    """Every repeat of every model (`trained[name][repeat]`) and every baseline rolled out from
    the same origins of the test part, scored per step against `series` = (training part, test
    part), raw values; `autoregression` is the AR baseline fitted on the training part."""
    train, test = series
    horizon = params.evaluate.horizon
    origins = forecast_origins(len(test), horizon)
    actual = sliding_window_view(test, horizon)[origins]
    forecasts = {
        **_network_forecasts(params, paths, device, origins, trained),
        **_baseline_forecasts(params, (train, test), clean_test, autoregression, origins),
    }
    table = pd.concat(
        [
            _rows(name, repeat, rmse_per_step(chunks, actual))
            for (name, repeat), chunks in forecasts.items()
        ],
        ignore_index=True,
    )
    return HorizonErrors.from_table(table, len(actual))


def rmse_per_step(forecasts: ForecastChunks, actual: np.ndarray) -> np.ndarray:
    """RMSE of each step over all origins, from chunks of forecasts (rows of `actual`)."""
    squared = np.zeros(actual.shape[1])
    for rows, forecast in forecasts:
        squared += np.sum((forecast - actual[rows]) ** 2, axis=0)
    return np.sqrt(squared / len(actual))


def _network_forecasts(
    params: Params,
    paths: ProjectPaths,
    device: torch.device,
    origins: slice,
    trained: Mapping[str, Sequence[nn.Module]],
) -> dict[tuple[str, int | None], ForecastChunks]:
    """Each repeat's rollout, lazily (one rollout's chunks at a time), in the series' units.

    The networks roll out in their own scaled float32 units, as they were trained; each chunk
    is mapped back to the series' units exactly as the one-step predictions are.
    """
    horizon, window = params.evaluate.horizon, params.data.window
    scaler = MinMaxScaling.from_json(paths.scaler_json)
    train, test = (read_array(path, "scale") for path in (paths.train_array, paths.test_array))
    windows = sliding_window_view(with_history(train, test, window).astype(np.float32), window)

    def rollout(name: str, repeat: int) -> ForecastChunks:
        forecaster = network_forecaster(trained[name][repeat].to(device), device)
        for rows, scaled in roll_out_chunks(forecaster, windows[origins], horizon):
            yield rows, scaler.inverse_transform(scaled.astype(np.float64))

    return {
        (name, repeat): rollout(name, repeat)
        for name in params.models
        for repeat in range(params.train.repeats)
    }


def _baseline_forecasts(
    params: Params,
    series: tuple[np.ndarray, np.ndarray],
    clean_test: np.ndarray | None,
    autoregression: LinearAutoregression,
    origins: slice,
) -> dict[tuple[str, int | None], ForecastChunks]:
    """Persistence and the AR(window) rolled out like the networks, and the clean signal (the
    noise floor) where it is known; keyed as in metrics.json."""
    horizon, window = params.evaluate.horizon, params.data.window
    windows = sliding_window_view(with_history(*series, window), window)[origins]
    forecasts: dict[tuple[str, int | None], ForecastChunks] = {
        ("persistence", None): roll_out_chunks(persistence_forecaster, windows, horizon),
        ("ar", None): roll_out_chunks(autoregression.predict, windows, horizon),
    }
    if clean_test is not None:
        forecasts["noise_floor", None] = noise_floor_forecasts(
            params.data, clean_test, windows, horizon, origins
        )
    return forecasts


def noise_floor_forecasts(
    data: DataParams, clean_test: np.ndarray, windows: np.ndarray, horizon: int, origins: slice
) -> ForecastChunks:
    """The best forecast of each step from what is observed at the origin, in chunks.

    The sine's clean signal sin(t) is known at every future t, so its steps are `clean_test`.
    The lagged series' clean value phi·y_{t-lag} is known only for steps h <= lag; beyond, the
    best forecast is phi^k times an observed value (`sources.lagged_best_forecast`, rolled out
    from `windows`, the (n, window) raw inputs at the origins).
    """
    if isinstance(data, LaggedData):
        return roll_out_chunks(lagged_best_forecast(data), windows, horizon)
    clean = sliding_window_view(clean_test, horizon)[origins]
    return [(slice(0, len(clean)), clean)]


def _rows(model: str, repeat: int | None, rmse: np.ndarray) -> pd.DataFrame:
    """Rows of reports/plots/horizon.csv; `repeat` is empty for a baseline."""
    return pd.DataFrame(
        {
            "model": model,
            "repeat": pd.array([repeat] * len(rmse), dtype="Int64"),
            "step": np.arange(1, len(rmse) + 1),
            "rmse": rmse,
        }
    )


def headline_steps(horizon: int) -> list[int]:
    """The steps metrics.json reports: 1, 5, 10 where they fit, and the horizon."""
    return sorted({step for step in HEADLINE_STEPS if step <= horizon} | {horizon})


@dataclass(frozen=True)
class HorizonErrors:
    """RMSE per step: every repeat and baseline (`table`), each model's mean over repeats with
    its 95% bootstrap interval (NaN with one repeat), each baseline's curve; and the number of
    origins behind every value."""

    table: pd.DataFrame
    models: dict[str, pd.DataFrame]
    baselines: dict[str, pd.Series]
    origins: int

    @classmethod
    def from_table(cls, table: pd.DataFrame, origins: int) -> "HorizonErrors":
        repeated = table["repeat"].notna()
        models = {
            name: _mean_with_interval(rows)
            for name, rows in table[repeated].groupby("model", sort=False)
        }
        baselines = {
            name: rows.set_index("step")["rmse"]
            for name, rows in table[~repeated].groupby("model", sort=False)
        }
        return cls(table, models, baselines, origins)

    def headline(self, horizon: int) -> dict[str, dict[str, object]]:
        """metrics.json's `horizon_rmse` of each model and baseline, at the headline steps."""
        steps = headline_steps(horizon)
        headline: dict[str, dict[str, object]] = {}
        for name, curve in self.models.items():
            rows = curve.set_index("step").loc[steps]
            headline[name] = {
                f"h{step}": {
                    statistic: _number(row[statistic])
                    for statistic in ("mean", "ci95_low", "ci95_high")
                }
                for step, row in rows.iterrows()
            }
        for name, curve in self.baselines.items():
            headline[name] = {f"h{step}": float(curve[step]) for step in steps}
        return headline

    def mean_per_step(self) -> dict[int, dict[str, float]]:
        """Per step, each model's mean RMSE over repeats and each baseline's RMSE, as MLflow
        metrics `<name>.horizon_rmse_by_step` (logged with step = h: one curve per name)."""
        curves = {name: curve.set_index("step")["mean"] for name, curve in self.models.items()}
        curves.update(self.baselines)
        steps = next(iter(curves.values())).index
        return {
            int(step): {
                f"{name}.horizon_rmse_by_step": float(curve[step]) for name, curve in curves.items()
            }
            for step in steps
        }


def with_horizon_headline(
    metrics: dict[str, object], errors: HorizonErrors, horizon: int
) -> dict[str, object]:
    """A copy of metrics.json's content with each model's and baseline's `horizon_rmse`."""
    headline = errors.headline(horizon)
    return {
        name: {**value, "horizon_rmse": headline[name]} if name in headline else value
        for name, value in metrics.items()
    }


def _mean_with_interval(rows: pd.DataFrame) -> pd.DataFrame:
    """Per step: the mean RMSE over repeats and its 95% bootstrap interval."""
    records = []
    for step, values in rows.sort_values("repeat").groupby("step")["rmse"]:
        interval = mean_interval(values.to_numpy())
        records.append(
            {
                "step": int(step),
                "mean": float(np.mean(values.to_numpy())),
                "ci95_low": interval.low if interval else np.nan,
                "ci95_high": interval.high if interval else np.nan,
            }
        )
    return pd.DataFrame(records)


def _number(value: float) -> Number:
    return NOT_AVAILABLE if np.isnan(value) else float(value)
