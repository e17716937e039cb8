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

import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from filelock import FileLock

from lstm_vs_rnn.errors import UserError, redact
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

# A SQLite store locked by another program (a DB browser, a second tool holding a write
# transaction) is waited for this long, with one message, before the stage gives up; SQLite's
# own busy wait covers the short locks of parallel queue workers first, silently.
STORE_WAIT_ENV = "LSTM_VS_RNN_STORE_WAIT_S"
STORE_WAIT_DEFAULT_S = 60.0
SILENT_BUSY_WAIT_S = 2.0
LOCK_POLL_S = 0.5

# The refused call's own words are cut to this length: the point is the one line.
MAX_REASON_CHARS = 200


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the SQLite store at the workspace root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace_root() / STORE_FILE}"


def experiment_name(params: Params) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or params.tracking.experiment_name


def store_lock() -> FileLock:
    """The lock (`with store_lock():`, waiting as long as it takes) that serialises store
    creation and parent find-or-create across parallel DVC queue workers.

    Two processes opening a fresh SQLite store at once race on its schema migration, and two
    stages of one configuration would otherwise both create a parent.
    """
    return FileLock(workspace_root() / LOCK_FILE)


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

    # Its traceback of every SQL error duplicates the one line store_refusals_explained gives.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    mlflow.set_tracking_uri(uri)
    database = sqlite_database(uri)
    with store_refusals_explained():
        if database is not None and database.exists():
            wait_while_locked(database, uri)
        # The client opens the store at once, creating and migrating a new SQLite file: under
        # the lock, or parallel queue workers race on the schema ("table already exists").
        with store_lock():
            return MlflowClient(uri)


def sqlite_database(uri: str) -> Path | None:
    """The database file of a `sqlite:///` store (a SQLite URI filename such as
    `sqlite:///file:/path/mlflow.db?mode=ro&uri=true` too); None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    return Path(unquote(urlsplit(path).path) if path.startswith("file:") else path)


def wait_while_locked(database: Path, uri: str) -> None:
    """Return once a write transaction on `database` could start; wait for another program's
    lock with one message, up to LSTM_VS_RNN_STORE_WAIT_S seconds (default 60).

    The probe is SQLite's own `BEGIN IMMEDIATE` (then rolled back): it fails while another
    connection holds a RESERVED or EXCLUSIVE lock (`BEGIN EXCLUSIVE`, an open write), the locks
    that make every MLflow write fail with "database is locked". Raises UserError when the
    lock outlasts the bound.
    """
    bound = _wait_bound()
    deadline = time.monotonic() + bound
    if _write_lock_free(database, SILENT_BUSY_WAIT_S):
        return
    print(
        f"waiting for the MLflow store {redact(uri)}: another program holds a lock on it "
        f"(a DB browser or a second tool writing to it?); giving up after {bound:g} s",
        file=sys.stderr,
        flush=True,
    )
    while time.monotonic() < deadline:
        if _write_lock_free(database, LOCK_POLL_S):
            return
    raise UserError(
        f"the MLflow store {redact(uri)} stayed locked by another program for {bound:g} s: "
        f"close the program that holds {database.name} open for writing (a DB browser, "
        f"another tool), then re-run; {STORE_WAIT_ENV} sets how long to wait"
    )


def _wait_bound() -> float:
    text = os.environ.get(STORE_WAIT_ENV, "")
    try:
        bound = float(text) if text else STORE_WAIT_DEFAULT_S
    except ValueError:
        bound = -1.0
    if not 0 <= bound < float("inf"):
        raise UserError(f"{STORE_WAIT_ENV} = {text!r} is not allowed; expected seconds >= 0")
    return bound


def _write_lock_free(database: Path, busy_wait_s: float) -> bool:
    """Whether a write transaction starts within `busy_wait_s` (SQLite's busy timeout)."""
    try:
        with closing(sqlite3.connect(database, timeout=busy_wait_s, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return False
        raise
    return True


@contextmanager
def store_refusals_explained(experiment: str | None = None) -> Iterator[None]:
    """Anything the tracking store refuses, as one line: the store (credentials redacted),
    what it refused and what to do.

    The one boundary for MLflow's exceptions (REST refusals included), SQLAlchemy's and
    SQLite's errors and HTTP failures, wherever in the stage they happen; raises UserError.
    """
    import requests
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (MlflowException, SQLAlchemyError, sqlite3.Error, requests.RequestException) as exc:
        raise UserError(_refusal(exc, experiment)) from None


def _refusal(exc: Exception, experiment: str | None) -> str:
    """The one line for a refused call: the store, its reason, what to do."""
    uri = tracking_uri()
    where = f"the MLflow store {redact(uri)}"
    code = getattr(exc, "error_code", "")
    cause = database_error(exc)
    if cause is not None:
        reason = _one_line(str(cause) or type(cause).__name__, uri)
        return (
            f"{where} refused the stage's call ({type(cause).__name__}: {reason}); "
            f"{_database_todo(reason)}"
        )
    reason = refusal_reason(exc)
    if code == "PERMISSION_DENIED":
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "you")
        return (
            f"user '{user}' may not log to the MLflow experiment '{experiment}' at "
            f"{redact(uri)} (403): ask the server's admin to run 'make teammate NAME={user}'"
        )
    if "database is locked" in reason:
        todo = (
            "another program holds it open for writing (a DB browser, a second tool): close "
            "it and re-run"
        )
    elif type(exc).__module__.startswith("requests") or "API request" in reason:
        todo = "check that the server is running and reachable, then re-run"
    elif code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS"):
        todo = "a value it does not accept; change it in params.yaml or the environment"
    else:
        todo = "check the store (MLFLOW_TRACKING_URI, its disk or its server log), then re-run"
    return f"{where} refused the stage's call ({type(exc).__name__}: {reason}); {todo}"


def refusal_reason(exc: Exception) -> str:
    """The refused call's own words in one line, cut to MAX_REASON_CHARS, passwords removed."""
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    return _one_line(text, tracking_uri())


# The packages whose exceptions are the database's own words (DB-API drivers), under MLflow's
# and SQLAlchemy's wrappers: SQLAlchemy's first line can be a hint about its session
# ("consider using a session.no_autoflush block") that hides them.
DATABASE_DRIVERS = ("sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb")


def database_error(exc: BaseException) -> BaseException | None:
    """The database driver's exception under `exc` (SQLAlchemy's `orig`, or a `raise ... from`
    chain), or None when the refusal did not come from the database."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.split(".")[0] in DATABASE_DRIVERS:
            return current
        current = getattr(current, "orig", None) or current.__cause__
    return None


def _database_todo(reason: str) -> str:
    """What to do about the database's own refusal of a `sqlite:///` or other SQL store."""
    database = sqlite_database(tracking_uri())
    if database is not None and not database.exists():
        return (
            f"{database} was deleted or moved while the stage ran: put it back, or re-run the "
            f"stage to log to a new store"
        )
    if "readonly" in reason or "read-only" in reason:
        return (
            f"{database or 'the store'} or its folder cannot be written (a read-only file "
            f"system or permissions): make both writable, or set MLFLOW_TRACKING_URI to a "
            f"store you can write"
        )
    if "database is locked" in reason:
        return (
            "another program holds it open for writing (a DB browser, a second tool): close "
            "it and re-run"
        )
    if "no such table" in reason:
        return (
            f"{database or 'the store'} is not a complete MLflow store (replaced while the "
            f"stage ran?): move it away and re-run to start a new one"
        )
    return "check the store (MLFLOW_TRACKING_URI, its disk or its server log), then re-run"


def _one_line(text: str, uri: str) -> str:
    """`text`'s first line, cut to MAX_REASON_CHARS, with every password removed."""
    text = redact(text, urlsplit(uri).password)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= MAX_REASON_CHARS else first[: MAX_REASON_CHARS - 3] + "..."


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
    check_artifacts_beside_store(experiment.artifact_location, name)
    if experiment.lifecycle_stage != "active":
        raise UserError(
            f"the MLflow experiment '{name}' is deleted; restore it with "
            f"'mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}' or set MLFLOW_EXPERIMENT_NAME"
        )
    return experiment.experiment_id


def check_artifacts_beside_store(artifact_location: str, experiment: str) -> None:
    """Refuse, before any work, a local store whose experiment keeps its artifacts in another
    project's `mlartifacts/`: the project was moved or copied after a run.

    MLflow fixes an experiment's artifact location as an absolute path when it creates the
    experiment (a relative one is resolved against the working directory), and every run's and
    logged model's artifact URI derives from it: without this check the new runs' artifacts go
    to the old folder, recreated if it was deleted, and are lost with it. The way out is
    `make relocate-store` (commands.relocate_store), or a fresh store. Raises UserError.
    """
    uri = tracking_uri()
    expected = local_artifacts_dir(uri)
    location = local_artifacts_path(artifact_location)
    if expected is None or location is None or location.name != ARTIFACTS_DIR:
        return
    if location.resolve() == expected:
        return
    database = sqlite_database(uri)
    raise UserError(
        f"the MLflow store {database} was made in {location.parent}: its experiment "
        f"'{experiment}' keeps artifacts in {location}, not beside the store in {expected} "
        f"(the project was moved or copied); run 'make relocate-store' to point the store at "
        f"{expected}, or move {database.name} and {ARTIFACTS_DIR}/ away for a fresh store"
    )


def local_artifacts_path(artifact_location: str) -> Path | None:
    """The folder of a `file://` (or plain path) artifact location; None for a remote one."""
    parts = urlsplit(artifact_location)
    if parts.scheme not in ("", "file"):
        return None
    return Path(unquote(parts.path))


def local_artifacts_dir(uri: str) -> Path | None:
    """Artifacts live beside a SQLite store; a tracking server decides for itself (None)."""
    database = sqlite_database(uri)
    return None if database is None else (database.parent / ARTIFACTS_DIR).resolve()
