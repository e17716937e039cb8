"""Test metrics in original units, for the models and for the baselines they must beat."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

# Claim (a) of the reference article: the epoch at which the validation loss first comes within
# this fraction of its best is when a model has converged.
CONVERGED_WITHIN = 0.05
# Windows per block when fitting the AR baseline: 8 MB of float64 at a window of 100.
AR_BLOCK_ROWS = 10_000
# How reports and figures name the baselines (keys of metrics.json).
BASELINE_LABELS = {
    "persistence": "persistence (last value)",
    "ar": "linear AR(window), least squares",
    "noise_floor": "noise floor (the clean signal)",
}


def forecast_metrics(
    actual: np.ndarray, predicted: np.ndarray, train_series: np.ndarray
) -> dict[str, float]:
    """RMSE, MAE, R2, MASE and the spread (sample std) of the errors of one forecast.

    MASE scales the MAE by the in-sample MAE of the one-step naive forecast on the training
    part (Hyndman & Koehler, 2006): below 1 beats "repeat the last value" as seen in training.
    """
    naive_mae = float(np.mean(np.abs(np.diff(train_series))))
    mae = float(mean_absolute_error(actual, predicted))
    return {
        "test_rmse": float(root_mean_squared_error(actual, predicted)),
        "test_mae": mae,
        "test_r2": float(r2_score(actual, predicted)),
        "test_mase": mae / naive_mae if naive_mae > 0 else float("nan"),
        "test_error_std": float(np.std(np.asarray(predicted) - actual, ddof=1)),
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

    The same windows the networks see, fitted in closed form: the reference a recurrent model
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


def epochs_to_converge(val_loss: np.ndarray) -> int:
    """The first epoch (1-based) whose validation loss is within 5% of the run's best."""
    best = float(np.min(val_loss))
    return int(np.argmax(val_loss <= best * (1 + CONVERGED_WITHIN))) + 1


def training_summary(history: pd.DataFrame) -> pd.DataFrame:
    """Per repeat of one model: its final training loss, best validation loss and convergence."""
    rows = [
        {
            "repeat": int(repeat),
            "final_train_loss": float(curve["train_loss"].iloc[-1]),
            "best_val_loss": float(curve["val_loss"].min()),
            "epochs_to_converge": epochs_to_converge(curve["val_loss"].to_numpy()),
        }
        for repeat, curve in history.sort_values(["repeat", "epoch"]).groupby("repeat")
    ]
    return pd.DataFrame(rows)
