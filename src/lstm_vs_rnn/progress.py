"""What a long stage shows while it works: one live line in a terminal, a line per job in a log.

In a terminal (stderr is a TTY) the stage keeps one line up to date with tqdm: jobs done of
total, the epoch each running job is at, elapsed and remaining time. In a pipe or a log file
nothing is written per epoch; each finished job prints one line, so a log of a long run stays
short.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from tqdm import tqdm

# A terminal line is redrawn at most this often, in seconds.
REDRAW_INTERVAL_S = 0.2
# The live line after the running jobs: tqdm counts epochs, so its remaining time is the elapsed
# time scaled by the epochs still to run over those done (smoothing=0: the mean rate).
LIVE_TIMES = " | {elapsed} elapsed, ~{remaining} left"
# The size given to tqdm for a terminal that reports none (0 x 0, e.g. a new pseudo-terminal,
# which tqdm would take for one too small to show anything): the line is not cut.
UNKNOWN_SIZE = sys.maxsize


class StageProgress:
    """Progress of `total` jobs of `epochs` epochs each, e.g. the repeats of a training stage.

    Remaining time counts epochs, not jobs, so it counts the jobs that run side by side.
    """

    def __init__(self, stage: str, total: int, epochs: int, stream: TextIO | None = None) -> None:
        self.stage = stage
        self.total = total
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.done = 0
        self._epoch_of: dict[int, int] = {}  # running job -> its last finished epoch
        self._bar: tqdm | None = None
        if self.stream.isatty():
            self._bar = tqdm(
                total=total * epochs,
                desc=self.description(),
                file=self.stream,
                bar_format="{desc}" + LIVE_TIMES,
                mininterval=REDRAW_INTERVAL_S,
                miniters=1,
                smoothing=0,
                **terminal_size(self.stream),
            )

    def epoch_done(self, job: int, epoch: int) -> None:
        """Job `job` finished epoch `epoch` (1-based)."""
        self._epoch_of[job] = epoch
        if self._bar is not None:
            self._bar.set_description_str(self.description(), refresh=False)
            self._bar.update()  # redraws at most every REDRAW_INTERVAL_S

    def job_done(self, job: int, summary: str) -> None:
        """Job `job` finished; `summary` is its one line in a log (e.g. its final losses)."""
        self._epoch_of.pop(job, None)
        self.done += 1
        if self._bar is not None:
            self._bar.set_description_str(self.description())
        else:
            print(
                f"{self.stage}: {self.done}/{self.total} done ({summary}), "
                f"{tqdm.format_interval(time.monotonic() - self.started)} elapsed",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        """End the live line (a terminal's next output starts on a line of its own)."""
        if self._bar is not None:
            self._bar.close()

    def description(self) -> str:
        """The live line up to its times: jobs done, and each running job's epoch."""
        running = ", ".join(
            f"#{job} epoch {epoch}/{self.epochs}" for job, epoch in sorted(self._epoch_of.items())
        )
        return f"{self.stage}: {self.done}/{self.total} done" + (f" | {running}" if running else "")


def terminal_size(terminal: TextIO) -> dict[str, int]:
    """tqdm's `ncols` and `nrows` for `terminal`: the columns a live line may fill without
    wrapping (a wrapped line cannot be redrawn in place) and the rows; UNKNOWN_SIZE for a
    terminal that reports no size."""
    columns, lines = os.get_terminal_size(terminal.fileno())
    return {
        "ncols": columns - 1 if columns > 1 else UNKNOWN_SIZE,
        "nrows": lines if lines > 0 else UNKNOWN_SIZE,
    }
