"""The MLflow model a training stage logs: windows of raw values in, raw forecasts out.

MLflow loads this file as "models from code" (`mlflow.pyfunc.log_model(python_model=<this
file>)`): nothing is pickled. The network is rebuilt from its spec and a state_dict loaded
with `weights_only=True`, and the min-max scaler travels with it as JSON, so a user who loads
`models:/<id>` feeds windows in the series' own units and gets forecasts in those units.
Logging it skips the `torch.export` of `mlflow.pytorch.log_model` (~1.3 s a model).

The optional `horizon` param (pyfunc `params`, an integer, default 1) asks for that many
recursive steps per window (multistep.py: each forecast is fed back as the newest input).
`horizon` 1 returns shape (n,), as this model always has, so existing callers are unaffected;
a larger horizon returns shape (n, horizon).

Never imported by the pipeline itself: `set_model` below is what MLflow looks for.
"""

import json
from pathlib import Path

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
    value, shape (n,), or with params {"horizon": h > 1} the next h values, shape (n, h)."""

    def load_context(self, context: PythonModelContext) -> None:
        spec = json.loads(Path(context.artifacts[SPEC_ARTIFACT]).read_text(encoding="utf-8"))
        settings = ModelParams(
            arch=spec["arch"], hidden_size=spec["hidden_size"], num_layers=spec["num_layers"]
        )
        self.window = int(spec["window"])
        self.network = load_model(spec["name"], settings, Path(context.artifacts[WEIGHTS_ARTIFACT]))
        self.scaler = MinMaxScaling.from_json(Path(context.artifacts[SCALER_ARTIFACT]))

    # MLflow reads the type hint of `model_input`; the logged signature gives the shape.
    def predict(
        self, context: PythonModelContext, model_input: np.ndarray, params: dict | None = None
    ) -> np.ndarray:
        windows = np.asarray(model_input, dtype=np.float64)
        if windows.ndim != 2 or windows.shape[1] != self.window:
            raise ValueError(
                f"expected windows of shape (n, {self.window}) in the series' units, "
                f"got {windows.shape}"
            )
        horizon = requested_horizon(params)
        scaled = self.scaler.transform(windows).astype(np.float32)
        forecaster = network_forecaster(self.network, torch.device("cpu"))
        forecast = self.scaler.inverse_transform(
            roll_out(forecaster, scaled, horizon).astype(np.float64)
        )
        return forecast[:, 0] if horizon == 1 else forecast


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
