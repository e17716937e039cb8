"""Recursive multi-step forecasts: each prediction is fed back as the newest input.

Our networks read a window and predict one value, so a forecast `horizon` steps ahead is made
recursively (one model applied `horizon` times), not by a separate head per step as Nixtla's
`recurrent=False` models do: the models being compared stay the one-step models the pipeline
trained, and multi-step error then shows how their one-step errors compound. The same loop
rolls out any one-step forecaster (a network, the AR baseline, persistence), so every curve of
error versus horizon is made the same way.

Vectorised over forecast origins (one call of the one-step forecaster per step over a chunk of
windows) and chunked, so memory stays flat whatever the number of origins. Ships with the logged
MLflow model (checkpoints.FORECASTER_MODULES): no tracking, SciPy or scikit-learn imports here.
"""

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from lstm_vs_rnn.modeling.prediction import PREDICTION_BATCH_SIZE, predict

# One step ahead from each row of a (n, window) array of inputs, as an (n,) array.
OneStepForecaster = Callable[[np.ndarray], np.ndarray]

# Origins rolled out together: one prediction batch each, so the first step of a rollout runs
# exactly the batches of a one-step `predict` over the same windows.
ROLLOUT_CHUNK = PREDICTION_BATCH_SIZE


def network_forecaster(model: nn.Module, device: torch.device) -> OneStepForecaster:
    """A torch forecaster as a one-step function of float32 windows in its (scaled) units."""

    def forecast(windows: np.ndarray) -> np.ndarray:
        return predict(model, torch.from_numpy(np.ascontiguousarray(windows)), device).numpy()

    return forecast


def persistence_forecaster(windows: np.ndarray) -> np.ndarray:
    """The last value of each window: rolled out, the last observed value repeated."""
    return windows[:, -1]


def roll_out_chunks(
    forecaster: OneStepForecaster, windows: np.ndarray, horizon: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """Per chunk of origins: its rows of `windows` and their forecasts, shape (rows, horizon).

    Each chunk's path holds the window and then the forecasts; step h reads the `window`
    values before it, so the inputs of step h end with the forecasts of steps 1 .. h-1.
    """
    n_origins, window = windows.shape
    for start in range(0, n_origins, ROLLOUT_CHUNK):
        rows = slice(start, min(start + ROLLOUT_CHUNK, n_origins))
        path = np.empty((rows.stop - start, window + horizon), dtype=windows.dtype)
        path[:, :window] = windows[rows]
        for step in range(horizon):
            path[:, window + step] = forecaster(path[:, step : step + window])
        yield rows, path[:, window:]


def roll_out(forecaster: OneStepForecaster, windows: np.ndarray, horizon: int) -> np.ndarray:
    """Recursive forecasts of `horizon` steps from every window: (n, window) -> (n, horizon)."""
    forecasts = np.empty((len(windows), horizon), dtype=windows.dtype)
    for rows, chunk in roll_out_chunks(forecaster, windows, horizon):
        forecasts[rows] = chunk
    return forecasts
