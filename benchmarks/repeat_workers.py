"""Section 9: training repeats on 1 worker against 2, by series length.

Each size is a fresh project copy (default params but `data.n_points`), generated and scaled
(at smoke sizes, a copy of the edit-repro section's, which ran the whole pipeline), whose
`train@<entry>-0` stage (the first LSTM entry, else the first entry) is timed as `dvc repro`
runs it, with `train.workers` 1 and 2 in turn (alternating, so a busy spell hits both). With
one worker the repeats run in the stage's own process; with two, each spawned worker first
imports what a repeat needs (torch, the training code), so two workers pay off only once the
repeats outweigh those start-ups.
"""

import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.report import Row, ratio, seconds, verdict
from tests.conftest import PipelineRepo, copy_project, make_pipeline_repo

SECTION = "9 repeat workers"


def scaled_copy(root: Path, params: dict[str, Any], n_points: int) -> PipelineRepo:
    repo = make_pipeline_repo(root, {**params, "data.n_points": n_points})
    repo.stage("generate")
    repo.stage("scale")
    return repo


def prepared_copy(
    root: Path, params: dict[str, Any], n_points: int, built: PipelineRepo | None
) -> PipelineRepo:
    """A scaled copy whose timed entry's tune stage ran: a copy of `built` when that one ran at
    `n_points` (smoke sizes: every stage process costs seconds), else a fresh one."""
    if built is not None and built.params()["data"]["n_points"] == n_points:
        return copy_project(built.root, root)
    repo = scaled_copy(root, params, n_points)
    repo.stage(f"tune@{timed_entry(repo)}-0")
    return repo


def timed_entry(repo: PipelineRepo) -> str:
    models = repo.params()["models"]
    lstm = [name for name, model in models.items() if model["arch"] == "lstm"]
    return (lstm or list(models))[0]


def timed_train(repo: PipelineRepo, entry: str, workers: int) -> float:
    repo.edit_params({"train.workers": workers})
    started = time.perf_counter()
    repo.stage(f"train@{entry}-0")
    return time.perf_counter() - started


def run(
    workdir: Path,
    params: dict[str, Any],
    sizes: tuple[int, ...],
    repeats: int,
    built: PipelineRepo | None = None,
) -> list[Row]:
    """One row per size (the first is the default size, which carries the target), and the
    smallest size at which two workers were faster. `built`: a copy where the whole pipeline
    ran at `params`, reused for the size it ran at."""
    rows, faster_from = [], None
    for index, n_points in enumerate(sizes):
        repo = prepared_copy(workdir / f"repeat-workers-{n_points}", params, n_points, built)
        entry = timed_entry(repo)
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(repeats):
            for workers in (1, 2):
                times[workers].append(timed_train(repo, entry, workers))
        one, two = statistics.median(times[1]), statistics.median(times[2])
        if two < one and faster_from is None:
            faster_from = n_points
        rows.append(
            Row(
                SECTION,
                f"train@{entry}-0, {repo.params()['train']['repeats']} repeats, {n_points} points: "
                f"2 workers / 1 (median of {repeats})",
                f"{seconds(two)} / {seconds(one)} = {ratio(two / one)}",
                "< 1x" if index == 0 else "",
                verdict(two < one) if index == 0 else "",
            )
        )
    found = f"from {faster_from} points on" if faster_from else "at none of these sizes"
    rows.append(Row(SECTION, "2 workers faster than 1", found))
    return rows
