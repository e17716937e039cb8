"""Section 6: this code against a base commit's, in the same run, on the same machine.

The base is a commit of this repository (`BENCH_BASE`, default `BASE_COMMIT`: the code before
training ran its repeats on worker processes), exported with `git archive` into a project copy
of its own; the current code is a copy like every other section's. Both run the same params,
alternating, and the medians are compared: the default pipeline's wall time (target: at most
0.6x the base's), each stage's start-up (target: at most half the base's), and a no-op
`dvc repro` against `dvc status` on the same repository (within 1.2x). Both copies run their
stages under stage_probe (probed_repo.py), so a stage's start-up is measured the same way for
both: process start to its first useful work (imports, torch's set-up, opening the store)
plus its last work to exit (closing the run, the interpreter's exit).
"""

import io
import os
import statistics
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.probed_repo import REPO_ROOT, ProbedRepo, ReproResult, StageRecord
from benchmarks.report import Row, seconds, verdict
from lstm_vs_rnn.params import parse_yaml
from lstm_vs_rnn.processes import usable_cores
from tests.conftest import TINY_PARAMS, PipelineRepo, clean_env, make_pipeline_repo

SECTION = "6 vs base"
# The last commit before issue 17 (repeats on one process, one after another).
BASE_COMMIT = "ecd04b6"
PIPELINE_TARGET = 0.6
STARTUP_TARGET = 0.5
NO_OP_TARGET = 1.2


def base_commit() -> str:
    return os.environ.get("BENCH_BASE", BASE_COMMIT)


def git_show(commit: str, path: str) -> str:
    """A file of this repository at `commit`."""
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), "show", f"{commit}:{path}"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout


def base_repo(root: Path, commit: str, params: dict[str, Any]) -> PipelineRepo:
    """A git + DVC project holding `commit`'s tracked files (its .dvc/ folder included), with
    the same params as `make_pipeline_repo` gives the current code."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    root.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    repo = PipelineRepo(root, clean_env())
    repo.run("git", "init", "-q", "-b", "main")
    repo.edit_params(known_to(repo.params(), {**TINY_PARAMS, **params}))
    repo.commit(f"base {commit}")
    return repo


def same_job(params: dict[str, Any], base_params: dict[str, Any]) -> dict[str, Any]:
    """`params` narrowed to the job both codes can run: no tuning, and only the model entries
    the base's params.yaml has (at `make bench`'s full size its default 4 entries x 10
    repeats), each without the keys the base's entry lacks (e.g. `tune: false`)."""
    base_models = base_params["models"]
    models = {
        name: {key: value for key, value in entry.items() if key in base_models[name]}
        for name, entry in params["models"].items()
        if name in base_models
    }
    return {**params, "models": models, "tune.n_trials": 0}


def known_to(base_params: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` without the keys the base's params lack: settings of features newer than the
    base (e.g. `tune.n_trials: 0`, which turns tuning off, or `train.workers`, on a base with
    neither), which its params validation would refuse."""
    return {key: value for key, value in changes.items() if has_key(base_params, key)}


def has_key(tree: dict[str, Any], dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def timed(repo: PipelineRepo, *command: str) -> float:
    started = time.perf_counter()
    repo.run(*command, timeout=3600)
    return time.perf_counter() - started


def fresh_repro(repo: ProbedRepo) -> ReproResult:
    """`dvc repro` from nothing: outputs, cache and MLflow store removed first."""
    repo.repo.run("git", "clean", "-qfdx")
    repo.repo.run("git", "checkout", "-q", "--", ".")
    return repo.repro()


def stage_startup(record: StageRecord) -> float:
    """What a stage spends outside its work: start-up before it, close and exit after it."""
    return record.startup + record.finish


def startups_by_script(results: list[ReproResult]) -> dict[str, float]:
    """Median start-up per stage script (train@rnn and train@lstm pool as `train`): the base
    has no tune stages, so the comparison is over the scripts both have."""
    values: dict[str, list[float]] = {}
    for result in results:
        for record in result.stages:
            if record.complete:
                values.setdefault(record.stage.split("@")[0], []).append(stage_startup(record))
    return {script: statistics.median(samples) for script, samples in values.items()}


@dataclass(frozen=True)
class MeasuredCurrent:
    """The current code's full run, measured by an earlier section (smoke sizes: every stage
    process costs seconds): its project copy and its `dvc repro` from clean."""

    repo: ProbedRepo
    result: ReproResult


def run(
    workdir: Path, params: dict[str, Any], repeats: int, measured: MeasuredCurrent | None = None
) -> list[Row]:
    """Base and current full runs, alternating, then a no-op `dvc repro` against `dvc status`
    on the current copy; with `measured` (smoke sizes), only the base runs, and the no-op is
    timed on the base's copy."""
    commit = base_commit()
    base_tree = parse_yaml(git_show(commit, "params.yaml"))
    params = same_job(params, base_tree)
    base = ProbedRepo(base_repo(workdir / "base", commit, params))
    results: dict[str, list[ReproResult]] = {"base": [], "current": []}
    if measured is None:
        current = ProbedRepo(make_pipeline_repo(workdir / "current", params))
        for _ in range(repeats):
            for name, repo in (("base", base), ("current", current)):
                results[name].append(fresh_repro(repo))
        up_to_date, timed_code = current, "this code"
    else:
        results["base"] = [fresh_repro(base) for _ in range(repeats)]
        results["current"] = [measured.result]
        # The earlier sections' edits left `measured.repo` out of date (its evaluate stage is
        # not in DVC's run cache): the base, just reproduced, is timed instead of re-running it.
        up_to_date, timed_code = base, commit
    no_op = [timed(up_to_date.repo, "dvc", "repro") for _ in range(repeats)]
    status = [timed(up_to_date.repo, "dvc", "status") for _ in range(repeats)]
    old, new = (statistics.median(r.wall for r in results[name]) for name in ("base", "current"))
    no_op_ratio = statistics.median(no_op) / statistics.median(status)
    return [
        Row(
            SECTION,
            f"full `dvc repro`, this code vs {commit}, {usable_cores()} cores",
            f"{new:.1f} s / {old:.1f} s = {new / old:.2f}x",
            f"<= {PIPELINE_TARGET}x",
            verdict(new / old <= PIPELINE_TARGET),
        ),
        *startup_rows(commit, results),
        Row(
            SECTION,
            f"no-op `dvc repro` vs `dvc status`, same repository ({timed_code})",
            f"{statistics.median(no_op):.2f} s / {statistics.median(status):.2f} s "
            f"= {no_op_ratio:.2f}x",
            f"<= {NO_OP_TARGET}x",
            verdict(no_op_ratio <= NO_OP_TARGET),
        ),
    ]


def startup_rows(commit: str, results: dict[str, list[ReproResult]]) -> list[Row]:
    """One row per stage script both codes have: its start-up against the base's."""
    base, current = (startups_by_script(results[name]) for name in ("base", "current"))
    return [
        Row(
            SECTION,
            f"stage start-up + exit, {script}, this code vs {commit}",
            f"{seconds(current[script])} / {seconds(base[script])} "
            f"= {current[script] / base[script]:.2f}x",
            f"<= {STARTUP_TARGET}x",
            verdict(current[script] / base[script] <= STARTUP_TARGET),
        )
        for script in base
        if script in current
    ]
