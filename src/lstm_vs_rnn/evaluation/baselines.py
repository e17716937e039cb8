"""The baselines any forecaster must beat: persistence (repeat the last value) and a linear
AR(window) fitted by least squares; the noise floor, where the clean signal is known, is scored
by the evaluate stage from the series itself."""

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Windows per block when fitting the AR baseline: 8 MB of float64 at a window of 100.
AR_BLOCK_ROWS = 10_000


# How reports and figures name the baselines (keys of metrics.json).
BASELINE_LABELS = {
    "persistence": "persistence (last value)",
    "ar": "linear AR(window), least squares",
    "noise_floor": "noise floor (the clean signal)",
}


def persistence_forecast(history_and_test: np.ndarray, n_test: int) -> np.ndarray:
    """Predict each test point by the point before it."""
    return history_and_test[-n_test - 1 : -1]


@dataclass(frozen=True)
class LinearAutoregression:
    """A fitted AR(window): the next value is `window @ weights + intercept`."""

    weights: np.ndarray
    intercept: float

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """One step ahead from each row of `windows`, shape (n, window) -> (n,)."""
        return windows @ self.weights + self.intercept


def fit_autoregressive(train_series: np.ndarray, window: int) -> LinearAutoregression:
    """A linear AR(window) with intercept, least squares on the training windows.

    Every window of the training part, fitted in closed form: the networks' training windows and
    also the validation tail they hold out for choosing a repeat. The reference a recurrent model
    must beat before any claim about memory or non-linearity means something. The estimator
    is ordinary least squares with an intercept (what scikit-learn's `LinearRegression` fits),
    solved from the centred normal equations accumulated a block of windows at a time: the
    windows are never materialised (10^6 points with a window of 100 would be 800 MB).
    """
    inputs = sliding_window_view(train_series[:-1], window)
    targets = train_series[window:]
    input_mean, target_mean = inputs.mean(axis=0), targets.mean()
    gram = np.zeros((window, window))
    moment = np.zeros(window)
    for rows in _blocks(len(inputs)):
        centred = inputs[rows] - input_mean
        gram += centred.T @ centred
        moment += centred.T @ (targets[rows] - target_mean)
    weights = np.linalg.lstsq(gram, moment, rcond=None)[0]
    return LinearAutoregression(weights, target_mean - input_mean @ weights)


def autoregressive_forecast(
    model: LinearAutoregression, history_and_test: np.ndarray
) -> np.ndarray:
    """One-step forecasts of the test part by an AR fitted on the training part (fitted once:
    the multi-step rollout reuses the fit), a block of windows at a time."""
    test_inputs = sliding_window_view(history_and_test[:-1], len(model.weights))
    return np.concatenate([model.predict(test_inputs[rows]) for rows in _blocks(len(test_inputs))])


def _blocks(length: int, size: int = AR_BLOCK_ROWS) -> list[slice]:
    return [slice(start, start + size) for start in range(0, length, size)]
