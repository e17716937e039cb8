"""Stage `check_params`: validate the whole params.yaml before any other stage runs (work:
`lstm_vs_rnn.pipeline.check_params`, which says why). It imports only the params validation
(pydantic and ruamel.yaml) and opens no MLflow run.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/check_params.py`.
"""

from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.pipeline import check_params


def main() -> None:
    check_params.run(PATHS)


if __name__ == "__main__":
    run_entry_point(main)
