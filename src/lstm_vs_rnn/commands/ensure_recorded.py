"""Make sure the MLflow store holds a record of the current configuration.

DVC skips a stage whose inputs and outputs are unchanged, and such a stage logs nothing. That is
right for the edit-repro loop, but it leaves the store without a record when the outputs came
from somewhere else: reports committed to git, a DVC cache, or a deleted `mlflow.db`. After
`dvc repro` it re-runs, one by one with `--force --single-item`, either every stage (the
configuration has no parent run: a new store or experiment name) or only `evaluate` (a parent
without the models' test metrics). It does not check stage by stage: such a parent gets a
new evaluate run even if a training stage has no run under it.
Outputs are byte-identical, so `dvc.lock` does not change. After a param edit that `dvc repro`
ran, it does nothing.

Usage: `PYTHONPATH=src python -m lstm_vs_rnn.commands.ensure_recorded` (part of `make run`).
"""

import subprocess

from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.errors import UserError, redact
from lstm_vs_rnn.params import Params, load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.stage_names import ENTRY_STAGES, entry_stage
from lstm_vs_rnn.tracking.parents import find_parent
from lstm_vs_rnn.tracking.store import connect, experiment_name, tracking_uri
from lstm_vs_rnn.tracking.tags import HEADLINE_METRIC


def pipeline_stages(params: Params) -> list[str]:
    """The DVC stage names of the pipeline for these params (tune and train per model and
    fold)."""
    return [
        "generate",
        "scale",
        *(
            entry_stage(stage, name, fold)
            for stage in ENTRY_STAGES
            for name in params.models
            for fold in params.evaluate.folds
        ),
        "evaluate",
    ]


def stages_missing_from_store(params: Params) -> list[str]:
    """Stages to re-run so that this configuration has a record: none if it has one already.

    A configuration is recorded once its parent holds every model's test metrics. With no
    parent at all (a new store or experiment) every stage is missing. With a parent but no
    metrics, DVC ran the stages whose outputs changed and skipped evaluation because its own
    inputs and outputs were unchanged (reports committed to git): evaluation alone is missing.
    """
    client = connect()
    experiment = client.get_experiment_by_name(experiment_name(params))
    parent_id = experiment and find_parent(client, experiment.experiment_id, params)
    if not parent_id:
        return pipeline_stages(params)
    parent_metrics = client.get_run(parent_id).data.metrics
    if all(f"{name}.{HEADLINE_METRIC}" in parent_metrics for name in params.models):
        return []
    return ["evaluate"]


def main() -> None:
    params = load_params(PATHS.params)
    missing = stages_missing_from_store(params)
    if not missing:
        print(f"MLflow store {redact(tracking_uri())}: this configuration is recorded")
        return
    print(
        f"MLflow store {redact(tracking_uri())} has no record of this configuration: DVC "
        f"skipped {', '.join(missing)} (outputs up to date); re-running with --force "
        f"(identical outputs) to record it"
    )
    for stage in missing:
        result = subprocess.run(
            ["dvc", "repro", "--force", "--single-item", stage], cwd=PATHS.root, check=False
        )
        if result.returncode != 0:
            raise UserError(
                f"'dvc repro --force --single-item {stage}' failed "
                f"(exit {result.returncode}); see its output above"
            )


if __name__ == "__main__":
    run_entry_point(main, on_interrupt="interrupted: re-run it to record this configuration")
