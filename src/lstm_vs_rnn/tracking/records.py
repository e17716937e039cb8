"""Metrics, params and tags as MLflow records, sent in batches of the sizes MLflow accepts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lstm_vs_rnn.errors import redact

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient


# MLflow accepts at most 1000 metrics in one log_batch call.
MAX_METRICS_PER_BATCH = 1000

# A configuration has one run per stage execution and training repeat: far fewer than this.
MAX_SEARCH_RESULTS = 50_000


def log_metrics_batched(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])


def log_metrics_now(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    """Single-valued metrics (step 0) written into another run than the stage's own."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    log_metrics_batched(client, run_id, [Metric(k, float(v), now, 0) for k, v in metrics.items()])


# Markers of a store refusing an insert because a concurrent writer inserted the same key first
# (PostgreSQL through a server, SQLite, MySQL): MLflow looks a key up, then inserts it.
DUPLICATE_KEY_MARKERS = ("UniqueViolation", "UNIQUE constraint failed", "Duplicate entry")
# Tries of a write that lost such a race; the next try updates the row the winner wrote.
WRITE_TRIES = 5


def write_concurrently(write: Callable[[], None]) -> None:
    """Run an idempotent store write that other machines may be making at the same moment (a
    duplicate parent's tags and metrics, moved by every stage that merges it).

    Two writers of one new tag or metric race between MLflow's lookup and its insert, and the
    loser gets a duplicate-key error; the write is retried and then updates the winner's row.
    Any other refusal is raised at once.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(WRITE_TRIES):
        try:
            write()
            return
        except MlflowException as error:
            lost_race = any(marker in str(error) for marker in DUPLICATE_KEY_MARKERS)
            if not lost_race or attempt == WRITE_TRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def run_tags(tags: dict[str, str]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(key, value) for key, value in tags.items()]


def log_params_batched(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Log `params` as text (None as "null"), any URL's password masked (`tune.storage` may
    hold one: `postgresql://user:***@host/db`)."""
    from mlflow.entities import Param

    items = [Param(key, param_text(value)) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def param_text(value: Any) -> str:
    """A param value as MLflow logs it: text, None as "null", a URL's password masked."""
    return "null" if value is None else redact(str(value))


def flatten_metrics(
    metrics: dict[str, Any], prefix: str = ""
) -> tuple[dict[str, float], dict[str, str]]:
    """metrics.json as MLflow metrics (numbers) and tags (verdicts, which are text); an "n/a"
    statistic (too few repeats) becomes neither."""
    numbers: dict[str, float] = {}
    verdicts: dict[str, str] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            inner_numbers, inner_verdicts = flatten_metrics(value, f"{name}.")
            numbers.update(inner_numbers)
            verdicts.update(inner_verdicts)
        elif key == "verdict":
            verdicts[name] = str(value)
        elif isinstance(value, int | float):
            numbers[name] = float(value)
    return numbers, verdicts
