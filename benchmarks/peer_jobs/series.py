"""The job every peer script does: the reference article's series and its split.

Kept apart from `article.py` so the peer scripts share it without importing one another's
training code; imports NumPy only.
"""

from typing import Any

import numpy as np


def article_series(job: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The noisy sine (NumPy's legacy seed, as the article) and the index where the test part
    starts: (n_points,) float64 in the series' units, and an int."""
    np.random.seed(job["seed"])
    t = np.arange(job["n_points"]) * job["t_step"]
    values = np.sin(t) + np.random.normal(0.0, job["noise_std"], job["n_points"])
    return values, int(job["n_points"] * job["train_fraction"])


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2)))
