"""Section 5: what pinning the CPU kernels (`lstm_vs_rnn.kernels`) costs in training speed.

The pins must be in the environment before torch loads, so each measurement is a fresh
process: `python -m benchmarks.pinned_kernels <model> <n_points> <epochs>` trains one model
with the pipeline's params (those sizes overridden) and prints its CPU seconds. The parent
alternates pinned and unpinned processes within each repeat, so a slow spell of a shared host
hits both alike, and reports the ratio of the medians.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.probed_repo import REPO_ROOT
from benchmarks.report import Row, ratio
from lstm_vs_rnn.kernels import PINNED

SECTION = "5 kernels"


def pinned_env(pinned: bool) -> dict[str, str]:
    """This environment with the pins set, or with every one of them removed."""
    env = {key: value for key, value in os.environ.items() if key not in PINNED}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])
    return env | PINNED if pinned else env


def child_seconds(model: str, n_points: int, epochs: int, pinned: bool) -> float:
    """Training CPU seconds of `model` in a new process, pinned or not."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.pinned_kernels", model, str(n_points), str(epochs)],
        env=pinned_env(pinned),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)["seconds"]


def run(models: list[str], n_points: int, epochs: int, repeats: int) -> list[Row]:
    rows = []
    for model in models:
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for pinned in (False, True):
                times[pinned].append(child_seconds(model, n_points, epochs, pinned))
        pinned_s, free_s = statistics.median(times[True]), statistics.median(times[False])
        rows.append(
            Row(
                SECTION,
                f"train {model}, pinned kernels vs the CPU's own ({n_points} points, "
                f"{epochs} epochs, CPU s)",
                f"{ratio(pinned_s / free_s)} ({pinned_s:.2f} s vs {free_s:.2f} s)",
            )
        )
    return rows


def train_once(model: str, n_points: int, epochs: int) -> float:
    """In the child: CPU seconds of one training run (torch is imported here, after the env)."""
    from benchmarks.throughput import fresh_model, make_series, train_ours
    from lstm_vs_rnn.modeling.training import configure_torch
    from lstm_vs_rnn.params import load_params

    params = load_params(REPO_ROOT / "params.yaml")
    settings = params.train.model_copy(update={"epochs": epochs})
    configure_torch(settings)
    series = make_series(params, n_points)
    model_ = fresh_model(model, params)
    started = time.process_time()
    train_ours(model_, series, settings)
    return time.process_time() - started


if __name__ == "__main__":
    name, points, n_epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps({"seconds": train_once(name, points, n_epochs)}))
