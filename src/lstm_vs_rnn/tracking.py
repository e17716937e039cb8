"""Everything the pipeline says to MLflow, in one place, used the same way by every stage.

Organisation: one *parent* run per pipeline configuration (all of params.yaml, hashed), found
or created by whichever stage runs first, and one *child* run per stage execution. DVC skips
unchanged stages, so a configuration's parent holds the children of the stages that ran for it;
evaluation always runs when any model changes and writes every model's test metrics to the
parent, so each parent row in the UI carries the headline numbers.

The store defaults to `sqlite:///<workspace>/mlflow.db` with artifacts in
`<workspace>/mlartifacts`. The workspace comes from DVC_ROOT, which DVC points at the user's
workspace even while a queued experiment runs in a temporary copy that is deleted afterwards.

MLflow is imported only when a stage opens its run (it takes a second or more to import), so a
stage stopped by bad params or a missing input fails fast and never touches MLflow.
"""

from __future__ import annotations

import fcntl
import functools
import getpass
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.kernels import kernel_tags
from lstm_vs_rnn.liveness import end_dead_runs, location_tags
from lstm_vs_rnn.params import CsvData, DataParams, LaggedData, Params
from lstm_vs_rnn.paths import PROJECT_ROOT, workspace_root

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
LOCK_FILE = ".mlflow.lock"

CONFIG_TAG = "pipeline.config_hash"
CODE_VERSION_TAG = "pipeline.code_version"
ROLE_TAG = "pipeline.role"
STAGE_TAG = "dvc.stage"
EXPERIMENT_TAG = "dvc.exp_name"
COMMIT_TAG = "mlflow.source.git.commit"
DIRTY_TAG = "git.dirty"
MODEL_HASH_TAG = "model.sha256"
REPEAT_TAG = "repeat"
# Each model's headline on its configuration's parent run: the mean test RMSE over repeats.
HEADLINE_METRIC = "test_rmse.mean"
WEIGHTS_FROM_TAG = "weights_trained_under"
SEED_TAG = "seed"
USER_TAG = "mlflow.user"
MERGED_TAG = "pipeline.merged_into"
# The pipeline's code and definition: their content is part of a configuration's identity.
CODE_FILES = ("src", "stages", "dvc.yaml", "requirements.txt")
# The files `git.dirty` compares with the commit: the pipeline's code, definition and params.
CODE_AND_PARAMS = ("src", "stages", "dvc.yaml", "params.yaml", "requirements.txt")
# mlflow.utils.mlflow_tags, spelled out so that importing this module does not import MLflow.
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_SOURCE_NAME = "mlflow.source.name"

# MLflow accepts at most 1000 metrics in one log_batch call.
MAX_METRICS_PER_BATCH = 1000
# A configuration has one run per stage execution and training repeat: far fewer than this.
MAX_SEARCH_RESULTS = 50_000
# Buffered per-epoch metrics are sent at least this often, so long runs show progress.
FLUSH_INTERVAL_S = 10.0
# A dead server must fail the stage in seconds, not after MLflow's ~4 minutes of retries (the
# probe in connect() does that); a server that goes away mid-stage is retried for about 30 s
# (waits of 0, 2, 4, 8, 16 s plus jitter), time for `mlflow server` to restart even on a busy
# machine (it takes 10 s or more to boot under load), so nothing logged is lost.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
PROBE_TIMEOUT_S = 5.0
# The API call of the pre-flight check: cheap, and it passes through the server's Host-header
# check and, with --app-name basic-auth, its credential check (`/health` passes neither).
PROBE_API_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
INVALID_HOST_MARKER = "Invalid Host header"
# Parents of one configuration looked at when picking the canonical one.
MAX_PARENTS = 100


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the SQLite store at the workspace root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace_root() / STORE_FILE}"


def experiment_name(params: Params) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or params.tracking.experiment_name


def redact(uri: str) -> str:
    """The URI with any password replaced, so it can be printed or logged."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def config_hash(params: Params) -> str:
    """Identifies a pipeline configuration: every param that can change an output, and the
    version of the code that computes them.

    With the code in it, a parent's metrics always come from one code version: a code change
    starts a new parent instead of overwriting the old one's headline (as DVC re-runs the
    stages whose code changed)."""
    relevant = {
        key: value for key, value in params.flat().items() if not key.startswith("tracking.")
    }
    relevant["code_version"] = code_version()
    if isinstance(params.data, CsvData):
        relevant["data_version"] = _csv_version(params.data.path)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


@functools.cache
def _csv_version(relative: str) -> str:
    """The user's CSV by content: editing it is a new configuration, as it is to DVC.

    Read from the checkout that runs (DVC's copy under a queued experiment), the file the
    generate stage reads, and hashed once per process."""
    path = PROJECT_ROOT / relative
    return file_sha256(path) if path.is_file() else "missing"


@functools.cache
def code_version() -> str:
    """A digest of the pipeline's code as it is on disk (committed or not): every file under
    CODE_FILES, by path and content."""
    digest = hashlib.sha256()
    for path in sorted(_code_files()):
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def _code_files() -> Iterator[Path]:
    for name in CODE_FILES:
        path = PROJECT_ROOT / name
        if path.is_dir():
            yield from path.rglob("*.py")
        elif path.is_file():
            yield path


def describe_configuration(params: Params) -> str:
    """A parent run name a person can tell apart from its neighbours in the runs table."""
    models = " · ".join(
        f"{name} h{model.hidden_size}x{model.num_layers}" for name, model in params.models.items()
    )
    train = params.train
    name = (
        f"{models} · {train.epochs}ep lr{train.learning_rate:g} x{train.repeats} · "
        f"{_describe_data(params.data)} w{params.data.window} · {config_hash(params)[:6]}"
    )
    exp = os.environ.get("DVC_EXP_NAME")
    return f"{exp}: {name}" if exp else name


def _describe_data(data: DataParams) -> str:
    if isinstance(data, CsvData):
        return f"{Path(data.path).name}:{data.column}"
    if isinstance(data, LaggedData):
        return f"lag{data.lag} n{data.n_points}"
    return f"n{data.n_points}"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def store_lock() -> Iterator[None]:
    """Serialise store creation and parent find-or-create across parallel DVC queue workers.

    Two processes opening a fresh SQLite store at once race on its schema migration, and two
    stages of one configuration would otherwise both create a parent.
    """
    path = workspace_root() / LOCK_FILE
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        _log_params_batched(self.client, self.run_id, params)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=_run_tags(tags))

    def log_figure(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path="figures")

    def log_artifact(self, path: Path, folder: str) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def log_to_parent(self, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """The configuration's headline numbers and verdicts, shown on its row in the runs
        table (tags are columns there too)."""
        _log_metrics_now(self.client, self.parent_id, metrics)
        self.client.log_batch(self.parent_id, tags=_run_tags(tags))

    def note_weights_from_elsewhere(self, configurations: list[str]) -> None:
        """Say, on this run and its parent, that evaluated weights were trained under other
        configurations (DVC reused them): their runs hold their training, not this one's."""
        note = {WEIGHTS_FROM_TAG: ", ".join(configurations) or "no run in this experiment"}
        self.set_tags(note)
        self.client.log_batch(self.parent_id, tags=_run_tags(note))

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
                _log_metrics_now(self.client, latest[sha], metrics)
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

    @contextmanager
    def repeat_run(self, model: str, repeat: int, seed: int) -> Iterator[StageRun]:
        """The run of one training repeat, nested under this stage's run, closed like it.

        Whatever it buffered reaches the store even when the block fails or is interrupted:
        the history of a failed repeat is what explains the failure.
        """
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
        run_id = run.info.run_id
        nested = StageRun(
            self.client, run_id, self.parent_id, self.experiment_id, self.inherited_tags
        )
        with _ended_by_outcome(nested, lambda status: self.client.set_terminated(run_id, status)):
            nested.log_params({"repeat": repeat, "seed": seed})
            yield nested
            nested.flush()

    def log_forecaster(
        self,
        name: str,
        weights: Path,
        scaler: Path,
        spec: dict[str, Any],
        input_example: Any,
        tags: dict[str, str],
    ) -> None:
        """Log a pyfunc model, named after its model entry, that forecasts in raw units.

        Models from code (`forecaster_model.py`) with the weights, scaler and network spec as
        artifacts: no pickle and no `torch.export`. Requirements are given, not inferred
        (inference costs 2-6 s a call).
        """
        import mlflow
        import mlflow.pyfunc
        import numpy as np
        import torch
        import yaml
        from mlflow.models import ModelSignature
        from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

        from lstm_vs_rnn.checkpoints import (
            FORECASTER_CODE,
            FORECASTER_MODULES,
            SCALER_ARTIFACT,
            SPEC_ARTIFACT,
            WEIGHTS_ARTIFACT,
        )

        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype("float64"), (-1, spec["window"]))]),
            outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]),
            # Optional: forecast steps per window (forecaster_model.py); the outputs above are
            # the default's, one step, shape (n,); a larger horizon gives (n, horizon).
            params=ParamSchema([ParamSpec("horizon", "long", 1)]),
        )
        with tempfile.TemporaryDirectory() as folder:
            spec_file = Path(folder) / "spec.json"
            spec_file.write_text(json.dumps(spec, indent=2, sort_keys=True), encoding="utf-8")
            package = Path(folder) / FORECASTER_CODE.parent.name
            package.mkdir()
            for module in FORECASTER_MODULES:
                shutil.copy2(FORECASTER_CODE.with_name(f"{module}.py"), package)
            with mlflow.start_run(run_id=self.run_id):
                mlflow.pyfunc.log_model(
                    name=name,
                    python_model=str(FORECASTER_CODE),
                    artifacts={
                        WEIGHTS_ARTIFACT: str(weights),
                        SCALER_ARTIFACT: str(scaler),
                        SPEC_ARTIFACT: str(spec_file),
                    },
                    code_paths=[str(package)],
                    signature=signature,
                    input_example=input_example,
                    pip_requirements=[
                        f"torch=={torch.__version__.split('+')[0]}",
                        f"numpy=={np.__version__}",
                        f"pyyaml=={yaml.__version__}",
                    ],
                    tags=tags,
                )


@contextmanager
def stage_run(stage: str, params: Params, param_prefixes: tuple[str, ...]) -> Iterator[StageRun]:
    """Open the child run of `stage` under its configuration's parent; always close it.

    The run ends FINISHED on success, KILLED on Ctrl-C or SIGTERM, FAILED on any other error,
    so nothing is ever left RUNNING. Metrics buffered before a failure are sent first: the
    loss history of a diverged or interrupted training run is the part worth looking at. A
    write the server refuses is one line (no grant).
    """
    with (
        permission_errors_explained(experiment_name(params)),
        _stage_run(stage, params, param_prefixes) as run,
    ):
        yield run


@contextmanager
def _stage_run(stage: str, params: Params, param_prefixes: tuple[str, ...]) -> Iterator[StageRun]:
    client = connect()
    started = time.monotonic()
    with store_lock():
        experiment_id = get_or_create_experiment(client, experiment_name(params))
        end_dead_runs(client, experiment_id)
        parent_id = _get_or_create_parent(client, experiment_id, params)
    inherited_tags = {
        **_provenance_tags(),
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
        stage_run_, lambda status: _end_run(client, run.info.run_id, parent_id, status)
    ):
        stage_run_.set_tags(kernel_tags())
        stage_run_.log_params(
            {key: value for key, value in params.flat().items() if key.startswith(param_prefixes)}
        )
        yield stage_run_
        stage_run_.log_metrics({"duration_s": time.monotonic() - started})
        stage_run_.flush()
        parent_id = _settle_parent(client, experiment_id, params, stage_run_.run_id, parent_id)


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


def connect() -> MlflowClient:
    """A client for the store, failing fast with one clear line if a server is unreachable."""
    uri = tracking_uri()
    # Progress bars for local file copies would flood the stage logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if urlsplit(uri).scheme in ("http", "https"):
        for key, value in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(key, value)
        if urlsplit(uri).password is not None:
            # MLflow prints "View run at <tracking URI>/#/..." to stdout, password included.
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        _probe_server(uri)
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    # The client opens the store at once, creating and migrating a new SQLite file: under the
    # lock, or parallel queue workers race on the schema ("table already exists", "locked").
    with store_lock():
        return MlflowClient(uri)


def _probe_server(uri: str) -> None:
    """Fail in seconds, with what to fix, on anything that would stop the stage's first call."""
    import requests

    base = uri.rstrip("/")
    try:
        requests.get(base + "/health", timeout=PROBE_TIMEOUT_S).raise_for_status()
        answer = requests.get(base + PROBE_API_PATH, auth=_credentials(), timeout=PROBE_TIMEOUT_S)
    except requests.RequestException as exc:
        raise UserError(
            f"cannot reach the MLflow tracking server at {redact(uri)} "
            f"({type(exc).__name__}); check that it is running and reachable, or unset "
            f"MLFLOW_TRACKING_URI to log to the local store"
        ) from None
    problem = _api_problem(answer.status_code, answer.text, redact(uri))
    if problem:
        raise UserError(problem)


def _credentials() -> tuple[str, str] | None:
    """What MLflow's client sends too: MLFLOW_TRACKING_USERNAME and _PASSWORD, if set."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None


def _api_problem(status: int, body: str, where: str) -> str | None:
    """One line naming what to fix for a refused API call; None when the call succeeded."""
    if status < 400:
        return None
    if status == 401:
        if _credentials() is None:
            return (
                f"the MLflow server at {where} needs a login: set MLFLOW_TRACKING_USERNAME "
                f"and MLFLOW_TRACKING_PASSWORD"
            )
        return (
            f"the MLflow server at {where} rejected the user name or password (401): check "
            f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if status == 403 and INVALID_HOST_MARKER in body:
        return (
            f"the MLflow server at {where} does not accept the host name "
            f"'{urlsplit(where).hostname}' (403 Invalid Host header): restart it with that name "
            f"in --allowed-hosts (make server ALLOWED_HOSTS=...), or use a name it accepts"
        )
    if status == 403:
        return (
            f"the MLflow server at {where} refused access (403): ask its admin for permission "
            f"(make teammate NAME=<you>)"
        )
    return f"the MLflow server at {where} answered {status} to an API call; see its log"


@contextmanager
def permission_errors_explained(experiment: str) -> Iterator[None]:
    """A write the server refuses (403: no EDIT on the experiment) as one line, not a trace."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code != "PERMISSION_DENIED":
            raise
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "you")
        raise UserError(
            f"user '{user}' may not log to the MLflow experiment '{experiment}' (403): ask "
            f"the server's admin to run 'make teammate NAME={user}'"
        ) from None


def _end_run(client: MlflowClient, run_id: str, parent_id: str, status: str) -> None:
    """Close the child, and give the parent the duration its stages took."""
    client.set_terminated(run_id, status, end_time=int(time.time() * 1000))
    client.set_terminated(parent_id, "FINISHED", end_time=_parent_end_time(client, parent_id))


def _parent_end_time(client: MlflowClient, parent_id: str) -> int:
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


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, created if missing; safe when several machines create it at once.

    The store's unique name decides: the losers of the race get RESOURCE_ALREADY_EXISTS and
    read the winner's experiment.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        artifacts = local_artifacts_dir(tracking_uri())
        location = artifacts.as_uri() if artifacts else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise UserError(f"the MLflow experiment '{name}' exists but cannot be read")
    if experiment.lifecycle_stage != "active":
        raise UserError(
            f"the MLflow experiment '{name}' is deleted; restore it with "
            f"'mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}' or set MLFLOW_EXPERIMENT_NAME"
        )
    return experiment.experiment_id


def local_artifacts_dir(uri: str) -> Path | None:
    """Artifacts live beside a SQLite store; a tracking server decides for itself (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS_DIR).resolve()


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
    from mlflow.exceptions import MlflowException

    canonical, *duplicates = parent_ids(client, experiment_id, params) or [None]
    for duplicate in duplicates:
        children = client.search_runs(
            [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{duplicate}'"
        )
        for child in children:
            client.set_tag(child.info.run_id, MLFLOW_PARENT_RUN_ID, canonical)
        metrics = client.get_run(duplicate).data.metrics
        have = client.get_run(canonical).data.metrics
        _log_metrics_now(client, canonical, {k: v for k, v in metrics.items() if k not in have})
        with suppress(MlflowException):  # another stage merged and deleted it a moment ago
            client.set_tag(duplicate, MERGED_TAG, canonical)
            client.delete_run(duplicate)
    return canonical


def _settle_parent(
    client: MlflowClient, experiment_id: str, params: Params, run_id: str, parent_id: str
) -> str:
    """Merge duplicate parents and make sure this stage's run hangs under the canonical one
    (another stage may have merged and deleted its parent after this run was created)."""
    canonical = merge_duplicate_parents(client, experiment_id, params) or parent_id
    if canonical != parent_id:
        client.set_tag(run_id, MLFLOW_PARENT_RUN_ID, canonical)
    return canonical


def _get_or_create_parent(client: MlflowClient, experiment_id: str, params: Params) -> str:
    existing = find_parent(client, experiment_id, params)
    if existing:
        return existing
    name = describe_configuration(params)
    tags = {
        **_provenance_tags(),
        CONFIG_TAG: config_hash(params),
        CODE_VERSION_TAG: code_version(),
        ROLE_TAG: "configuration",
        MLFLOW_RUN_NAME: name,
    }
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    try:
        _log_params_batched(client, run.info.run_id, params.flat())
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")  # never reused: find_parent skips it
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
    # Another machine may have made one at the same moment: keep the canonical one only.
    return merge_duplicate_parents(client, experiment_id, params) or run.info.run_id


def _provenance_tags() -> dict[str, str]:
    """Who ran it, where its process lives, git commit and state, the DVC experiment if any."""
    tags = {USER_TAG: _user(), **location_tags()}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags[COMMIT_TAG] = commit
        # dvc.lock changes as stages finish; it says nothing about the code that ran.
        # Only what decides the outputs: DVC itself rewrites dvc.lock and the git-tracked reports.
        changes = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_AND_PARAMS)
        tags[DIRTY_TAG] = "true" if changes else "false"
    if os.environ.get("DVC_EXP_NAME"):
        tags[EXPERIMENT_TAG] = os.environ["DVC_EXP_NAME"]
    return tags


def _user() -> str:
    """The server account when there is one (what the server knows), else the login name."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return result.stdout.strip()


def _log_metrics_batched(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])


def _log_metrics_now(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    """Single-valued metrics (step 0) written into another run than the stage's own."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    _log_metrics_batched(client, run_id, [Metric(k, float(v), now, 0) for k, v in metrics.items()])


def _run_tags(tags: dict[str, str]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(key, value) for key, value in tags.items()]


def _log_params_batched(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(key, "null" if value is None else str(value)) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def pipeline_stages(params: Params) -> list[str]:
    """The DVC stage names of the pipeline for these params (train is expanded per model)."""
    return ["generate", "scale", *(f"train@{name}" for name in params.models), "evaluate"]


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


def flatten_metrics(
    metrics: dict[str, Any], prefix: str = ""
) -> tuple[dict[str, float], dict[str, str]]:
    """metrics.json as MLflow metrics (numbers) and tags (verdicts, which are text); an "n/a"
    statistic (too few repeats) becomes neither."""
    numbers: dict[str, float] = {}
    verdicts: dict[str, str] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            inner_numbers, inner_verdicts = flatten_metrics(value, f"{name}.")
            numbers.update(inner_numbers)
            verdicts.update(inner_verdicts)
        elif key == "verdict":
            verdicts[name] = str(value)
        elif isinstance(value, int | float):
            numbers[name] = float(value)
    return numbers, verdicts
