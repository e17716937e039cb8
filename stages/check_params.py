"""Stage `check_params`: validate the whole params.yaml before any other stage runs.

DVC runs it whenever any key of params.yaml changes (it depends on the whole file), and every
other stage depends on its output, so a key no stage reads (a typo such as
`dvc exp run -S +train.learning_rte=0.1`) stops `dvc repro` and `dvc exp run` with one line
instead of running nothing. It imports only the params validation (pydantic and ruamel.yaml),
and its output is the same bytes whenever the file is valid, so a valid edit re-runs only the
stages that read the edited keys.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/check_params.py`.
"""

from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS

CHECKED = "params.yaml: every key is known and every value allowed\n"


def main() -> None:
    load_params(PATHS.params)
    PATHS.params_checked.write_text(CHECKED, encoding="utf-8")


if __name__ == "__main__":
    run_entry_point(main)
