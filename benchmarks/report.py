"""The one table `make bench` prints, and the timing helper every section shares.

Rows carry a verdict against their target instead of asserting: benchmarks are measurements,
and a missed target must be reported with its numbers, not hidden behind a failed run.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

MET, MISSED, INFO = "met", "MISSED", ""


@dataclass(frozen=True)
class Row:
    """One line of the table: what was measured, its value, the target and the verdict."""

    section: str
    measurement: str
    value: str
    target: str = ""
    verdict: str = INFO


def verdict(ok: bool) -> str:
    return MET if ok else MISSED


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls; the median ignores one-off stalls of a busy host."""
    return statistics.median(timed(action) for _ in range(repeats))


def timed(action: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds `action` takes on `clock`: wall time unless a section asks for CPU time."""
    started = clock()
    action()
    return clock() - started


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def mebibytes(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def render(rows: list[Row], header: str) -> str:
    """A plain-text table, aligned, one row per measurement, sections in running order."""
    columns = ("section", "measurement", "value", "target", "verdict")
    cells = [columns, *((r.section, r.measurement, r.value, r.target, r.verdict) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [header, ""]
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    missed = sum(row.verdict == MISSED for row in rows)
    met = sum(row.verdict == MET for row in rows)
    lines += ["", f"targets: {met} met, {missed} missed"]
    return "\n".join(line.rstrip() for line in lines)
