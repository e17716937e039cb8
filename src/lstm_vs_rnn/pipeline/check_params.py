"""The `check_params` stage's work: validate the whole params.yaml before any other stage runs.

DVC runs the stage whenever any key of params.yaml changes (it depends on the whole file), and
every other stage depends on its output, so a key no stage reads (a typo such as
`dvc exp run -S +train.learning_rte=0.1`) stops `dvc repro` and `dvc exp run` with one line
instead of running nothing. Its output is the same bytes whenever the file is valid, so a valid
edit re-runs only the stages that read the edited keys.
"""

from lstm_vs_rnn.files import write_text
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import ProjectPaths

# The params the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both): the
# whole file (`params.yaml:` with no keys).
PARAMS = ("params.yaml:",)
CHECKED = "params.yaml: every key is known and every value allowed\n"


def run(paths: ProjectPaths) -> None:
    """Validate paths.params and write data/params_checked.txt (`CHECKED`).

    Raises UserError with one line naming the first key or value params.yaml may not hold.
    """
    load_params(paths.params)
    write_text(paths.params_checked, CHECKED)
