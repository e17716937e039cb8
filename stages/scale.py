"""Stage `scale`: chronological split and min-max scaling fitted on the training part only
(work: `lstm_vs_rnn.pipeline.scale`).

Writes data/processed/{train,test}.npy and the scaler's parameters as JSON (no pickle).
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/scale.py`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.pipeline import scale
from lstm_vs_rnn.tracking.runs import stage_run


def main() -> None:
    params = load_params(PATHS.params)
    series = scale.read_checked(params, PATHS)  # a flat series stops here, before MLflow
    with stage_run("scale", params, scale.PARAMS) as run:
        run.log_result(scale.run(params, PATHS, series))


if __name__ == "__main__":
    run_entry_point(main)
