"""The MLflow model a training stage logs: windows of raw values in, raw forecasts out.

MLflow loads this file as "models from code" (`mlflow.pyfunc.log_model(python_model=<this
file>)`): nothing is pickled. The network is rebuilt from its spec and a state_dict loaded
with `weights_only=True`, and the min-max scaler travels with it as JSON, so a user who loads
`models:/<id>` feeds windows in the series' own units and gets forecasts in those units.
Logging it skips the `torch.export` of `mlflow.pytorch.log_model` (~1.3 s a model).

Input: any real-valued array-like of shape (n, window) (float32 or float64 or integer arrays,
lists of lists, a DataFrame); see `as_windows`. The optional `horizon` param (pyfunc `params`,
an integer, default 1) asks for that many recursive steps per window (multistep.py: each
forecast is fed back as the newest input); the output has shape (n, horizon), so (n, 1) by
default, as the logged output schema (-1, -1) says.

Never imported by the pipeline itself: `set_model` below is what MLflow looks for.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc.model import PythonModelContext

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.modeling.checkpoints import (
    SCALER_ARTIFACT,
    SPEC_ARTIFACT,
    WEIGHTS_ARTIFACT,
    load_model,
)
from lstm_vs_rnn.modeling.multistep import network_forecaster, roll_out
from lstm_vs_rnn.params import ModelParams

# The most steps forecast per window (the `horizon` param), the bound of `evaluate.horizon`:
# the rollout's time grows with it.
MAX_FORECAST_HORIZON = 10_000


class RawUnitsForecaster(PythonModel):
    """Forecasts in the series' units from a batch of windows, shape (n, window): the next
    h values of each (params {"horizon": h}, default 1), shape (n, h)."""

    def load_context(self, context: PythonModelContext) -> None:
        spec = json.loads(Path(context.artifacts[SPEC_ARTIFACT]).read_text(encoding="utf-8"))
        settings = ModelParams(
            arch=spec["arch"], hidden_size=spec["hidden_size"], num_layers=spec["num_layers"]
        )
        self.window = int(spec["window"])
        self.network = load_model(spec["name"], settings, Path(context.artifacts[WEIGHTS_ARTIFACT]))
        self.scaler = MinMaxScaling.from_json(Path(context.artifacts[SCALER_ARTIFACT]))

    # No input schema is logged (tracking.logged_model): MLflow's tensor schema refuses float32
    # and lists, so this method is the one check of what comes in (`as_windows`: arrays of any
    # real dtype, lists of lists, DataFrames). `model_input` is hinted `np.ndarray` because that
    # is one of the hints MLflow infers no schema from and converts nothing for
    # (`mlflow.types.type_hints.type_hints_no_signature_inference`); without a hint MLflow
    # warns "Add type hints to the `predict` method" wherever the model is logged or loaded.
    def predict(
        self, context: PythonModelContext, model_input: np.ndarray, params: dict | None = None
    ) -> np.ndarray:
        windows = as_windows(model_input, self.window)
        horizon = requested_horizon(params)
        scaled = self.scaler.transform(windows).astype(np.float32)
        forecaster = network_forecaster(self.network, torch.device("cpu"))
        return self.scaler.inverse_transform(
            roll_out(forecaster, scaled, horizon).astype(np.float64)
        )


def as_windows(model_input: Any, window: int) -> np.ndarray:
    """`model_input` as float64 windows of shape (n, window), whatever real-valued array-like
    holds them: a numpy array of any real dtype (float32, float64, integers), a list of lists,
    a pandas DataFrame (its columns are the window's positions, oldest first).

    Raises ValueError, in one short line that states the expected shape, for another shape,
    a value that is not a real number, or a NaN or infinity.
    """
    expected = f"expected windows of shape (n, {window}): n rows of {window} real numbers"
    try:
        windows = np.asarray(model_input)
    except ValueError:  # ragged lists
        raise ValueError(f"{expected}, got rows of different lengths") from None
    if windows.dtype == object or windows.dtype.kind not in "biuf":
        raise ValueError(f"{expected}, got values of type {windows.dtype}")
    if windows.ndim != 2 or windows.shape[1] != window:
        raise ValueError(f"{expected}, got shape {windows.shape}")
    windows = windows.astype(np.float64)
    bad = np.argwhere(~np.isfinite(windows))
    if len(bad):
        row, column = bad[0]
        raise ValueError(
            f"{expected}, got {windows[row, column]} at row {row}, column {column} "
            f"({len(bad)} non-finite value(s))"
        )
    return windows


def requested_horizon(params: dict | None) -> int:
    """The `horizon` param: an integer from 1 to MAX_FORECAST_HORIZON; absent means 1.

    MLflow has already checked it against the signature's ParamSpec (type long, default 1);
    the range is this model's own rule.
    """
    horizon = (params or {}).get("horizon")
    if horizon is None:
        return 1
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, int | np.integer)
        or not 1 <= horizon <= MAX_FORECAST_HORIZON
    ):
        raise ValueError(
            f"params: horizon must be an integer from 1 to {MAX_FORECAST_HORIZON} "
            f"(forecast steps per window), got {horizon!r}"
        )
    return int(horizon)


set_model(RawUnitsForecaster())
