"""The series the pipeline studies, from the source `data.source` names (no torch here).

Every source becomes the same table: `t` (the time axis), `y` (the values) and, where the
clean signal is known, `y_clean` (the best possible forecast, which sets the noise floor).
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_vs_rnn.data.time_axis import has_utc_offset, is_iso_date, time_text
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.files import read_numeric_csv
from lstm_vs_rnn.params import (
    CsvData,
    DataParams,
    LaggedData,
    Params,
    SineData,
    check_series_length,
    split_point,
)

# A frame's attribute set when its dated time axis was converted to UTC from UTC offsets.
TIME_IN_UTC = "time_in_utc"
# "1,685" or "-12,345.5": a thousands separator; "1,5": a decimal comma.
GROUPED_DIGITS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


@dataclass(frozen=True)
class SeriesLabels:
    """How figures name the series: its values, its time axis and what it is."""

    value: str
    time: str
    description: str


def series_labels(data: DataParams, series: pd.DataFrame | None = None) -> SeriesLabels:
    """The labels of the configured source; a time axis converted to UTC says so."""
    if isinstance(data, CsvData):
        time = data.time_column or "row"
        if series is not None and series.attrs.get(TIME_IN_UTC):
            time = f"{time} (UTC)"
        return SeriesLabels(data.column, time, f"{data.column} from {data.path}")
    if isinstance(data, LaggedData):
        return SeriesLabels("y", "t", f"y(t) = {data.phi:g}·y(t-{data.lag}) + noise")
    return SeriesLabels("y", "t", "y(t) = sin(t) + noise")


def load_series(params: Params, root: Path) -> pd.DataFrame:
    """The series of the configured source; a CSV path is relative to `root`."""
    data = params.data
    if isinstance(data, CsvData):
        return read_user_csv(data, root, params)
    if isinstance(data, LaggedData):
        return lagged_series(data)
    return sine_series(data)


def sine_series(data: SineData) -> pd.DataFrame:
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


def lagged_series(data: LaggedData) -> pd.DataFrame:
    """y_t = phi·y_{t-lag} + e_t, e_t ~ N(0, noise_std^2): a task that needs a memory of `lag`
    steps, and nothing shorter helps (the values in between are independent of y_t).

    The first `lag` values are drawn from the stationary distribution N(0, noise_std^2 /
    (1 - phi^2)), so the series is stationary from its first value and needs no burn-in.
    `y_clean` = phi·y_{t-lag} is the best forecast, so the noise floor is the noise itself.
    """
    rng = np.random.RandomState(data.seed)
    spread = data.noise_std / math.sqrt(1.0 - data.phi**2)
    start = rng.normal(0.0, spread, size=data.lag)
    noise = rng.normal(0.0, data.noise_std, size=data.n_points)
    values = np.empty(data.n_points)
    values[: data.lag] = start
    for first in range(data.lag, data.n_points, data.lag):
        block = slice(first, min(first + data.lag, data.n_points))
        size = block.stop - block.start
        values[block] = data.phi * values[first - data.lag : first - data.lag + size] + noise[block]
    clean = np.zeros(data.n_points)
    clean[data.lag :] = data.phi * values[: data.n_points - data.lag]
    return pd.DataFrame({"t": np.arange(data.n_points, dtype=float), "y": values, "y_clean": clean})


def lagged_best_forecast(data: LaggedData) -> Callable[[np.ndarray], np.ndarray]:
    """The lagged series' best one-step forecast from a window: phi·y_{t-lag}, its `y_clean`.

    A function of (n, window) raw windows (oldest first, window > lag) -> (n,). Rolled out
    recursively (`modeling.multistep.roll_out`), step h > lag reads its own earlier forecast,
    so it gives E[y_{o+h} | y up to o] = phi^k · y_{o+h-k·lag} with k = ceil(h / lag): the best
    forecast from the values observed at the origin o, which is the noise floor at step h.
    """

    def forecast(windows: np.ndarray) -> np.ndarray:
        return data.phi * windows[:, -data.lag]

    return forecast


def read_user_csv(data: CsvData, root: Path, params: Params) -> pd.DataFrame:
    """The user's column, checked cell by cell so that an error names its line."""
    path = _user_path(data.path, root)
    header, rows = _read_rows(path, data.path)
    columns = [data.column] + ([data.time_column] if data.time_column else [])
    for column in columns:
        if column not in header:
            key = "data.column" if column == data.column else "data.time_column"
            raise UserError(
                f"{data.path}: no column '{column}' (set by {key}); "
                f"the file has {', '.join(header)}"
            )
    values = _numbers(rows, header.index(data.column), data.column, data.path)
    check_series_length(len(values), params, data.path)
    check_learnable(values, params, data.path, data.column)
    if data.time_column:
        time = time_axis(rows, header.index(data.time_column), data.time_column, data.path)
        _check_in_time_order(time, rows, data.path)
    else:
        time = pd.Series(np.arange(len(values), dtype=float))
    frame = pd.DataFrame({"t": time.array, "y": values})
    frame.attrs[TIME_IN_UTC] = isinstance(time.dtype, pd.DatetimeTZDtype)
    return frame


def check_learnable(values: np.ndarray, params: Params, shown: str, column: str) -> None:
    """Refuse, before any training, a series the models cannot learn from.

    `values` (n,) is the whole series; the training part is its first `data.train_fraction`.
    Refused: a constant series, a constant training part (min-max scaling has no range to fit)
    and a training part whose values after the first window are all one value (every training
    window is followed by the same target: nothing to learn, and every model scores alike).
    `shown` and `column` name the file and its column. Raises UserError.
    """
    data = params.data
    split = split_point(len(values), data.train_fraction)
    train, targets = values[:split], values[data.window : split]
    where = f"{shown}: column '{column}'"
    if np.ptp(values) == 0:
        raise UserError(
            f"{where} is constant (every value is {values[0]:g}); the models need a series "
            f"that varies"
        )
    if np.ptp(train) == 0:
        raise UserError(
            f"{where} is constant over the training part (its first {split} values, "
            f"data.train_fraction = {data.train_fraction}, are all {train[0]:g}): scaling has "
            f"no range to fit and the models nothing to learn; use a series that varies there"
        )
    if np.ptp(targets) == 0:
        raise UserError(
            f"{where} takes one value, {targets[0]:g}, from its value {data.window + 1} to "
            f"the end of the training part (value {split}): every training window "
            f"(data.window = {data.window}) is followed by it, so the models have nothing to "
            f"learn; use a series that varies there, or a shorter data.window"
        )


def time_axis(rows: list[tuple[int, list[str]]], index: int, column: str, shown: str) -> pd.Series:
    """The time column: numbers (a year, a step), or ISO 8601 dates read by pandas
    (`2020-01-01`, a year-month period `1950-01`, a date and time `2020-01-01 12:30`). Times
    with a UTC offset (`2018-01-04 09:00:00+09:00`, `2018-01-04T00:00Z`) come back in UTC
    (a timezone-aware series), so a change of offset (DST) keeps them in order.

    The column's first cell decides: a number makes every cell a number, anything else makes
    every cell a date. Raises UserError naming the file, the line and the cell otherwise.
    """
    first = rows[0][1][index].strip() if rows and index < len(rows[0][1]) else ""
    if not first or _is_number(first):
        return pd.Series(_numbers(rows, index, column, shown))
    cells = [row[index].strip() if index < len(row) else "" for _, row in rows]
    offset = has_utc_offset(first)
    for (line, _), cell in zip(rows, cells, strict=True):
        if not is_iso_date(cell):
            raise UserError(
                f"{shown}, line {line}: '{cell}' in column '{column}' is not a date; expected "
                f"ISO 8601 like {first!r} (YYYY-MM-DD, YYYY-MM or YYYY-MM-DD HH:MM, optionally "
                f"with a UTC offset such as +09:00 or Z), as in the first row"
            )
        if has_utc_offset(cell) != offset:
            raise UserError(
                f"{shown}, line {line}: '{cell}' in column '{column}' "
                f"{'lacks' if offset else 'has'} a UTC offset, unlike the first row's "
                f"{first!r}; give every time an offset (+09:00, Z) or none"
            )
    return pd.Series(pd.to_datetime(cells, format="ISO8601", utc=offset))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _user_path(relative: str, root: Path) -> Path:
    if Path(relative).is_absolute():
        raise UserError(
            f"params.yaml: data.path = {relative!r} is not allowed; expected a path relative to "
            f"the repository root (DVC tracks it as a dependency)"
        )
    inside = (root / relative).resolve()
    if not inside.is_relative_to(root.resolve()):
        raise UserError(
            f"params.yaml: data.path = {relative!r} leaves the repository; expected a path "
            f"inside it, relative to its root (DVC tracks it as a dependency)"
        )
    return root / relative


def _read_rows(path: Path, shown: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and every non-blank row with its line number in the file, every cell as
    text (pandas reads the file; the cells are checked one by one, so an error names its line).

    A row with more cells than the first is refused, with its line number.
    """
    try:
        table = pd.read_csv(
            path,
            header=None,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except FileNotFoundError:
        raise UserError(f"{shown}: file not found (data.path in params.yaml)") from None
    except UnicodeDecodeError:
        raise UserError(f"{shown}: not UTF-8 text; save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    except pd.errors.ParserError as exc:
        raise UserError(f"{shown}: not a readable CSV ({str(exc).strip()})") from None
    header, *cells = table.to_numpy().tolist() or [[]]
    if not any(name.strip() for name in header):
        raise UserError(f"{shown}: the file is empty; expected a header row, then values")
    rows = [(line, row) for line, row in enumerate(cells, start=2) if any(c.strip() for c in row)]
    return [name.strip() for name in header], rows


def _numbers(rows: list[tuple[int, list[str]]], index: int, column: str, shown: str) -> np.ndarray:
    values = np.empty(len(rows))
    for position, (line, row) in enumerate(rows):
        cell = row[index].strip() if index < len(row) else ""
        if not cell:
            raise UserError(f"{shown}, line {line}: empty cell in column '{column}'")
        try:
            number = float(cell)
        except ValueError:
            number = math.nan
        if GROUPED_DIGITS.fullmatch(cell) or DECIMAL_COMMA.fullmatch(cell):
            raise UserError(
                f"{shown}, line {line}: '{cell}' in column '{column}' is not a number: its comma "
                f"is a thousands separator or a decimal comma, which read differently by "
                f"locale; write plain numbers with '.' as the decimal mark (1685, 1.685)"
            )
        if not math.isfinite(number):
            raise UserError(
                f"{shown}, line {line}: '{cell}' in column '{column}' is not a finite number"
            )
        values[position] = number
    return values


def _check_in_time_order(time: pd.Series, rows: list[tuple[int, list[str]]], shown: str) -> None:
    """The split is chronological, so rows must be in time order, dates as numbers alike."""
    order = time.dt.tz_convert(None) if isinstance(time.dtype, pd.DatetimeTZDtype) else time
    order = order.to_numpy()
    backwards = np.flatnonzero(order[1:] <= order[:-1])
    if backwards.size:
        later, earlier = backwards[0] + 1, backwards[0]
        raise UserError(
            f"{shown}, line {rows[later][0]}: time {time_text(time.iloc[later])} does not come "
            f"after {time_text(time.iloc[earlier])}; rows must be in time order without repeats"
        )


def read_series(path: Path) -> pd.DataFrame:
    """The series generate wrote; `y_clean` is optional (a real series has no known clean
    signal). A `t` of ISO dates (a CSV's date column) comes back as datetime64; times written
    in UTC (`+00:00`, converted from UTC offsets) come back as UTC without a zone, with the
    frame's attribute TIME_IN_UTC set so that figures label the axis UTC."""
    frame = read_numeric_csv(path, ("t", "y"), "generate", min_rows=2, text_columns=("t",))
    if not pd.api.types.is_numeric_dtype(frame["t"]):
        times = pd.to_datetime(frame["t"], format="ISO8601")
        frame.attrs[TIME_IN_UTC] = isinstance(times.dtype, pd.DatetimeTZDtype)
        frame["t"] = times.dt.tz_convert(None) if frame.attrs[TIME_IN_UTC] else times
    return frame
