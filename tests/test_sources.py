"""The three series sources: the lagged task's properties, and the user's CSV read cell by cell
with one-line errors that name the file and the line."""

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from lstm_vs_rnn.data.sources import (
    check_learnable,
    lagged_series,
    load_series,
    read_series,
    read_user_csv,
    series_labels,
)
from lstm_vs_rnn.data.windows import with_history
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.horizon import noise_floor_forecasts
from lstm_vs_rnn.files import write_csv
from lstm_vs_rnn.params import CsvData, LaggedData, Params, load_params
from lstm_vs_rnn.paths import PATHS

LAGGED = LaggedData(
    source="lagged",
    n_points=20_000,
    noise_std=1.0,
    seed=7,
    lag=25,
    phi=0.9,
    train_fraction=0.8,
    window=30,
)


def with_data(**data: Any) -> Params:
    """The project's params with another `data` section."""
    params = load_params(PATHS.params)
    fields = {"train_fraction": 0.8, "window": 5, **data}
    source = CsvData if fields["source"] == "csv" else LaggedData
    return params.model_copy(update={"data": source(**fields)})


def test_lagged_series_depends_on_the_value_lag_steps_back_only() -> None:
    frame = lagged_series(LAGGED)
    y = frame["y"].to_numpy()

    def correlation(lag: int) -> float:
        return float(np.corrcoef(y[lag:], y[:-lag])[0, 1])

    assert correlation(25) == pytest.approx(0.9, abs=0.02)
    assert max(abs(correlation(k)) for k in (1, 5, 10, 24, 26)) < 0.03
    # Stationary from the first value: the spread is sqrt(1 / (1 - phi^2)) in both halves.
    expected = 1.0 / np.sqrt(1 - 0.9**2)
    for half in (y[:10_000], y[10_000:]):
        assert half.std() == pytest.approx(expected, rel=0.05)
    # The clean signal is the best forecast: what is left is the noise itself.
    residual = y[25:] - frame["y_clean"].to_numpy()[25:]
    assert residual.std() == pytest.approx(1.0, rel=0.03)
    np.testing.assert_array_equal(frame["y_clean"].to_numpy()[25:], 0.9 * y[:-25])


def test_lagged_series_is_reproducible_from_its_seed() -> None:
    assert lagged_series(LAGGED).equals(lagged_series(LAGGED))


def test_the_shipped_sunspots_series_reads_with_its_years_as_time() -> None:
    params = with_data(
        source="csv",
        path="data/sunspots/sunspots.csv",
        column="SUNACTIVITY",
        time_column="YEAR",
        window=20,
    )
    frame = load_series(params, PATHS.root)
    assert len(frame) == 309
    assert (frame["t"].iloc[0], frame["t"].iloc[-1]) == (1700, 2008)
    assert (frame["y"].iloc[0], frame["y"].iloc[-1]) == (5.0, 2.9)
    assert "y_clean" not in frame  # no noise floor for real data


def test_without_a_time_column_the_row_number_is_the_time(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("v\n" + "\n".join(str(i * 1.5) for i in range(40)) + "\n")
    params = with_data(source="csv", path="s.csv", column="v", time_column=None)
    frame = read_user_csv(params.data, tmp_path, params)
    np.testing.assert_array_equal(frame["t"], np.arange(40))
    np.testing.assert_array_equal(frame["y"], np.arange(40) * 1.5)


ROWS = [f"{2000 + value},{value}\n" for value in range(40)]
GOOD_ROWS = "".join(ROWS)


@pytest.mark.parametrize(
    ("text", "changes", "expected"),
    [
        (None, {}, "s.csv: file not found (data.path in params.yaml)"),
        ("", {}, "s.csv: the file is empty; expected a header row, then values"),
        (
            "year,count\n" + GOOD_ROWS,
            {},
            "s.csv: no column 'value' (set by data.column); the file has year, count",
        ),
        (
            "year,value\n" + GOOD_ROWS,
            {"time_column": "date"},
            "s.csv: no column 'date' (set by data.time_column); the file has year, value",
        ),
        ("year,value\n" + GOOD_ROWS + "2040,\n", {}, "s.csv, line 42: empty cell in column"),
        (
            "year,value\n" + GOOD_ROWS + "2040,1,2\n",
            {},
            "s.csv: not a readable CSV (Error tokenizing data. C error: Expected 2 fields in "
            "line 42, saw 3)",
        ),
        (
            "year,value\n" + "".join(ROWS[:3]) + "2003,n/a\n" + "".join(ROWS[4:]),
            {},
            "s.csv, line 5: 'n/a' in column 'value' is not a finite number",
        ),
        (
            "year,value\n" + GOOD_ROWS + "2041,inf\n",
            {},
            "s.csv, line 42: 'inf' in column 'value' is not a finite number",
        ),
        (
            "year,value\n2000,1\n1999,2\n" + "".join(ROWS[2:]),
            {},
            "s.csv, line 3: time 1999 does not come after 2000",
        ),
        (
            "year,value\n" + "".join(ROWS[:4]),
            {},
            "s.csv gives 4 values: too few for data.window = 5",
        ),
        (
            "year,value\n" + GOOD_ROWS,
            {"window": 31},
            "data.window can be at most 30",
        ),
        (
            "year,value\n" + "".join(ROWS[:3]) + '2003,"1,685"\n' + "".join(ROWS[4:]),
            {},
            "s.csv, line 5: '1,685' in column 'value' is not a number: its comma is a thousands "
            "separator or a decimal comma",
        ),
        (
            "year,value\n" + "".join(ROWS[:3]) + '2003,"1,5"\n' + "".join(ROWS[4:]),
            {},
            "s.csv, line 5: '1,5' in column 'value' is not a number: its comma is a thousands",
        ),
        (
            "year,value\n" + "".join(f"{2000 + i},7\n" for i in range(40)),
            {},
            "s.csv: column 'value' is constant (every value is 7)",
        ),
        (
            "year,value\n" + "".join(f"{2000 + i},{max(i - 31, 0)}\n" for i in range(40)),
            {},
            "s.csv: column 'value' is constant over the training part (its first 32 values, "
            "data.train_fraction = 0.8, are all 0)",
        ),
        (
            "year,value\n"
            + "".join(f"{2000 + i},{max(5 - i, 0) + max(i - 31, 0)}\n" for i in range(40)),
            {},
            "s.csv: column 'value' takes one value, 0, from its value 6 to the end of the "
            "training part (value 32): every training window (data.window = 5)",
        ),
        (
            "year,value\n" + GOOD_ROWS,
            {"path": "/etc/passwd"},
            "data.path = '/etc/passwd' is not allowed; expected a path relative to",
        ),
        (
            "year,value\n" + GOOD_ROWS,
            {"path": "data/../../s.csv"},
            "data.path = 'data/../../s.csv' leaves the repository; expected a path inside it",
        ),
    ],
    ids=[
        "missing-file",
        "empty-file",
        "missing-column",
        "missing-time-column",
        "empty-cell",
        "extra-cell",
        "text-cell",
        "infinite-cell",
        "time-backwards",
        "too-few-values",
        "window-too-long",
        "thousands-separator",
        "decimal-comma",
        "constant",
        "constant-training-part",
        "one-target-for-every-window",
        "absolute-path",
        "path-outside-the-repository",
    ],
)
def test_bad_csv_is_one_line_naming_the_file_and_line(
    tmp_path: Path, text: str | None, changes: dict[str, Any], expected: str
) -> None:
    if text is not None:
        (tmp_path / "s.csv").write_text(text)
    fields = {"path": "s.csv", "column": "value", "time_column": "year", **changes}
    params = with_data(source="csv", **fields)
    with pytest.raises(UserError) as raised:
        read_user_csv(params.data, tmp_path, params)
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message


def test_the_lagged_noise_floor_at_each_step_uses_only_values_observed_at_the_origin() -> None:
    """Best forecast of y_{o+h} from y up to o: phi^k · y_{o+h-k·lag}, k = ceil(h / lag);
    the clean value phi·y_{t-lag} for h <= lag only (beyond, y_{t-lag} is not yet observed)."""
    params = with_data(source="lagged", lag=3, phi=0.8, n_points=80, noise_std=1.0, seed=5)
    series = lagged_series(params.data)
    y, clean = series["y"].to_numpy(), series["y_clean"].to_numpy()
    split, window, horizon = 60, params.data.window, 8
    origins = slice(0, len(y) - split - horizon + 1)
    windows = sliding_window_view(with_history(y[:split], y[split:], window), window)[origins]
    chunks = list(noise_floor_forecasts(params.data, clean[split:], windows, horizon, origins))
    floor = np.concatenate([forecast for _, forecast in chunks])
    for index in range(origins.stop):
        last = split + index - 1  # the last value observed at this origin
        for h in range(1, horizon + 1):
            k = math.ceil(h / 3)
            assert floor[index, h - 1] == pytest.approx(0.8**k * y[last + h - 3 * k], rel=1e-12)
            if h <= 3:
                assert floor[index, h - 1] == pytest.approx(clean[last + h], rel=1e-12)
    assert floor[0, 3] != pytest.approx(clean[split + 3])  # the old floor read y_{o+1}


def read_times(tmp_path: Path, cells: list[str]) -> pd.Series:
    """The time axis read from a CSV whose time column holds `cells`."""
    rows = "".join(f"{cell},{index}\n" for index, cell in enumerate(cells))
    (tmp_path / "s.csv").write_text("when,value\n" + rows, encoding="utf-8")
    params = with_data(source="csv", path="s.csv", column="value", time_column="when")
    return read_user_csv(params.data, tmp_path, params)["t"]


@pytest.mark.parametrize(
    ("cells", "first", "last"),
    [
        ([f"2020-01-{day:02d}" for day in range(1, 31)], "2020-01-01", "2020-01-30"),
        ([f"{1950 + m // 12}-{m % 12 + 1:02d}" for m in range(30)], "1950-01-01", "1952-06-01"),
        ([f"2021-03-04 {h:02d}:30" for h in range(24)]
         + [f"2021-03-05T{h:02d}:00:05" for h in range(6)],
         "2021-03-04 00:30:00", "2021-03-05 05:00:05"),
        ([f"{1850 + m // 12}-{m % 12 + 1:02d}-15" for m in range(30)], "1850-01-15", "1852-06-15"),
    ],
    ids=["daily", "year-month", "date-and-time", "before-1900"],
)  # fmt: skip
def test_iso_dates_are_the_time_axis(
    tmp_path: Path, cells: list[str], first: str, last: str
) -> None:
    times = read_times(tmp_path, cells)
    assert times.dtype.kind == "M"
    assert (times.iloc[0], times.iloc[-1]) == (pd.Timestamp(first), pd.Timestamp(last))


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("01/02/2020", "'01/02/2020' in column 'when' is not a date; expected ISO 8601 like"),
        ("2020-13-01", "'2020-13-01' in column 'when' is not a date"),
        ("2020-02-30", "'2020-02-30' in column 'when' is not a date"),
        ("last week", "'last week' in column 'when' is not a date"),
        ("2020", "'2020' in column 'when' is not a date"),
        ("2001-09-01 00:00", "'2001-09-01 00:00' in column 'when' lacks a UTC offset, unlike"),
    ],
)
def test_a_cell_that_is_not_a_date_is_named_with_its_line(
    tmp_path: Path, bad: str, expected: str
) -> None:
    cells = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(36)]
    if "lacks" in expected:
        cells = [f"{cell}-01 00:00+09:00" for cell in cells]
    cells[20] = bad
    with pytest.raises(UserError) as raised:
        read_times(tmp_path, cells)
    assert str(raised.value).startswith(f"s.csv, line 22: {expected}")


@pytest.mark.parametrize(
    ("swap", "expected"),
    [
        ({10: "2000-10"}, "s.csv, line 12: time 2000-10-01 does not come after 2000-10-01"),
        ({10: "2000-03-15"}, "s.csv, line 12: time 2000-03-15 does not come after 2000-10-01"),
        ({5: "2000-06-01 12:00", 6: "2000-06-01 06:00"},
         "s.csv, line 8: time 2000-06-01 06:00:00 does not come after 2000-06-01 12:00:00"),
    ],
    ids=["repeat", "backwards", "time-of-day"],
)  # fmt: skip
def test_dates_out_of_order_or_repeated_are_named(
    tmp_path: Path, swap: dict[int, str], expected: str
) -> None:
    cells = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(36)]
    for index, cell in swap.items():
        cells[index] = cell
    with pytest.raises(UserError, match=re.escape(expected)):
        read_times(tmp_path, cells)


def test_series_csv_keeps_dates_as_dates(tmp_path: Path) -> None:
    times = read_times(tmp_path, [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(36)])
    write_csv(tmp_path / "series.csv", pd.DataFrame({"t": times, "y": np.arange(36.0)}))
    assert (tmp_path / "series.csv").read_text().splitlines()[1] == "2000-01-01,0"
    back = read_series(tmp_path / "series.csv")
    assert back["t"].dtype.kind == "M" and back["t"].equals(times)
    params = with_data(source="csv", path="s.csv", column="value", time_column="when")
    assert series_labels(params.data, back).time == "when"
    write_csv(tmp_path / "numbers.csv", pd.DataFrame({"t": np.arange(3.0), "y": np.ones(3)}))
    assert read_series(tmp_path / "numbers.csv")["t"].dtype == np.float64


@pytest.mark.parametrize(
    ("cells", "first", "last"),
    [
        ([f"2018-01-{day:02d} 09:00:00+09:00" for day in range(1, 31)],
         "2018-01-01 00:00", "2018-01-30 00:00"),
        ([f"2018-01-{day:02d}T12:00Z" for day in range(1, 31)],
         "2018-01-01 12:00", "2018-01-30 12:00"),
        # Europe/Berlin over the change to summer time: 02:00 local does not exist that night.
        ([f"2018-03-25 {h:02d}:30:00+01:00" for h in range(2)]
         + [f"2018-03-25 {h:02d}:30:00+02:00" for h in range(3, 24)]
         + [f"2018-03-26 {h:02d}:30:00-0000" for h in range(7)],
         "2018-03-24 23:30", "2018-03-26 06:30"),
    ],
    ids=["offset", "zulu", "dst-change"],
)  # fmt: skip
def test_times_with_a_utc_offset_are_converted_to_utc_and_labelled_so(
    tmp_path: Path, cells: list[str], first: str, last: str
) -> None:
    times = read_times(tmp_path, cells)
    assert (times.iloc[0], times.iloc[-1]) == (
        pd.Timestamp(first, tz="UTC"),
        pd.Timestamp(last, tz="UTC"),
    )
    frame = pd.DataFrame({"t": times, "y": np.arange(len(cells), dtype=float)})
    write_csv(tmp_path / "series.csv", frame)
    back = read_series(tmp_path / "series.csv")
    assert (
        back["t"].dtype.kind == "M"
        and back["t"].dt.tz is None
        and back["t"].iloc[0] == pd.Timestamp(first)
    )
    params = with_data(source="csv", path="s.csv", column="value", time_column="when")
    assert series_labels(params.data, back).time == "when (UTC)"


def test_scale_refuses_a_generated_series_with_a_constant_training_part() -> None:
    params = with_data(source="lagged", lag=3, phi=0.8, n_points=80, noise_std=1.0, seed=5)
    values = np.concatenate([np.full(64, 2.5), np.arange(16.0)])
    with pytest.raises(UserError, match=re.escape(
        "data/raw/series.csv: column 'y' is constant over the training part (its first 64"
    )):  # fmt: skip
        check_learnable(values, params, "data/raw/series.csv", "y")
    check_learnable(np.arange(80.0), params, "data/raw/series.csv", "y")
