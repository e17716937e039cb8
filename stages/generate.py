"""Stage `generate`: the series `data.source` names (a noisy sine, a lagged series or a column
of the user's CSV), written to data/raw/series.csv (work: `lstm_vs_rnn.pipeline.generate`).

Run by `dvc repro`; directly: `PYTHONPATH=src python stages/generate.py`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
from lstm_vs_rnn.data.sources import load_series
from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.pipeline import generate
from lstm_vs_rnn.tracking.runs import stage_run


def main() -> None:
    params = load_params(PATHS.params)
    frame = load_series(params, PATHS.root)  # a bad CSV stops here, before MLflow is touched
    with stage_run("generate", params, generate.PARAMS) as run:
        run.log_result(generate.run(params, PATHS, frame))


if __name__ == "__main__":
    run_entry_point(main)
