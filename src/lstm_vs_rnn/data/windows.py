"""Sliding windows over a series as views of one tensor, never materialised copies."""

import numpy as np
import torch


def make_windows(series: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """windows[i] = series[i : i + window] predicts targets[i] = series[i + window].

    `unfold` returns a strided view, so a 10^6-point series with a window of 100 costs no more
    memory than the series itself; only the rows of each batch are ever copied.
    """
    return series.unfold(0, window, 1)[:-1], series[window:]


def with_history(train: np.ndarray, test: np.ndarray, window: int) -> np.ndarray:
    """The test part preceded by the last `window` training points, its only history."""
    return np.concatenate([train[-window:], test])
