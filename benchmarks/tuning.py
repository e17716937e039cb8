"""Section 7: tuning trainings per minute with 1 worker, every local core, and two clones.

Each measurement tunes one entry (`lstm_tuned`) of a fresh project copy from an empty study:
the wall time of the tune stage from its start to its last trial, and the trainings (Optuna
trials: one configuration on one seed) its successive halving ran, read from the
chosen-settings file. The two-clone row joins a second copy's `tune_worker` to the first copy's
stage through a real PostgreSQL study (started as `make server` starts it, without the MLflow
server, to which no run here logs; the second copy over TCP with the study role's password, as
another machine would); both use one worker each, so on an idle machine with 2 cores it should
be near twice the 1-worker rate.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import Row
from lstm_vs_rnn.commands.team_server import OPTUNA_DB, ServerConfig, TeamServer
from lstm_vs_rnn.processes import usable_cores
from lstm_vs_rnn.stage_names import entry_stage, stage_command
from tests.conftest import PipelineRepo, copy_project, free_port, make_pipeline_repo

SECTION = "7 tuning"
ENTRY = "lstm_tuned"
STAGE = entry_stage("tune", ENTRY, 0)


def tuning_copy(root: Path, params: dict[str, Any]) -> PipelineRepo:
    repo = make_pipeline_repo(root, params)
    repo.stage("generate")
    repo.stage("scale")
    return repo


def timed_stage(repo: PipelineRepo, workers: int | None, env: dict[str, str]) -> float:
    shutil.rmtree(repo.root / ".optuna", ignore_errors=True)
    repo.edit_params({"tune.workers": workers})
    started = time.perf_counter()
    repo.stage(STAGE, env=env)
    return time.perf_counter() - started


def joined_through_postgres(workdir: Path, prepared: PipelineRepo) -> float:
    """Seconds for two copies of `prepared` (scaled, no study yet), one worker each, to finish
    one study in PostgreSQL."""
    # Not under `workdir`: that one is private, and PostgreSQL runs as its own user under root.
    folder = Path(tempfile.mkdtemp(prefix="lstm-vs-rnn-bench-postgres-"))
    os.chmod(folder, 0o755)
    # Only its PostgreSQL is started: the second copy joins over TCP, as another machine would.
    config = ServerConfig(folder, port=free_port(), workers=1, study_port=free_port())
    copies = [copy_project(prepared.root, workdir / f"tuning-clone{i}") for i in (1, 2)]
    stage_log = folder / "stage.log"
    server = TeamServer(config)
    server.start(tracking=False)
    try:
        storage = {"OPTUNA_STORAGE": config.database_uri(OPTUNA_DB), "PYTHONPATH": "src"}
        remote = {**storage, "OPTUNA_STORAGE": config.study_url_file.read_text().strip()}
        copies[0].edit_params({"tune.workers": 1})
        started = time.perf_counter()
        with stage_log.open("w") as stage_stderr:
            stage = subprocess.Popen(
                ["python", *stage_command(STAGE)],
                cwd=copies[0].root,
                env={**copies[0].env, **storage},
                stdout=subprocess.DEVNULL,
                stderr=stage_stderr,
            )
            copies[1].run(
                "python",
                "-m",
                "lstm_vs_rnn.commands.tune_worker",
                "--entry",
                ENTRY,
                "--wait",
                "120",
                env=remote,
            )
            stage.wait(timeout=3600)
        if stage.returncode != 0:
            raise RuntimeError(
                f"{STAGE} exited {stage.returncode} in the first clone:\n{stage_log.read_text()}"
            )
        return time.perf_counter() - started
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def trainings(repo: PipelineRepo) -> int:
    """Trainings the last tune stage ran (budget.trainings of its tuning result)."""
    result = json.loads((repo.root / "tuning" / "fold_0" / f"{ENTRY}.json").read_text())
    return result["budget"]["trainings"]


def reused_copy(scaled: PipelineRepo, root: Path, params: dict[str, Any]) -> PipelineRepo:
    """A copy of `scaled` (its generate and scale stages ran at the data params `params`
    keeps) with `params`."""
    repo = copy_project(scaled.root, root)
    repo.edit_params(params)
    return repo


def run(workdir: Path, params: dict[str, Any], scaled: PipelineRepo | None = None) -> list[Row]:
    """Rows: trainings per minute with 1 worker, every usable core, and two joined copies.

    With `scaled` (smoke sizes: every stage process costs seconds), the tuning copy starts from
    a copy of it instead of running generate and scale again."""
    if scaled is None:
        repo = tuning_copy(workdir / "tuning", params)
    else:
        repo = reused_copy(scaled, workdir / "tuning", params)
    joined = joined_through_postgres(workdir, repo)  # first: the copies start with no study
    cores = usable_cores()
    one = timed_stage(repo, 1, {})
    every = timed_stage(repo, None, {})
    count = trainings(repo)
    return [
        Row(SECTION, f"{count} trainings, 1 worker", f"{60 * count / one:.1f} trainings/min"),
        Row(
            SECTION,
            f"{count} trainings, {cores} workers (every core)",
            f"{60 * count / every:.1f} trainings/min ({one / every:.2f}x)",
        ),
        Row(
            SECTION,
            f"{count} trainings, 2 clones joined in PostgreSQL",
            f"{60 * count / joined:.1f} trainings/min ({one / joined:.2f}x)",
        ),
    ]
