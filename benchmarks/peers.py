"""Section 8: the libraries a user would pick instead, doing the same job in the same run.

The job is the reference article's: its RNN and its LSTM (one layer of the `rnn` entry's
hidden size, the window, learning rate, batch size and epochs of params.yaml; 260 optimizer
steps each at default params), then a forecast of every test point (200) from its previous
window, on one torch thread. Each contender is one process timed from its start to its exit,
imports included (a user pays them), the contenders alternating, median of `repeats`:

* reference: `peer_jobs/article.py`, the article's job as one plain PyTorch script;
* NeuralForecast 3.3.0 `RNN` and `LSTM` (`peer_jobs/neuralforecast_job.py`);
* darts 0.48.1 `BlockRNNModel` and `RNNModel` (`peer_jobs/darts_job.py`);
* ours: `dvc repro` from clean of a project copy whose entries are `rnn` and `lstm` at those
  settings, one repeat, no tuning: every stage tracked in MLflow, the baselines and claims
  evaluated (and 10% of the training windows held out for validation, which the others train
  on).

NeuralForecast and darts run in an environment of their own (`peers_venv()`, built on first
use from `peer_jobs/requirements.txt`, reused while that file is unchanged), so the project
does not depend on them. At smoke sizes only the reference and ours run, and ours is the
edit-repro section's one-repeat run.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.against_base import MeasuredCurrent, fresh_repro, stage_startup
from benchmarks.probed_repo import ProbedRepo, ReproResult
from benchmarks.report import Row, verdict
from lstm_vs_rnn.params import Params
from tests.conftest import PipelineRepo, make_pipeline_repo

SECTION = "8 peers"
JOBS = Path(__file__).with_name("peer_jobs")
REQUIREMENTS = JOBS / "requirements.txt"
REFERENCE_TARGET = 2.0  # ours at most twice the reference script's time
REFERENCE = "reference script"
OURS = "ours (dvc repro, tracked)"
ARTICLE_MODELS = ("rnn", "lstm")

# One run of a contender: its wall seconds and the test RMSE of each model.
Job = Callable[[], tuple[float, dict[str, float]]]


def article_job(params: Params) -> dict[str, Any]:
    """The job's settings, from the project's params (the `rnn` entry's hidden size)."""
    data, train = params.data, params.train
    return {
        "seed": data.seed,
        "n_points": data.n_points,
        "t_step": data.t_step,
        "noise_std": data.noise_std,
        "train_fraction": data.train_fraction,
        "window": data.window,
        "hidden_size": params.models["rnn"].hidden_size,
        "learning_rate": train.learning_rate,
        "batch_size": train.batch_size,
        "epochs": train.epochs,
    }


def ours_params(job: dict[str, Any]) -> dict[str, Any]:
    """Project params for the same job: the two article entries, one repeat, no tuning."""
    entry = {"hidden_size": job["hidden_size"], "num_layers": 1, "tune": False}
    return {
        **{f"data.{key}": job[key] for key in ("n_points", "window", "seed")},
        "train.epochs": job["epochs"],
        "train.batch_size": job["batch_size"],
        "train.learning_rate": job["learning_rate"],
        "train.repeats": 1,
        "train.workers": None,
        "tune.n_trials": 0,
        "models": {name: {"arch": name, **entry} for name in ARTICLE_MODELS},
    }


def peers_venv() -> Path:
    """`BENCH_PEERS_VENV`, else a folder under the user's cache (outside the project)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("BENCH_PEERS_VENV", cache / "lstm-vs-rnn" / "bench-peers"))


def peers_python(venv: Path) -> Path:
    """The peers' interpreter, the environment built first if it is missing or was built from
    other requirements. Raises CalledProcessError if pip fails."""
    python, stamp = venv / "bin" / "python", venv / "requirements.installed"
    wanted = REQUIREMENTS.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"building the peers' environment in {venv} (once; minutes)", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)]
    subprocess.run(install, check=True)
    stamp.write_text(wanted)
    return python


@dataclass
class Contender:
    """One way of doing the job; without `run`, `walls` and `rmse` were measured by another
    section (smoke sizes)."""

    name: str
    run: Job | None
    walls: list[float] = field(default_factory=list)
    rmse: dict[str, float] = field(default_factory=dict)

    def measure(self) -> None:
        if self.run is not None:
            wall, self.rmse = self.run()
            self.walls.append(wall)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


def script(python: Path, name: str, *args: str) -> Job:
    """A job script of `peer_jobs/` run by `python`: its wall time and the RMSE it printed.
    Raises RuntimeError with the script's stderr if it fails."""

    def run() -> tuple[float, dict[str, float]]:
        started = time.perf_counter()
        result = subprocess.run(
            [str(python), str(JOBS / name), *args],
            cwd=JOBS,
            capture_output=True,
            text=True,
            timeout=3600,
            env={**os.environ, "PYTHONPATH": str(JOBS)},
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{name} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return wall, json.loads(result.stdout.splitlines()[-1])["test_rmse"]

    return run


def ours(repo: ProbedRepo, results: list[ReproResult]) -> Job:
    """`dvc repro` from clean in `repo`: its wall time and the RMSE metrics.json reports; the
    run's stage records are appended to `results`."""

    def run() -> tuple[float, dict[str, float]]:
        results.append(fresh_repro(repo))
        return results[-1].wall, reported_rmse(repo.repo)

    return run


def reported_rmse(repo: PipelineRepo) -> dict[str, float]:
    """Each article entry's test RMSE as the project's metrics.json reports it (one repeat)."""
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    return {name: metrics[name]["test_rmse"]["mean"] for name in ARTICLE_MODELS if name in metrics}


def contenders(
    workdir: Path,
    job: dict[str, Any],
    with_libraries: bool,
    measured: MeasuredCurrent | None,
    our_results: list[ReproResult],
) -> list[Contender]:
    """The reference first, ours last; `measured` stands for running ours (smoke sizes).
    Our runs' stage records go to `our_results`."""
    job_json = json.dumps(job)
    found = [Contender(REFERENCE, script(Path(sys.executable), "article.py", job_json))]
    if with_libraries:
        python = peers_python(peers_venv())
        found += [
            Contender("NeuralForecast", script(python, "neuralforecast_job.py", job_json)),
            Contender("darts BlockRNNModel", script(python, "darts_job.py", job_json, "block")),
            Contender("darts RNNModel", script(python, "darts_job.py", job_json, "rnn")),
        ]
    if measured is None:
        repo = ProbedRepo(make_pipeline_repo(workdir / "peers-ours", ours_params(job)))
        found.append(Contender(OURS, ours(repo, our_results)))
    else:
        our_results.append(measured.result)
        rmse = reported_rmse(measured.repo.repo)
        found.append(Contender(OURS, None, [measured.result.wall], rmse))
    return found


def run(
    workdir: Path,
    params: Params,
    repeats: int,
    with_libraries: bool,
    measured: MeasuredCurrent | None = None,
) -> list[Row]:
    """Rows: each contender's median wall time and test RMSE, ours against the reference
    (target: at most 2x) and against each library, and each library against the reference."""
    job = article_job(params)
    our_results: list[ReproResult] = []
    found = contenders(workdir, job, with_libraries, measured, our_results)
    for index in range(repeats):
        for contender in found if index % 2 == 0 else found[::-1]:
            contender.measure()
    reference, mine = found[0], found[-1]
    ratio = mine.median / reference.median
    rows = [
        Row(
            SECTION,
            "setup",
            f"RNN + LSTM, {job['hidden_size']} units, window {job['window']}, lr "
            f"{job['learning_rate']}, batch {job['batch_size']}, {job['epochs']} epochs, "
            f"{job['n_points']} points; one process each, median of {repeats} (wall)",
        ),
        *(contender_row(contender) for contender in found),
        Row(
            SECTION,
            f"{OURS} / {REFERENCE}",
            f"{mine.median:.1f} s / {reference.median:.1f} s = {ratio:.2f}x",
            f"<= {REFERENCE_TARGET:g}x",
            verdict(ratio <= REFERENCE_TARGET),
        ),
        split_row(our_results),
    ]
    rows += [
        Row(
            SECTION,
            f"{OURS} / {library.name}",
            f"{mine.median:.1f} s / {library.median:.1f} s = {mine.median / library.median:.2f}x"
            f" (theirs / reference: {library.median / reference.median:.2f}x)",
        )
        for library in found[1:-1]
    ]
    if not with_libraries:
        rows.append(Row(SECTION, "NeuralForecast, darts", "not run at smoke sizes"))
    return rows


def split_row(results: list[ReproResult]) -> Row:
    """Where our median run's time goes: stage start-ups (and exits), the stages' work, and
    DVC itself (its start-up, hashing, locking; wall time outside every stage process)."""
    result = sorted(results, key=lambda r: r.wall)[len(results) // 2]
    startups = sum(stage_startup(record) for record in result.stages)
    stages = sum(record.wall for record in result.stages)
    return Row(
        SECTION,
        f"{OURS}: where the time goes",
        f"{len(result.stages)} stage processes: start-up + exit {startups:.1f} s, work "
        f"{stages - startups:.1f} s; dvc itself {result.wall - stages:.1f} s",
    )


def contender_row(contender: Contender) -> Row:
    scores = ", ".join(f"{name} {value:.3f}" for name, value in contender.rmse.items())
    return Row(
        SECTION,
        contender.name,
        f"{contender.median:.1f} s (min {min(contender.walls):.1f}); test RMSE {scores}",
    )
