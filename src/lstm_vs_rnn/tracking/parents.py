"""The parent run of a configuration: found or created by whichever stage runs first, one per
configuration even when several machines create it at once, its duration the sum of its stages'.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

from lstm_vs_rnn.params import Params
from lstm_vs_rnn.tracking.identity import (
    code_version,
    config_hash,
    describe_configuration,
    provenance_tags,
)
from lstm_vs_rnn.tracking.records import (
    MAX_SEARCH_RESULTS,
    log_metrics_now,
    log_params_batched,
    write_concurrently,
)
from lstm_vs_rnn.tracking.tags import (
    CODE_VERSION_TAG,
    CONFIG_TAG,
    MERGED_TAG,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    ROLE_TAG,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


# Parents of one configuration looked at when picking the canonical one.
MAX_PARENTS = 100


def parent_ids(client: MlflowClient, experiment_id: str, params: Params) -> list[str]:
    """Every finished parent of this configuration, the canonical one first.

    Canonical is the smallest run id: every machine picks the same one whatever its clock
    (start times come from the clients' clocks), so parents made at once by several machines
    converge on one (see merge_duplicate_parents).
    """
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{CONFIG_TAG}` = '{config_hash(params)}' "
        f"and tags.`{ROLE_TAG}` = 'configuration' and attributes.status = 'FINISHED'",
        max_results=MAX_PARENTS,
    )
    return sorted(run.info.run_id for run in runs)


def find_parent(client: MlflowClient, experiment_id: str, params: Params) -> str | None:
    ids = parent_ids(client, experiment_id, params)
    return ids[0] if ids else None


def merge_duplicate_parents(client: MlflowClient, experiment_id: str, params: Params) -> str | None:
    """Fold every other parent of this configuration into the canonical one; return its id.

    MLflow has no conditional create, so two machines that find no parent at the same moment
    each make one. Each stage calls this as it ends: the children and headline metrics of the
    duplicates move to the canonical parent and the duplicates are deleted, so the
    configuration keeps one parent and loses nothing. Concurrent merges do the same writes.
    """
    canonical, *duplicates = parent_ids(client, experiment_id, params) or [None]
    for duplicate in duplicates:
        children = client.search_runs(
            [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{duplicate}'"
        )
        for child in children:
            write_concurrently(
                partial(client.set_tag, child.info.run_id, MLFLOW_PARENT_RUN_ID, canonical)
            )
        metrics = client.get_run(duplicate).data.metrics
        have = client.get_run(canonical).data.metrics
        missing = {key: value for key, value in metrics.items() if key not in have}
        write_concurrently(partial(log_metrics_now, client, canonical, missing))
        retire_duplicate(client, duplicate, canonical)
    return canonical


def retire_duplicate(client: MlflowClient, duplicate: str, canonical: str) -> None:
    """Tag `duplicate` as merged into `canonical` and delete it.

    Another stage may have merged and deleted it a moment ago: that, and only that, is not an
    error. Any other failure of the tag or the delete is raised, never left as a silent
    duplicate parent.
    """
    from mlflow.exceptions import MlflowException

    try:
        write_concurrently(partial(client.set_tag, duplicate, MERGED_TAG, canonical))
        client.delete_run(duplicate)
    except MlflowException:
        if not _already_deleted(client, duplicate):
            raise


def _already_deleted(client: MlflowClient, run_id: str) -> bool:
    """Whether the run is deleted, or gone altogether (garbage-collected)."""
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        return client.get_run(run_id).info.lifecycle_stage == LifecycleStage.DELETED
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return True
        raise


def settle_parent(
    client: MlflowClient, experiment_id: str, params: Params, run_id: str, parent_id: str
) -> str:
    """Merge duplicate parents and make sure this stage's run hangs under the canonical one
    (another stage may have merged and deleted its parent after this run was created)."""
    canonical = merge_duplicate_parents(client, experiment_id, params) or parent_id
    if canonical != parent_id:
        client.set_tag(run_id, MLFLOW_PARENT_RUN_ID, canonical)
    return canonical


def get_or_create_parent(client: MlflowClient, experiment_id: str, params: Params) -> str:
    existing = find_parent(client, experiment_id, params)
    if existing:
        return existing
    name = describe_configuration(params)
    tags = {
        **provenance_tags(),
        CONFIG_TAG: config_hash(params),
        CODE_VERSION_TAG: code_version(),
        ROLE_TAG: "configuration",
        MLFLOW_RUN_NAME: name,
    }
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    try:
        log_params_batched(client, run.info.run_id, params.flat())
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")  # never reused: find_parent skips it
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
    # Another machine may have made one at the same moment: keep the canonical one only.
    return merge_duplicate_parents(client, experiment_id, params) or run.info.run_id


def end_stage_run(client: MlflowClient, run_id: str, parent_id: str, status: str) -> None:
    """Close the child, and give the parent the duration its stages took."""
    client.set_terminated(run_id, status, end_time=int(time.time() * 1000))
    client.set_terminated(parent_id, "FINISHED", end_time=parent_end_time(client, parent_id))


def parent_end_time(client: MlflowClient, parent_id: str) -> int:
    """The parent's start plus the time its stage runs took, so its Duration column reads as
    the pipeline's time for this configuration, not the days between its first stage and a
    stage re-run later."""
    parent = client.get_run(parent_id)
    stages = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_id}'",
        max_results=MAX_SEARCH_RESULTS,
    )
    busy = sum(run.info.end_time - run.info.start_time for run in stages if run.info.end_time)
    return parent.info.start_time + busy
