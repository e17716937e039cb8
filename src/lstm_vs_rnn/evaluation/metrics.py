"""Test metrics in original units (RMSE, MAE, R2, MASE), and per-repeat training summaries."""

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

# Claim (a) of the reference article: the epoch at which the validation loss first comes within
# this fraction of its best is when a model has converged.
CONVERGED_WITHIN = 0.05


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
