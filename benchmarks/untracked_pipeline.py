"""The whole pipeline's work without DVC or MLflow: the reference cost.

The stages' own work functions (`lstm_vs_rnn.pipeline`), in the stages' order and on the same
worker pools, each reading back what the previous one wrote; only the tracking, the per-stage
interpreters and DVC's bookkeeping are missing. The tuning study lives in OUT_DIR.
Usage: `python untracked_pipeline.py PARAMS_YAML OUT_DIR` with PYTHONPATH pointing at the
project's src.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import sys
from pathlib import Path

from lstm_vs_rnn.data.sources import load_series
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.pipeline import evaluate, generate, scale, train, tune


class Untracked:
    """A listener of training repeats that records nothing."""

    def repeat_started(self, repeat: int, seed: int) -> None:
        pass

    def epoch_done(self, repeat: int, losses: object) -> None:
        pass

    def repeat_done(self, fitted: object) -> None:
        pass


def main(params_file: Path, out: Path) -> None:
    params = load_params(params_file)
    storage = f"sqlite:///{(out / 'studies.db').resolve()}"
    params = params.model_copy(update={"tune": params.tune.model_copy(update={"storage": storage})})
    paths = ProjectPaths(out)
    generate.run(params, paths, load_series(params, params_file.parent))
    scale.run(params, paths, scale.read_checked(params, paths))
    for name in params.models:
        if name in params.tuned_entries():
            tune.run(params, paths, name, tune.open_study_storage(params, name))
        else:
            tune.write_listed(params, paths, name)
    for name in params.models:
        train.run(params, paths, name, Untracked())
    evaluate.run(params, paths)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
