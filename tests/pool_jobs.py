"""Jobs for tests of `lstm_vs_rnn.workers`: importable by name in the pool's spawned workers."""

import os
import time

from lstm_vs_rnn.workers import report


def report_then_return(job: int, n_events: int, size: int) -> int:
    """Report `n_events` events of `size` bytes each, then return at once: the result can
    reach the parent before the last events do."""
    for number in range(n_events):
        report((job, number, b"x" * size))
    return job


def report_pid_then_sleep(job: int, seconds: float) -> int:
    """Report this worker's pid, then sleep `seconds`: a job to kill its worker under."""
    report((job, os.getpid()))
    time.sleep(seconds)
    return job
