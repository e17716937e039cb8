"""Section 2: the edit-repro loop through the real `dvc repro` in a temporary project copy.

Measures, at the given params (the real params.yaml's defaults in `make bench`): the full
pipeline from a clean copy, each stage split into start-up and work, which heavy modules each
stage loads, the full run at `train.repeats` against the same with one repeat, the one-repeat
run against one untracked script doing the same work, a no-op repro, and an edit of one model's
hidden size (which must re-run exactly that model's tune and train stages and the evaluation).
The three kinds of run alternate, so a busy spell hits all of them.
"""

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.probed_repo import ProbedRepo, ReproResult, children_cpu, median_by_stage
from benchmarks.report import Row, ratio, seconds, verdict
from tests.conftest import make_pipeline_repo

SECTION = "2 edit-repro"
UNTRACKED_SCRIPT = Path(__file__).with_name("untracked_pipeline.py")
FULL_VS_UNTRACKED_TARGET = 2.5  # with one repeat per model
REPEATS_VS_SINGLE_TARGET = 3.0
NO_OP_TARGET_S = 1.0
EDIT_SHARE_TARGET = 0.5
# Of a full run's wall time, what is not the stages' work (start-ups, tracking, exits, DVC).
OUTSIDE_WORK_TARGET = 0.15
# A one-entry edit's `dvc repro` against the work of the stages it runs.
EDIT_VS_WORK_TARGET = 1.3
EDITED_MODEL = "rnn"


def expected_after_edit(folds: list[int]) -> list[str]:
    """The stages an edit of the entry EDITED_MODEL runs, in DVC's order: check_params (it
    validates the whole params.yaml, in 0.2 s), the entry's tune and train stages of every
    fold, evaluate."""
    return [
        "check_params",
        *(f"tune@{EDITED_MODEL}-{fold}" for fold in folds),
        *(f"train@{EDITED_MODEL}-{fold}" for fold in folds),
        "evaluate",
    ]


# Heavy modules a stage has no use for: generate and scale never touch torch or scikit-learn.
UNUSED_MODULES = {"generate": ("torch", "sklearn"), "scale": ("torch", "sklearn")}


def run_untracked(repo: ProbedRepo, out: Path) -> tuple[float, float]:
    """Wall and CPU time of the single untracked script on the copy's params and code."""
    env = {**repo.repo.env, "PYTHONPATH": str(repo.root / "src")}
    command = [sys.executable, str(UNTRACKED_SCRIPT), str(repo.root / "params.yaml"), str(out)]
    cpu_before, started = children_cpu(), time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started, children_cpu() - cpu_before


@dataclass
class FullRuns:
    """Full runs from clean copies: at the params' repeats, with one repeat, and untracked."""

    repeated: list[ReproResult] = field(default_factory=list)
    single: list[ReproResult] = field(default_factory=list)
    untracked: list[tuple[float, float]] = field(default_factory=list)


def full_runs(workdir: Path, params: dict[str, Any], count: int) -> tuple[FullRuns, ProbedRepo]:
    """`count` rounds, each copy fresh (clean outputs, empty MLflow store); the last copy at the
    params' repeats is returned for the sections that continue from it."""
    runs = FullRuns()
    for index in range(count):
        one_repeat = {**params, "train.repeats": 1}
        single = ProbedRepo(make_pipeline_repo(workdir / f"single-{index}", one_repeat))
        runs.single.append(single.repro())
        runs.untracked.append(run_untracked(single, workdir / f"untracked-{index}"))
        if params.get("train.repeats") == 1:  # the one-repeat run is the full run (smoke sizes)
            repo = single
            runs.repeated.append(runs.single[-1])
            continue
        repo = ProbedRepo(make_pipeline_repo(workdir / f"full-{index}", params))
        runs.repeated.append(repo.repro())
    return runs, repo


def stage_rows(results: list[ReproResult]) -> list[Row]:
    """Per stage: wall = start-up (imports, torch setup, store) + work + finish."""
    walls = median_by_stage(results, "wall")
    parts = {
        field: median_by_stage(results, field)
        for field in ("imports", "torch_setup", "open_store", "work", "tracking_in_work", "finish")
    }
    rows = []
    for stage, wall in walls.items():
        p = {field: values[stage] for field, values in parts.items()}
        startup = p["imports"] + p["torch_setup"] + p["open_store"]
        rows.append(
            Row(
                SECTION,
                f"full run: {stage}",
                f"{seconds(wall)} = start-up {seconds(startup)} (imports {p['imports']:.2f}, "
                f"torch setup {p['torch_setup']:.2f}, open store {p['open_store']:.2f}) + work "
                f"{seconds(p['work'])} (tracking {p['tracking_in_work']:.2f}) + close/exit "
                f"{seconds(p['finish'])}",
            )
        )
    return rows


def import_rows(result: ReproResult) -> list[Row]:
    """Which heavy modules each stage had loaded when it exited."""
    rows = []
    for record in result.stages:
        forbidden = UNUSED_MODULES.get(record.stage, ())
        unused = [name for name in forbidden if name in record.modules]
        target = f"no {', '.join(forbidden)}" if forbidden else ""
        rows.append(
            Row(
                SECTION,
                f"modules loaded: {record.stage}",
                ", ".join(record.modules) or "none of the heavy ones",
                target,
                verdict(not unused) if target else "",
            )
        )
    return rows


def stage_count(entries: int, folds: int) -> int:
    """Stages of a full run: check_params, generate, scale and evaluate, and tune@ and train@
    per entry and fold."""
    return 4 + 2 * entries * folds


def summary_rows(runs: FullRuns, repeats: int, stages: int) -> list[Row]:
    """Verdicts on wall time (what users wait for); CPU time shows what host load hid."""
    results = runs.repeated
    full = statistics.median(result.wall for result in results)
    single = statistics.median(result.wall for result in runs.single)
    single_cpu = statistics.median(result.cpu for result in runs.single)
    script = statistics.median(wall for wall, _ in runs.untracked)
    script_cpu = statistics.median(cpu for _, cpu in runs.untracked)
    stage_sum = statistics.median(sum(r.wall for r in result.stages) for result in results)
    complete = all(
        len(result.stages) == stages and all(r.complete for r in result.stages)
        for result in [*results, *runs.single]
    )
    work = statistics.median(sum(r.work for r in result.stages) for result in results)
    outside = 1 - work / full
    return [
        Row(
            SECTION,
            "full run: share of wall time outside the stages' work",
            f"1 - {seconds(work)} / {seconds(full)} = {outside:.0%} (start-ups, tracking, "
            "exits, DVC)",
            f"<= {OUTSIDE_WORK_TARGET:.0%}",
            verdict(outside <= OUTSIDE_WORK_TARGET),
        ),
        Row(
            SECTION,
            f"full `dvc repro` from clean, {repeats} repeats (median of {len(results)})",
            f"{seconds(full)}; stage processes {seconds(stage_sum)}, dvc itself "
            f"{seconds(full - stage_sum)}",
            f"all {stages} stages complete",
            verdict(complete),
        ),
        Row(
            SECTION,
            f"full run, {repeats} repeats / 1 repeat",
            f"{seconds(full)} / {seconds(single)} = {ratio(full / single)}",
            f"<= {REPEATS_VS_SINGLE_TARGET:g}x",
            verdict(full / single <= REPEATS_VS_SINGLE_TARGET),
        ),
        Row(
            SECTION,
            "full run, 1 repeat / one untracked script, same work",
            f"{seconds(single)} / {seconds(script)} = {ratio(single / script)} (CPU: "
            f"{seconds(single_cpu)} / {seconds(script_cpu)} = {ratio(single_cpu / script_cpu)})",
            f"<= {FULL_VS_UNTRACKED_TARGET:g}x",
            verdict(single / script <= FULL_VS_UNTRACKED_TARGET),
        ),
    ]


def no_op_rows(repo: ProbedRepo, repeats: int) -> list[Row]:
    results = [repo.repro() for _ in range(repeats)]
    wall = statistics.median(result.wall for result in results)
    ran = sorted({name for result in results for name in result.stage_names})
    return [
        Row(
            SECTION,
            f"no-op `dvc repro` (median of {repeats})",
            f"{seconds(wall)}, stages run: {', '.join(ran) or 'none'}",
            f"< {NO_OP_TARGET_S:g} s, none run",
            verdict(wall < NO_OP_TARGET_S and not ran),
        )
    ]


def edit_rows(repo: ProbedRepo, repeats: int, full: float) -> list[Row]:
    """Edit models.<EDITED_MODEL>.hidden_size to a new value each time (no run-cache hit)."""
    hidden = int(repo.repo.params()["models"][EDITED_MODEL]["hidden_size"])
    results = []
    for step in range(1, repeats + 1):
        repo.edit_params({f"models.{EDITED_MODEL}.hidden_size": hidden + step})
        results.append(repo.repro())
    repo.edit_params({f"models.{EDITED_MODEL}.hidden_size": hidden})
    wall = statistics.median(result.wall for result in results)
    work = statistics.median(sum(r.work for r in result.stages) for result in results)
    ran = [result.stage_names for result in results]
    expected = expected_after_edit(repo.repo.params()["evaluate"]["folds"])
    exact = all(names == expected for names in ran)
    return [
        Row(
            SECTION,
            f"edit models.{EDITED_MODEL}.hidden_size: stages run",
            "; ".join(", ".join(names) for names in ran),
            f"exactly {', '.join(expected)}",
            verdict(exact),
        ),
        Row(
            SECTION,
            f"edit models.{EDITED_MODEL}.hidden_size: repro time / its stages' work",
            f"{seconds(wall)} / {seconds(work)} = {ratio(wall / work)}",
            f"<= {EDIT_VS_WORK_TARGET:g}x",
            verdict(wall / work <= EDIT_VS_WORK_TARGET),
        ),
        Row(
            SECTION,
            f"edit models.{EDITED_MODEL}.hidden_size: repro time / full (median of {repeats})",
            f"{seconds(wall)} / {seconds(full)} = {wall / full:.2f}",
            f"<= {EDIT_SHARE_TARGET:g}",
            verdict(wall / full <= EDIT_SHARE_TARGET),
        ),
    ]


def run(
    workdir: Path, params: dict[str, Any], full_repeats: int, no_op_repeats: int, edit_repeats: int
) -> tuple[list[Row], ProbedRepo, ReproResult]:
    """All rows of the section, the last copy (outputs built) and its full run, for reuse."""
    runs, repo = full_runs(workdir, params, full_repeats)
    results = runs.repeated
    full = statistics.median(result.wall for result in results)
    rows = [
        *summary_rows(
            runs,
            int(repo.repo.params()["train"]["repeats"]),
            stage_count(
                len(repo.repo.params()["models"]), len(repo.repo.params()["evaluate"]["folds"])
            ),
        ),
        *stage_rows(results),
        *import_rows(results[-1]),
        *no_op_rows(repo, no_op_repeats),
        *edit_rows(repo, edit_repeats, full),
    ]
    return rows, repo, results[-1]
