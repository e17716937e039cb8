"""Section 6: this code against a base commit's, in the same run, on the same machine.

The base is a commit of this repository (`BENCH_BASE`, default `BASE_COMMIT`: the code before
training ran its repeats on worker processes), exported with `git archive` into a project copy
of its own; the current code is a copy like every other section's. Both run the same params,
alternating, and the medians are compared: the default pipeline's wall time (target: at most
0.6x the base's), and a no-op `dvc repro` against `dvc status` on the same repository (within
1.2x).
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

from benchmarks.probed_repo import REPO_ROOT
from benchmarks.report import Row, verdict
from tests.conftest import TINY_PARAMS, PipelineRepo, clean_env, make_pipeline_repo

SECTION = "6 vs base"
# The last commit before issue 17 (repeats on one process, one after another).
BASE_COMMIT = "ecd04b6"
PIPELINE_TARGET = 0.6
NO_OP_TARGET = 1.2


def base_commit() -> str:
    return os.environ.get("BENCH_BASE", BASE_COMMIT)


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


def fresh_repro(repo: PipelineRepo) -> float:
    """`dvc repro` from nothing: outputs, cache and MLflow store removed first."""
    repo.run("git", "clean", "-qfdx")
    repo.run("git", "checkout", "-q", "--", ".")
    return timed(repo, "dvc", "repro")


@dataclass(frozen=True)
class MeasuredCurrent:
    """The current code's full run, measured by an earlier section (smoke sizes: every stage
    process costs seconds): its project copy and the wall time of its `dvc repro` from clean."""

    repo: PipelineRepo
    wall: float


def run(
    workdir: Path, params: dict[str, Any], repeats: int, measured: MeasuredCurrent | None = None
) -> list[Row]:
    """Base and current full runs, alternating; with `measured`, only the base runs and the
    no-op is timed on `measured.repo`, first brought up to date (from DVC's run cache)."""
    commit = base_commit()
    base = base_repo(workdir / "base", commit, params)
    walls: dict[str, list[float]] = {"base": [], "current": []}
    if measured is None:
        current = make_pipeline_repo(workdir / "current", params)
        for _ in range(repeats):
            for name, repo in (("base", base), ("current", current)):
                walls[name].append(fresh_repro(repo))
    else:
        current = measured.repo
        walls["base"] = [fresh_repro(base) for _ in range(repeats)]
        walls["current"] = [measured.wall]
        current.dvc("repro")
    no_op = [timed(current, "dvc", "repro") for _ in range(repeats)]
    status = [timed(current, "dvc", "status") for _ in range(repeats)]
    old, new = (statistics.median(walls[name]) for name in ("base", "current"))
    no_op_ratio = statistics.median(no_op) / statistics.median(status)
    return [
        Row(
            SECTION,
            f"full `dvc repro`, this code vs {commit}, {os.cpu_count()} cores",
            f"{new:.1f} s / {old:.1f} s = {new / old:.2f}x",
            f"<= {PIPELINE_TARGET}x",
            verdict(new / old <= PIPELINE_TARGET),
        ),
        Row(
            SECTION,
            "no-op `dvc repro` vs `dvc status`, same repository",
            f"{statistics.median(no_op):.2f} s / {statistics.median(status):.2f} s "
            f"= {no_op_ratio:.2f}x",
            f"<= {NO_OP_TARGET}x",
            verdict(no_op_ratio <= NO_OP_TARGET),
        ),
    ]
