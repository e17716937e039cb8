"""Test metrics in original units, for the models and for the baselines they must beat."""

import numpy as np
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error


def forecast_metrics(
    actual: np.ndarray, predicted: np.ndarray, train_series: np.ndarray
) -> dict[str, float]:
    """RMSE, MAE, R2 and MASE of one forecast.

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
    }


def persistence_forecast(history_and_test: np.ndarray, n_test: int) -> np.ndarray:
    """Predict each test point by the point before it."""
    return history_and_test[-n_test - 1 : -1]
