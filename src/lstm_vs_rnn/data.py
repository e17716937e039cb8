"""The synthetic series and its chronological split (NumPy and pandas only: no torch here)."""

from pathlib import Path

import numpy as np
import pandas as pd

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import DataParams

SERIES_COLUMNS = ("t", "y", "y_clean")


def generate_series(data: DataParams) -> pd.DataFrame:
    """y(t) = sin(t) + N(0, noise_std^2); `y_clean` keeps sin(t) to measure the noise floor.

    The noise comes from NumPy's legacy `RandomState`, as `np.random.seed(42)` in the reference
    article: the same series, so its baselines (noise floor 0.481, persistence 0.668) are ours
    too. NumPy also freezes that stream across releases, unlike `default_rng`'s.
    """
    t = np.arange(data.n_points) * data.t_step
    clean = np.sin(t)
    noise = np.random.RandomState(data.seed).normal(0.0, data.noise_std, size=data.n_points)
    return pd.DataFrame({"t": t, "y": clean + noise, "y_clean": clean})


def read_series(path: Path) -> pd.DataFrame:
    """Read the generated CSV; a missing, truncated or non-numeric file is a UserError."""
    try:
        frame = pd.read_csv(path, dtype="float64")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run the 'generate' stage first") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(
            f"{path}: not a numeric CSV with columns "
            f"{', '.join(SERIES_COLUMNS)} ({str(exc).splitlines()[0]})"
        ) from None
    missing = [column for column in ("t", "y") if column not in frame.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(SERIES_COLUMNS)}"
        )
    # A missing value in any column (y_clean too) is what a file cut off mid-row looks like.
    if len(frame) < 2 or not np.isfinite(frame.to_numpy()).all():
        raise UserError(
            f"{path}: needs at least 2 rows with a finite number in every column "
            f"({', '.join(frame.columns)}); is it truncated? re-run the 'generate' stage"
        )
    return frame
