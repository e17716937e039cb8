"""The tracking store: where it is, opening it, and its refusals as one line for the user.

The store defaults to `sqlite:///<workspace>/mlflow.db` with artifacts in
`<workspace>/mlartifacts`. The workspace comes from DVC_ROOT, which DVC points at the user's
workspace even while a queued experiment runs in a temporary copy that is deleted afterwards.
A tracking server (MLFLOW_TRACKING_URI=http...) is probed first, so a dead or refusing server
fails the stage in seconds with what to fix.

MLflow is imported only when a stage opens its run (it takes a second or more to import), so a
stage stopped by bad params or a missing input fails fast and never touches MLflow.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import Params
from lstm_vs_rnn.paths import workspace_root

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


STORE_FILE = "mlflow.db"

ARTIFACTS_DIR = "mlartifacts"

LOCK_FILE = ".mlflow.lock"

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
