"""`make bench` / `python -m benchmarks [--smoke]`: run every section, print one table.

The full run takes about 15 minutes on 2 cores; `--smoke` runs each section at a tiny size
(tests/test_benchmarks_smoke.py) so the benchmarks cannot rot. Temporary project copies and
the MLflow server live in a temporary directory that is always removed.
"""

import argparse
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import (
    against_base,
    peers,
    pinned_kernels,
    pipeline_loop,
    repeat_workers,
    scale_run,
    throughput,
    tracking_overhead,
    tuning,
)
from benchmarks.probed_repo import REPO_ROOT, default_params
from benchmarks.report import Row, render
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.processes import usable_cores
from tests.conftest import TINY_PARAMS


@dataclass(frozen=True)
class Sizes:
    """Every size and repeat count; `FULL` is what the targets are stated for."""

    throughput_points: tuple[int, ...]
    throughput_repeats: tuple[int, ...]
    max_single_predictions: int
    pipeline_params: dict[str, Any]
    full_repeats: int
    no_op_repeats: int
    edit_repeats: int
    scale_points: int
    scale_window: int
    logged_epochs: int
    logging_repeats: int
    stage_repeats: int
    tracked_models: tuple[str, ...]
    kernel_points: int
    kernel_epochs: int
    kernel_repeats: int
    base_repeats: int
    tuning_params: dict[str, Any]
    peer_repeats: int
    # Series lengths at which training repeats are timed on 1 and 2 workers (the first: default).
    worker_points: tuple[int, ...]
    worker_repeats: int
    # NeuralForecast and darts need an environment of their own (about 2 GB, minutes to build).
    peer_libraries: bool
    # The smoke run's pipeline params already are its scale params, so its one full run
    # serves both sections: every stage process costs seconds, and the smoke test must be quick.
    scale_reuses_full_run: bool = False
    # Likewise the vs-base section's current side (the base still runs), and the tuning
    # section's generate and scale (its params change no data key), and the repeat-workers
    # section's generate, scale and tune at the size of the full run.
    base_reuses_full_run: bool = False
    tuning_reuses_full_run: bool = False
    workers_reuse_full_run: bool = False


FULL = Sizes(
    throughput_points=(10_000, 100_000),
    throughput_repeats=(5, 3),
    max_single_predictions=2_000,
    pipeline_params=default_params(),
    full_repeats=3,
    no_op_repeats=5,
    edit_repeats=3,
    scale_points=1_000_000,
    scale_window=100,
    logged_epochs=1_000,
    logging_repeats=5,
    stage_repeats=3,
    tracked_models=("rnn", "lstm"),
    kernel_points=1_000,
    kernel_epochs=20,
    kernel_repeats=5,
    base_repeats=3,
    tuning_params={**default_params(), "tune.n_trials": 8},
    peer_repeats=3,
    worker_points=(1_000, 10_000, 100_000),
    worker_repeats=3,
    peer_libraries=True,
)
# Tiny: conftest's TINY_PARAMS for the pipeline, one repeat of everything.
SMOKE = Sizes(
    throughput_points=(600,),
    throughput_repeats=(1,),
    max_single_predictions=50,
    # One entry (the one the edit-repro section edits): every stage process costs seconds.
    pipeline_params={
        **scale_run.scale_params(400, 10),
        "models": {"rnn": TINY_PARAMS["models"]["rnn"]},
    },
    full_repeats=1,
    no_op_repeats=1,
    edit_repeats=1,
    scale_points=400,
    scale_window=10,
    logged_epochs=50,
    logging_repeats=1,
    stage_repeats=1,
    tracked_models=("rnn",),
    kernel_points=400,
    kernel_epochs=1,
    kernel_repeats=1,
    base_repeats=1,
    tuning_params={
        "tune.n_trials": 2,
        "tune.first_seeds": 1,
        "tune.final_seeds": 1,
        "tune.space": {"hidden_size": [4, 8], "epochs": [1]},  # the shared setting: 1 epoch
        "models": {"lstm_tuned": {"arch": "lstm", "hidden_size": 8, "num_layers": 1}},
    },
    peer_repeats=1,
    worker_points=(400,),  # the pipeline params' size: the full run's copy is reused
    worker_repeats=1,
    peer_libraries=False,
    scale_reuses_full_run=True,
    base_reuses_full_run=True,
    tuning_reuses_full_run=True,
    workers_reuse_full_run=True,
)


def run_all(sizes: Sizes, workdir: Path) -> list[Row]:
    """Sections in order; the tracking section reuses the edit-repro section's last copy,
    whose params.yaml the edit-repro section restored to the values it started with."""
    rows = throughput.run(
        load_params(REPO_ROOT / "params.yaml"),
        sizes.throughput_points,
        sizes.throughput_repeats,
        sizes.max_single_predictions,
    )
    loop_rows, repo, full_run = pipeline_loop.run(
        workdir, sizes.pipeline_params, sizes.full_repeats, sizes.no_op_repeats, sizes.edit_repeats
    )
    rows += loop_rows
    if sizes.scale_reuses_full_run:
        entries = len(sizes.pipeline_params["models"])
        folds = len(sizes.pipeline_params.get("evaluate.folds", TINY_PARAMS["evaluate.folds"]))
        rows += scale_run.summarize(
            sizes.scale_points,
            sizes.scale_window,
            full_run,
            pipeline_loop.stage_count(entries, folds),
        )
    else:
        rows += scale_run.run(
            workdir, sizes.pipeline_params, sizes.scale_points, sizes.scale_window
        )
    rows += tracking_overhead.run(
        workdir,
        repo,
        list(sizes.tracked_models),
        sizes.logged_epochs,
        sizes.logging_repeats,
        sizes.stage_repeats,
    )
    rows += pinned_kernels.run(
        list(sizes.tracked_models), sizes.kernel_points, sizes.kernel_epochs, sizes.kernel_repeats
    )
    measured = against_base.MeasuredCurrent(repo, full_run)
    rows += against_base.run(
        workdir,
        sizes.pipeline_params,
        sizes.base_repeats,
        measured if sizes.base_reuses_full_run else None,
    )
    rows += tuning.run(
        workdir, sizes.tuning_params, repo.repo if sizes.tuning_reuses_full_run else None
    )
    rows += repeat_workers.run(
        workdir,
        sizes.pipeline_params,
        sizes.worker_points,
        sizes.worker_repeats,
        repo.repo if sizes.workers_reuse_full_run else None,
    )
    rows += peers.run(
        workdir,
        load_params(repo.root / "params.yaml"),
        sizes.peer_repeats,
        sizes.peer_libraries,
        measured if sizes.base_reuses_full_run else None,
    )
    return rows


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{cpu}, {usable_cores()} cores, Python {platform.python_version()}, load {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it runs")
    smoke = parser.parse_args().smoke
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstm-vs-rnn-bench-") as workdir:
        rows = run_all(SMOKE if smoke else FULL, Path(workdir))
    header = f"lstm-vs-rnn benchmarks ({'smoke' if smoke else 'full'}) on {machine()}"
    print(render(rows, header))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
