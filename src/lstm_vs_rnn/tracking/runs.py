"""The stage run: what every stage logs to MLflow, opened and closed the same way by each.

Organisation: one *parent* run per pipeline configuration (all of params.yaml, hashed; see
tracking.identity and tracking.parents), found or created by whichever stage runs first, and one
*child* run per stage execution, with one nested run per training repeat. DVC skips unchanged
stages, so a configuration's parent holds the children of the stages that ran for it;
evaluation always runs when any model changes and writes every model's test metrics to the
parent, so each parent row in the UI carries the headline numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_vs_rnn.kernels import kernel_tags
from lstm_vs_rnn.params import Params
from lstm_vs_rnn.stage_names import entry_and_fold
from lstm_vs_rnn.stage_result import StageResult
from lstm_vs_rnn.tracking.identity import config_hash, provenance_tags
from lstm_vs_rnn.tracking.liveness import end_dead_runs
from lstm_vs_rnn.tracking.logged_model import log_forecaster
from lstm_vs_rnn.tracking.parents import end_stage_run, get_or_create_parent, settle_parent
from lstm_vs_rnn.tracking.records import (
    MAX_METRICS_PER_BATCH,
    MAX_SEARCH_RESULTS,
    log_metrics_now,
    log_params_batched,
    run_tags,
)
from lstm_vs_rnn.tracking.store import (
    connect,
    experiment_name,
    get_or_create_experiment,
    store_lock,
    store_refusals_explained,
)
from lstm_vs_rnn.tracking.tags import (
    CONFIG_TAG,
    FOLD_TAG,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_SOURCE_NAME,
    MODEL_HASH_TAG,
    REPEAT_TAG,
    ROLE_TAG,
    SEED_TAG,
    STAGE_TAG,
    WEIGHTS_FROM_TAG,
)

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from lstm_vs_rnn.modeling.checkpoints import ForecasterFiles


# Buffered per-epoch metrics are sent at least this often, so long runs show progress.
FLUSH_INTERVAL_S = 10.0


@dataclass
class StageRun:
    """The MLflow child run of one stage execution."""

    client: MlflowClient
    run_id: str
    parent_id: str
    experiment_id: str
    # Provenance, stage and configuration: what every run under this one carries too.
    inherited_tags: dict[str, str] = field(default_factory=dict)
    _pending: list[Metric] = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Queue metrics; they are sent in batches (see flush)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(key, float(value), now, step) for key, value in metrics.items())
        if (
            len(self._pending) >= MAX_METRICS_PER_BATCH
            or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        ):
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics; a batch leaves the buffer once the store has it.

        So a flush that fails half-way and is tried again (see `flush_after_failure`) sends
        each metric once.
        """
        while self._pending:
            self.client.log_batch(self.run_id, metrics=self._pending[:MAX_METRICS_PER_BATCH])
            del self._pending[:MAX_METRICS_PER_BATCH]
        self._last_flush = time.monotonic()

    def flush_after_failure(self) -> None:
        """Send what the stage computed before it failed, without hiding why it failed.

        Called while the stage's own exception propagates: an error here (a store that went
        away, a second Ctrl-C) is reported in one line and dropped, so the user sees the
        original error and the run still ends FAILED or KILLED.
        """
        try:
            self.flush()
        except (Exception, KeyboardInterrupt) as exc:
            logging.getLogger(__name__).warning(
                "could not send the last %d metrics of the failed run to MLflow (%s)",
                len(self._pending),
                type(exc).__name__,
            )

    def log_params(self, params: dict[str, Any]) -> None:
        log_params_batched(self.client, self.run_id, params)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=run_tags(tags))

    def log_figure(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path="figures")

    def log_artifact(self, path: Path, folder: str) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def log_result(self, result: StageResult) -> None:
        """Log what a stage's work returned: params, metrics (stepped ones at their step),
        figures and artifacts."""
        self.log_params(result.params)
        self.log_metrics(result.metrics)
        for step, metrics in result.stepped.items():
            self.log_metrics(metrics, step=step)
        for figure in result.figures:
            self.log_figure(figure)
        for path, folder in result.artifacts:
            self.log_artifact(path, folder)

    def log_to_parent(self, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """The configuration's headline numbers and verdicts, shown on its row in the runs
        table (tags are columns there too)."""
        log_metrics_now(self.client, self.parent_id, metrics)
        self.client.log_batch(self.parent_id, tags=run_tags(tags))

    def note_weights_from_elsewhere(self, configurations: list[str]) -> None:
        """Say, on this run and its parent, that evaluated weights were trained under other
        configurations (DVC reused them): their runs hold their training, not this one's."""
        note = {WEIGHTS_FROM_TAG: ", ".join(configurations) or "no run in this experiment"}
        self.set_tags(note)
        self.client.log_batch(self.parent_id, tags=run_tags(note))

    def log_to_repeat_runs(
        self, config: str, metrics_by_weights: dict[str, dict[str, float]]
    ) -> list[str]:
        """Add test metrics to the repeat runs of configuration `config` that produced exactly
        these weights (keyed by the weights file's sha256); return the hashes it found none for.

        Only this configuration's runs are written: weights that DVC reused from another
        configuration (an edit that left the training data unchanged) have no run here, and
        `configurations_that_trained` names where they came from.
        """
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{CONFIG_TAG}` = '{config}' and tags.`{ROLE_TAG}` = 'repeat'",
            order_by=["attributes.start_time ASC"],
            max_results=MAX_SEARCH_RESULTS,
        )
        latest = {run.data.tags.get(MODEL_HASH_TAG): run.info.run_id for run in runs}
        for sha, metrics in metrics_by_weights.items():
            if sha in latest:
                log_metrics_now(self.client, latest[sha], metrics)
        return [sha for sha in metrics_by_weights if sha not in latest]

    def configurations_that_trained(self, weight_hashes: list[str]) -> list[str]:
        """The configurations whose repeat runs produced these weights (read, never written)."""
        found = set()
        for sha in weight_hashes:
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{MODEL_HASH_TAG}` = '{sha}'",
                max_results=1,
            )
            found.update(run.data.tags.get(CONFIG_TAG, "unknown") for run in runs)
        return sorted(found)

    def start_repeat_run(self, model: str, repeat: int, seed: int) -> StageRun:
        """Open the run of one training repeat, nested under this stage's run; the caller ends
        it with `end_repeat_run` (for repeats that run side by side, see stages/train.py)."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{model} · repeat {repeat} · seed {seed}",
            tags={
                **self.inherited_tags,
                MLFLOW_PARENT_RUN_ID: self.run_id,
                ROLE_TAG: "repeat",
                REPEAT_TAG: str(repeat),
                SEED_TAG: str(seed),
            },
        )
        nested = StageRun(
            self.client, run.info.run_id, self.parent_id, self.experiment_id, self.inherited_tags
        )
        nested.log_params({"repeat": repeat, "seed": seed})
        return nested

    def end_repeat_run(self, nested: StageRun, status: str) -> None:
        """Send what `nested` buffered and end it FINISHED, FAILED or KILLED; after a failure,
        a store error while sending is one warning, so the run still ends."""
        if status == "FINISHED":
            nested.flush()
        else:
            nested.flush_after_failure()
        self.client.set_terminated(nested.run_id, status)

    def log_trial_run(
        self,
        model: str,
        trial: int,
        params: dict[str, Any],
        val_loss_per_epoch: list[float],
        tags: dict[str, str],
        metrics: dict[str, float] | None = None,
    ) -> None:
        """One tuning trial (a configuration) as a finished run nested under this stage's run:
        its settings, its validation loss per epoch, `metrics` (score, cost) and `tags` (states,
        hosts, position in the candidate list)."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{model} · trial {trial}",
            tags={
                **self.inherited_tags,
                MLFLOW_PARENT_RUN_ID: self.run_id,
                ROLE_TAG: "trial",
                **tags,
            },
        )
        nested = StageRun(
            self.client, run.info.run_id, self.parent_id, self.experiment_id, self.inherited_tags
        )
        nested.log_params(params)
        for epoch, loss in enumerate(val_loss_per_epoch, start=1):
            nested.log_metrics({"val_loss": loss}, step=epoch)
        nested.log_metrics(metrics or {})
        nested.flush()
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def log_forecaster(
        self,
        name: str,
        files: ForecasterFiles,
        spec: dict[str, Any],
        input_example: Any,
        tags: dict[str, str],
    ) -> str:
        """Log model entry `name` as a pyfunc model in this run (see tracking.logged_model);
        return its model id."""
        return log_forecaster(self.run_id, name, files, spec, input_example, tags)


@contextmanager
def stage_run(stage: str, params: Params, params_read: tuple[str, ...]) -> Iterator[StageRun]:
    """Open the child run of `stage` under its configuration's parent; always close it.

    `params_read` are the params keys the stage reads, as dvc.yaml lists them (a section, an
    entry or a leaf: `data`, `models.{entry}`, `train.epochs`, where `{entry}` stands for the
    entry of a stage `<name>@<entry>-<fold>`); the run logs every value under them, and a
    fold's stage carries the tag `fold`.

    The run ends FINISHED on success, KILLED on Ctrl-C or SIGTERM, FAILED on any other error,
    so nothing is ever left RUNNING. Metrics buffered before a failure are sent first: the
    loss history of a diverged or interrupted training run is the part worth looking at.
    Anything the store refuses, here or in the stage's body, is one line (UserError; see
    tracking.store.store_refusals_explained).
    """
    with (
        store_refusals_explained(experiment_name(params)),
        _stage_run(stage, params, params_read) as run,
    ):
        yield run


@contextmanager
def _stage_run(stage: str, params: Params, params_read: tuple[str, ...]) -> Iterator[StageRun]:
    client = connect()
    started = time.monotonic()
    with store_lock():
        experiment_id = get_or_create_experiment(client, experiment_name(params))
        end_dead_runs(client, experiment_id)
        parent_id = get_or_create_parent(client, experiment_id, params)
    entry, fold = entry_and_fold(stage) or (None, None)
    inherited_tags = {
        **provenance_tags(),
        **({FOLD_TAG: str(fold)} if fold is not None else {}),
        STAGE_TAG: stage,
        CONFIG_TAG: config_hash(params),
        MLFLOW_SOURCE_NAME: f"stages/{stage.split('@')[0]}.py",
    }
    run = client.create_run(
        experiment_id,
        run_name=stage,
        tags={**inherited_tags, MLFLOW_PARENT_RUN_ID: parent_id, ROLE_TAG: "stage"},
    )
    stage_run_ = StageRun(client, run.info.run_id, parent_id, experiment_id, inherited_tags)
    # `parent_id` is read when the run ends: settling may have moved the run to another parent.
    with _ended_by_outcome(
        stage_run_, lambda status: end_stage_run(client, run.info.run_id, parent_id, status)
    ):
        stage_run_.set_tags(kernel_tags())
        keys = tuple(key.format(entry=entry) for key in params_read)
        stage_run_.log_params(params_read_by(params, keys))
        yield stage_run_
        stage_run_.log_metrics({"duration_s": time.monotonic() - started})
        stage_run_.flush()
        parent_id = settle_parent(client, experiment_id, params, stage_run_.run_id, parent_id)


def params_read_by(params: Params, keys: tuple[str, ...]) -> dict[str, object]:
    """Every leaf of `params` at or under one of `keys` (dvc.yaml's params of a stage)."""
    return {
        flat: value
        for flat, value in params.flat().items()
        if any(flat == key or flat.startswith(f"{key}.") for key in keys)
    }


@contextmanager
def _ended_by_outcome(run: StageRun, end: Callable[[str], None]) -> Iterator[None]:
    """End `run` FINISHED if the block completes, KILLED on Ctrl-C or SIGTERM, FAILED on any
    other error, so nothing is left RUNNING; a run that did not finish first sends what it
    buffered, because the history of a failure is what explains it."""
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if status != "FINISHED":
            run.flush_after_failure()
        end(status)
