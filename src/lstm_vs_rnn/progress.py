"""What a long stage shows while it works: one live line in a terminal, a line per job in a log.

In a terminal (stderr is a TTY) the stage keeps one line up to date: jobs done of total, the
epoch each running job is at, elapsed and remaining time. In a pipe or a log file nothing is
written per epoch; each finished job prints one line, so a log of a long run stays short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

# A terminal line is redrawn at most this often, in seconds.
REDRAW_INTERVAL_S = 0.2
CLEAR_TO_END_OF_LINE = "\x1b[K"


def format_seconds(seconds: float) -> str:
    """`75.4` -> `1:15`; hours as `1:02:03`."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StageProgress:
    """Progress of `total` jobs of `epochs` epochs each, e.g. the repeats of a training stage.

    Remaining time is elapsed time scaled by the epochs still to run over those done, so it
    counts the jobs that run side by side.
    """

    def __init__(self, stage: str, total: int, epochs: int, stream: TextIO | None = None) -> None:
        self.stage = stage
        self.total = total
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.done = 0
        self._epoch_of: dict[int, int] = {}  # running job -> its last finished epoch
        self._epochs_done = 0
        self._last_draw = 0.0

    def epoch_done(self, job: int, epoch: int) -> None:
        """Job `job` finished epoch `epoch` (1-based)."""
        self._epoch_of[job] = epoch
        self._epochs_done += 1
        if self.live and time.monotonic() - self._last_draw >= REDRAW_INTERVAL_S:
            self._draw()

    def job_done(self, job: int, summary: str) -> None:
        """Job `job` finished; `summary` is its one line in a log (e.g. its final losses)."""
        self._epoch_of.pop(job, None)
        self.done += 1
        if self.live:
            self._draw()
        else:
            print(
                f"{self.stage}: {self.done}/{self.total} done ({summary}), "
                f"{format_seconds(self.elapsed())} elapsed",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        """End the live line (a terminal's next output starts on a line of its own)."""
        if self.live and self._last_draw:
            self._draw()
            print(file=self.stream, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        """The live line's text."""
        running = ", ".join(
            f"#{job} epoch {epoch}/{self.epochs}" for job, epoch in sorted(self._epoch_of.items())
        )
        remaining = "?"
        if self._epochs_done:
            left = self.total * self.epochs - self._epochs_done
            remaining = format_seconds(self.elapsed() * left / self._epochs_done)
        return (
            f"{self.stage}: {self.done}/{self.total} done"
            + (f" | {running}" if running else "")
            + f" | {format_seconds(self.elapsed())} elapsed, ~{remaining} left"
        )

    def _draw(self) -> None:
        self._last_draw = time.monotonic()
        self.stream.write(f"\r{self.line()}{CLEAR_TO_END_OF_LINE}")
        self.stream.flush()
