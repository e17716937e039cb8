"""The time axis of a series: numbers (a year, a step) or ISO 8601 dates, and how to show one.

Dates with a UTC offset (`2018-01-04 09:00:00+09:00`, `...Z`, a DST change of offset) are
converted to UTC, so that the axis is one zone and in order across a change of offset.
"""

import re

import numpy as np
import pandas as pd

# YYYY-MM (a month), YYYY-MM-DD, optionally with HH:MM[:SS[.fff]] and a UTC offset (Z, +09:00,
# -0500): the forms pandas reads without guessing the order of day and month.
UTC_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)"
ISO_DATE = re.compile(
    rf"\d{{4}}-\d{{2}}(-\d{{2}}([ T]\d{{2}}:\d{{2}}(:\d{{2}}(\.\d+)?)?{UTC_OFFSET}?)?)?"
)
ENDS_IN_OFFSET = re.compile(rf"[ T]\d{{2}}:\d{{2}}(:\d{{2}}(\.\d+)?)?{UTC_OFFSET}$")


def is_iso_date(cell: str) -> bool:
    """A date pandas reads unambiguously: YYYY-MM, YYYY-MM-DD, optionally with a time."""
    if not ISO_DATE.fullmatch(cell):
        return False
    try:
        pd.to_datetime(cell, format="ISO8601")
    except (ValueError, OverflowError):
        return False
    return True


def has_utc_offset(cell: str) -> bool:
    """Whether an ISO 8601 date and time ends in a UTC offset: `Z`, `+09:00`, `-0500`."""
    return ENDS_IN_OFFSET.search(cell) is not None


def time_text(value: object) -> str:
    """A time as a person reads it: 2020-01-01 for a date (with the time if it has one), 1749
    for a number."""
    if isinstance(value, pd.Timestamp | np.datetime64):
        stamp = pd.Timestamp(value)
        return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat(" ")
    return f"{value:g}"


def numeric_time(t: np.ndarray) -> np.ndarray:
    """Times as numbers on one axis, shape (n,): numbers unchanged (dtype too), dates as
    decimal years (1950-01-01 is 1950.0, 1950-07-02 is 1950.5). DVC's plot templates give x one
    Vega-Lite type for every series, so a dated series is drawn over numbers too."""
    if not np.issubdtype(np.asarray(t).dtype, np.datetime64):
        return np.asarray(t)
    stamps = pd.DatetimeIndex(t)
    years = stamps.to_period("Y")
    start, end = years.to_timestamp(), (years + 1).to_timestamp()
    return np.asarray(stamps.year + (stamps - start) / (end - start), dtype=np.float64)
