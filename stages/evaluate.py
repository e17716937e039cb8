"""Stage `evaluate`: every repeat of every model against the baselines, and the models in pairs.

Writes reports/metrics.json (DVC metrics: per model, mean/median/std/min/max and the mean's 95%
interval over repeats; per pair, the paired RMSE difference, its Hodges-Lehmann estimate, the
Holm-adjusted signed-rank p-value and the verdict; the baselines),
reports/plots/repeats.csv (every repeat's test metrics), reports/plots/predictions.csv (the
test part and, per model, the one-step predictions of the repeat logged as its model),
reports/plots/grad_sensitivity.csv (the forecast's sensitivity to
each lag, per model, trained and at init), reports/plots/horizon.csv (RMSE per step of the
recursive multi-step forecast, every repeat and baseline), reports/claims.md and the comparison
figures. A horizon that leaves no forecast origin in the test part stops the stage before it
opens its MLflow run, like any other bad param. Logs the summaries and verdicts to the
configuration's parent run, the sensitivity medians (step = lag) and the mean RMSE per forecast
step (step = h) to its own run, and each repeat's test metrics to that repeat's training run of
this configuration.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.evaluation.horizon import check_horizon
from lstm_vs_rnn.modeling.training import configure_torch
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.reporting.assessment import FIGURES, Assessment
from lstm_vs_rnn.tracking.identity import config_hash, file_sha256
from lstm_vs_rnn.tracking.records import flatten_metrics
from lstm_vs_rnn.tracking.registry import point_favoured_alias
from lstm_vs_rnn.tracking.runs import StageRun, stage_run

# The keys dvc.yaml lists for this stage (the device and threads decide prediction numerics).
PARAMS_USED = (
    "data.window",
    "data.train_fraction",
    "train.device",
    "train.num_threads",
    "train.repeats",
    "train.seed",
    "models.",
    "evaluate.",
)


def log_to_mlflow(run: StageRun, assessment: Assessment, metrics: dict[str, object]) -> None:
    """Summaries and verdicts to this run and the parent; each repeat's test metrics to its
    training run of this configuration, or a note where the weights came from elsewhere."""
    numbers, verdicts = flatten_metrics(metrics)
    run.log_metrics(numbers)
    for lag, medians in assessment.gradients.median_by_lag().items():
        run.log_metrics(medians, step=lag)
    run.log_to_parent(numbers, verdicts)
    run.set_tags(verdicts)
    for step, values in assessment.horizon.mean_per_step().items():
        run.log_metrics(values, step=step)
    params = assessment.params
    tested = {
        file_sha256(PATHS.model_weights(name, repeat)): values
        for name in params.models
        for repeat, values in enumerate(assessment.repeat_metrics(name))
    }
    untracked = run.log_to_repeat_runs(config_hash(assessment.configured), tested)
    if untracked:
        run.note_weights_from_elsewhere(run.configurations_that_trained(untracked))
    for figure in FIGURES:
        run.log_figure(PATHS.figure(figure))
    run.log_artifact(PATHS.metrics_json, "metrics")
    run.log_artifact(PATHS.repeats_table, "metrics")
    run.log_artifact(PATHS.claims_md, "claims")
    point_favoured_alias(run, params, metrics)


def main() -> None:
    params = load_params(PATHS.params)
    device = configure_torch(params.train)
    check_horizon(params, PATHS)
    with stage_run("evaluate", params, param_prefixes=PARAMS_USED) as run:
        assessment = Assessment(params, PATHS, device)
        metrics = assessment.metrics()
        assessment.write_reports(metrics)
        log_to_mlflow(run, assessment, metrics)


if __name__ == "__main__":
    run_entry_point(main)
