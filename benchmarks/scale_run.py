"""Section 3: a 10^6-point series with a window of 100 through the real pipeline, one epoch.

Every stage must complete with a peak RSS (the stage process's ru_maxrss, recorded by
stage_probe) under 1 GiB. Reports each stage's time and the training and prediction rates
measured around train_model and predict inside the stages. One run: it is a capacity check.
"""

from pathlib import Path
from typing import Any

from benchmarks.pipeline_loop import stage_count
from benchmarks.probed_repo import ProbedRepo, ReproResult, StageRecord, distinct_entries
from benchmarks.report import Row, mebibytes, rate, seconds, verdict
from tests.conftest import make_pipeline_repo

SECTION = "3 scale"
RSS_LIMIT_KIB = 1024 * 1024


def scale_params(n_points: int, window: int) -> dict[str, int]:
    return {"data.n_points": n_points, "data.window": window, "train.epochs": 1, "train.repeats": 1}


def stage_row(record: StageRecord) -> Row:
    rates = [
        f"{label} {rate(value)}"
        for label, value in (
            ("train", record.call_rate("train_model")),
            ("predict", record.call_rate("predict")),
        )
        if value
    ]
    return Row(
        SECTION,
        f"{record.stage}: time, peak RSS",
        f"{seconds(record.wall)} (start-up {record.startup:.1f}, work {record.work:.1f}), "
        f"{mebibytes(record.maxrss_kib)}" + (f"; {', '.join(rates)} windows" if rates else ""),
        "completes, < 1 GiB",
        verdict(record.complete and record.maxrss_kib < RSS_LIMIT_KIB),
    )


def run(workdir: Path, base_params: dict[str, Any], n_points: int, window: int) -> list[Row]:
    """A fresh copy at the scaled params, so every stage runs: each distinct network once, no
    tuning (a trial at this size takes minutes; section 7 times tuning)."""
    models = distinct_entries(base_params["models"])
    params = {**base_params, **scale_params(n_points, window), "models": models}
    repo = ProbedRepo(make_pipeline_repo(workdir / "scale", {**params, "tune.n_trials": 0}))
    folds = len(repo.repo.params()["evaluate"]["folds"])
    return summarize(n_points, window, repo.repro(check=False), stage_count(len(models), folds))


def summarize(n_points: int, window: int, result: ReproResult, stages: int) -> list[Row]:
    """Rows from one full `dvc repro` of `stages` stages at the scaled params (the smoke run
    passes its own)."""
    complete = result.returncode == 0 and len(result.stages) == stages
    complete = complete and all(r.complete for r in result.stages)
    return [
        Row(
            SECTION,
            f"n={n_points:,}, window {window}, 1 epoch: `dvc repro`",
            f"{seconds(result.wall)}, {len(result.stages)} stages ran, exit {result.returncode}",
            f"all {stages} stages complete",
            verdict(complete),
        ),
        *(stage_row(record) for record in result.stages),
    ]
