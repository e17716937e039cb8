"""The synthetic series: generated, written and read back (no torch here)."""

from pathlib import Path

import numpy as np
import pandas as pd

from lstm_vs_rnn.files import read_numeric_csv
from lstm_vs_rnn.params import DataParams


def generate_series(data: DataParams) -> pd.DataFrame:
    """y(t) = sin(t) + N(0, noise_std^2); `y_clean` keeps sin(t) to measure the noise floor.

    The noise comes from NumPy's legacy `RandomState`, as `np.random.seed(42)` in the reference
    article: the same series, so its noise floor (0.481) is ours too; its persistence figure
    (0.668) skips the first test point, ours (0.667) scores all 200. NumPy also freezes that
    stream across releases, unlike `default_rng`'s.
    """
    t = np.arange(data.n_points) * data.t_step
    clean = np.sin(t)
    noise = np.random.RandomState(data.seed).normal(0.0, data.noise_std, size=data.n_points)
    return pd.DataFrame({"t": t, "y": clean + noise, "y_clean": clean})


def read_series(path: Path) -> pd.DataFrame:
    """The generated CSV; `y_clean` is optional (a real series has no known clean signal)."""
    return read_numeric_csv(path, ("t", "y"), "generate", min_rows=2)
