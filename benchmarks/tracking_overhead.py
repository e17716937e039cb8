"""Section 4: what tracking costs against a real MLflow server on 127.0.0.1.

Two numbers: logging 1,000 epochs of train/val loss for one run through StageRun.log_metrics
and flush (the path the training stage uses), and the share of a training stage's work that
is tracking (every StageRun call inside the stage's work, the repeats' runs included, timed by
stage_probe) at the given params with one repeat, with the stage run directly against the
server.
"""

import os
import statistics
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from benchmarks.probed_repo import ProbedRepo, ReproResult
from benchmarks.report import Row, seconds, verdict
from lstm_vs_rnn.tracking.runs import StageRun
from tests.conftest import running_mlflow_server

SECTION = "4 tracking"
LOGGING_TARGET_S = 2.0
SHARE_TARGET = 0.20
QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def log_epochs(client: MlflowClient, experiment_id: str, epochs: int) -> tuple[float, int]:
    """Seconds to log `epochs` epochs and flush, and how many val_loss points the server kept."""
    parent = client.create_run(experiment_id, run_name="parent").info.run_id
    child = client.create_run(experiment_id, run_name="train@bench").info.run_id
    run = StageRun(client, child, parent, experiment_id)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        run.log_metrics({"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch}, step=epoch)
    run.flush()
    elapsed = time.perf_counter() - started
    stored = len(client.get_metric_history(child, "val_loss"))
    client.set_terminated(child)
    client.set_terminated(parent)
    return elapsed, stored


def logging_row(url: str, epochs: int, repeats: int) -> Row:
    os.environ[QUIET] = "true"  # MLflow would print a "View run" link per run to stdout
    client = MlflowClient(url)
    experiment_id = client.create_experiment(f"bench-logging-{time.time_ns()}")
    samples = [log_epochs(client, experiment_id, epochs) for _ in range(repeats)]
    elapsed = statistics.median(seconds_ for seconds_, _ in samples)
    complete = all(stored == epochs for _, stored in samples)
    return Row(
        SECTION,
        f"log {epochs:,} epochs x 2 metrics, one run (median of {repeats})",
        f"{seconds(elapsed)}, {samples[-1][1]:,} of {epochs:,} epochs stored",
        f"< {LOGGING_TARGET_S:g} s, all stored",
        verdict(elapsed < LOGGING_TARGET_S and complete),
    )


def share_rows(repo: ProbedRepo, url: str, models: list[str], repeats: int) -> list[Row]:
    """At one training repeat (the target's setting); the copy's params are restored after."""
    trainings = int(repo.repo.params()["train"]["repeats"])
    repo.edit_params({"train.repeats": 1})
    try:
        return [share_row(repo, url, name, repeats) for name in models]
    finally:
        repo.edit_params({"train.repeats": trainings})


def share_row(repo: ProbedRepo, url: str, name: str, repeats: int) -> Row:
    results: list[ReproResult] = [
        repo.stage(f"train@{name}-0", {"MLFLOW_TRACKING_URI": url}) for _ in range(repeats)
    ]
    records = [result.stages[0] for result in results]
    share = statistics.median(r.tracking_in_work / r.work for r in records)
    work = statistics.median(r.work for r in records)
    tracking = statistics.median(r.tracking_in_work for r in records)
    detail = breakdown(records[-1].raw["tracking_seconds"])
    return Row(
        SECTION,
        f"train@{name}-0, 1 repeat: tracking share of work, server (median of {repeats})",
        f"{tracking:.2f} s of {seconds(work)} = {share:.0%} ({detail}); start-up "
        f"{seconds(statistics.median(r.startup for r in records))}",
        f"< {SHARE_TARGET:.0%}",
        verdict(share < SHARE_TARGET),
    )


def breakdown(tracking_seconds: dict[str, float]) -> str:
    """The two largest tracking calls inside the work, to say where the time goes."""
    work = {
        k.removeprefix("work:"): v for k, v in tracking_seconds.items() if k.startswith("work:")
    }
    top = sorted(work.items(), key=lambda item: -item[1])[:2]
    return ", ".join(f"{name} {value:.2f}" for name, value in top)


def run(
    workdir: Path,
    repo: ProbedRepo,
    models: list[str],
    epochs: int,
    logging_repeats: int,
    stage_repeats: int,
) -> list[Row]:
    """`repo` must hold the scale stage's outputs for the params the share is measured at."""
    with running_mlflow_server(workdir / "mlflow-server") as server:
        url = server.uri
        return [
            logging_row(url, epochs, logging_repeats),
            *share_rows(repo, url, models, stage_repeats),
        ]
