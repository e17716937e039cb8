"""The MLflow model a training stage logs: windows of raw values in, raw next values out.

MLflow loads this file as "models from code" (`mlflow.pyfunc.log_model(python_model=<this
file>)`): nothing is pickled. The network is rebuilt from its spec and a state_dict loaded
with `weights_only=True`, and the min-max scaler travels with it as JSON, so a user who loads
`models:/<id>` feeds windows in the series' own units and gets forecasts in those units.
Logging it skips the `torch.export` of `mlflow.pytorch.log_model` (~1.3 s a model).

Never imported by the pipeline itself: `set_model` below is what MLflow looks for.
"""

import json
from pathlib import Path

import numpy as np
import torch
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc.model import PythonModelContext

from lstm_vs_rnn.checkpoints import SCALER_ARTIFACT, SPEC_ARTIFACT, WEIGHTS_ARTIFACT, load_model
from lstm_vs_rnn.params import ModelParams
from lstm_vs_rnn.scaling import MinMaxScaling
from lstm_vs_rnn.training import predict


class RawUnitsForecaster(PythonModel):
    """One-step forecasts in the series' units from a batch of windows, shape (n, window)."""

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
        scaled = torch.from_numpy(self.scaler.transform(windows).astype(np.float32))
        forecast = predict(self.network, scaled, torch.device("cpu")).numpy()
        return self.scaler.inverse_transform(forecast.astype(np.float64))


set_model(RawUnitsForecaster())
