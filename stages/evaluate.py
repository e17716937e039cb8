"""Stage `evaluate`: every repeat of every model against the baselines, and the models in pairs
(work: `lstm_vs_rnn.pipeline.evaluate`, which says what it writes).

A horizon that leaves no forecast origin in the test part stops the stage before it opens its
MLflow run, like any other bad param. Logs the summaries and verdicts to the configuration's
parent run, the sensitivity medians (step = lag) and the mean RMSE per forecast step (step = h)
to its own run, each repeat's test metrics to that repeat's training run of this
configuration, and points the registry alias `favoured-by-verdict` at the entry the primary
verdict favours (tracking.registry).
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/evaluate.py`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.evaluation.horizon import check_horizon
from lstm_vs_rnn.params import Params, load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.pipeline import evaluate
from lstm_vs_rnn.tracking.identity import config_hash, file_sha256
from lstm_vs_rnn.tracking.records import flatten_metrics
from lstm_vs_rnn.tracking.registry import point_favoured_alias
from lstm_vs_rnn.tracking.runs import StageRun, stage_run


def log_evaluation(run: StageRun, params: Params, result: evaluate.EvaluateResult) -> None:
    """Summaries and verdicts to this run and the parent; each repeat's test metrics to its
    training run of this configuration, or a note where the weights came from elsewhere."""
    numbers, verdicts = flatten_metrics(result.metrics)
    run.log_metrics(numbers)
    run.log_to_parent(numbers, verdicts)
    run.set_tags(verdicts)
    run.log_result(result.logged)
    tested = {file_sha256(path): values for path, values in result.repeat_metrics.items()}
    untracked = run.log_to_repeat_runs(config_hash(params), tested)
    if untracked:
        run.note_weights_from_elsewhere(run.configurations_that_trained(untracked))
    point_favoured_alias(run, params, result.metrics)


def main() -> None:
    params = load_params(PATHS.params)
    check_horizon(params, PATHS)
    with stage_run("evaluate", params, evaluate.PARAMS) as run:
        log_evaluation(run, params, evaluate.run(params, PATHS))


if __name__ == "__main__":
    run_entry_point(main)
