"""`make server`: a team's MLflow tracking server on PostgreSQL, started and stopped as one.

Usage: `PYTHONPATH=src python -m lstm_vs_rnn.commands.team_server [--host 127.0.0.1] [--port 5050]
[--allowed-hosts NAME,...] [--auth] [--data-dir .team-server] [--study-port 5051]`.

Everything lives in one git-ignored folder (`.team-server/` by default), so the data survives a
restart and a backup is a copy of it (or `pg_dump`, see the README):

    postgres/data      the PostgreSQL 15 cluster (runs, metrics, params; users when --auth;
                       the tuning studies)
    postgres/          its Unix socket, where this server and local tools reach every database
    artifacts/         every run's files, served by the tracking server (clients need no
                       shared disk: `--artifacts-destination`)
    postgres.log       PostgreSQL's own log
    optuna.password    the study role's password (mode 0600), made at the first start
    optuna-storage.url OPTUNA_STORAGE for tune workers on other machines (mode 0600)

PostgreSQL also listens on `--host`, port `--study-port`, for one thing only: the role `optuna`
with its password, to the `optuna` database (`make tune-worker` on other machines). The tracking
and user databases answer on the socket only.

The server prints `MLFLOW_TRACKING_URI=http://<host>:<port>` on a line of its own once it
answers; Ctrl-C (or SIGTERM) stops the tracking server, then PostgreSQL, and frees the port.
A tracking server checks the Host header of every API call: clients that reach it by another
name than localhost or 127.0.0.1 get 403 unless that name is in `--allowed-hosts`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from lstm_vs_rnn.commands.mlflow_server import (
    MlflowServer,
    ensure_port_free,
    server_command,
    stop_group,
)
from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.errors import UserError, redact
from lstm_vs_rnn.paths import workspace_root
from lstm_vs_rnn.processes import die_with_parent

if TYPE_CHECKING:
    import psycopg

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DEFAULT_PORT = 5050
# PostgreSQL's port: tune workers on other machines reach the study database here (TCP, with a
# password), on the address the MLflow server binds; also names its Unix socket.
DEFAULT_STUDY_PORT = 5051
DEFAULT_WORKERS = 2
DATA_DIR = ".team-server"
# PostgreSQL refuses to run as root; under root its processes run as this system user.
POSTGRES_USER = "postgres"
DB_ROLE = "mlflow"
TRACKING_DB = "mlflow"
AUTH_DB = "mlflow_auth"
# The tuning studies' database (OPTUNA_STORAGE; see modeling.tuning) and the one role that may
# use it over TCP, with the password generated at the first start (STUDY_PASSWORD_FILE).
OPTUNA_DB = "optuna"
OPTUNA_ROLE = "optuna"
STUDY_PASSWORD_FILE = "optuna.password"
STUDY_URL_FILE = "optuna-storage.url"
# Credential checks cost 0.4-0.6 s a request without the cache, 78 ms with it (issue 10).
AUTH_CACHE_TTL_S = 60
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
# Names every client on this machine uses; `--allowed-hosts` replaces MLflow's defaults.
LOCAL_NAMES = ("localhost", "127.0.0.1")
START_TIMEOUT_S = 120.0
# Output of the MLflow server that asks nothing of a user (docs/team.md, "The server's log"):
# psycopg's note that it dropped the aborted pipeline of a multi-row insert that hit a
# duplicate key (a race between clients, or a client's retry), after which MLflow rolls back
# and writes what is missing, so nothing is lost (PostgreSQL's own ERROR line for the
# statement stays in postgres.log).
SERVER_NOISE = re.compile(
    rb"error ignored terminating <psycopg\.Pipeline \[INERROR.*pipeline aborted"
)


@dataclass(frozen=True)
class ServerConfig:
    """Where the server listens, which host names it answers to, and where its data lives."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()
    auth: bool = False
    workers: int = DEFAULT_WORKERS
    study_port: int = DEFAULT_STUDY_PORT

    @property
    def pg_root(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_root / "data"

    @property
    def artifacts(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def auth_config(self) -> Path:
        return self.data_dir / "basic_auth.ini"

    @property
    def local_url(self) -> str:
        """The server as this machine reaches it, for the launcher's own health check."""
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{local}:{self.port}"

    @property
    def url(self) -> str:
        """What clients put in MLFLOW_TRACKING_URI: the first allowed name when bound widely."""
        public = self.host
        if self.host in ("0.0.0.0", "::"):
            public = self.allowed_hosts[0] if self.allowed_hosts else socket.gethostname()
        return f"http://{public}:{self.port}"

    @property
    def study_password_file(self) -> Path:
        return self.data_dir / STUDY_PASSWORD_FILE

    @property
    def study_url_file(self) -> Path:
        return self.data_dir / STUDY_URL_FILE

    def database_uri(self, database: str) -> str:
        """SQLAlchemy URI over the Unix socket (SQLAlchemy 2.1 maps postgresql:// to psycopg 3);
        the study database as its own role, so tables made locally and remotely share an owner."""
        role = OPTUNA_ROLE if database == OPTUNA_DB else DB_ROLE
        return f"postgresql://{role}@/{database}?host={self.pg_root}&port={self.study_port}"

    def study_uri(self, password: str) -> str:
        """The study database over TCP, for tune workers on other machines (password auth)."""
        credentials = f"{OPTUNA_ROLE}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@{self.study_host}:{self.study_port}/{OPTUNA_DB}"

    @property
    def study_host(self) -> str:
        """The name other machines reach PostgreSQL by: the tracking URL's."""
        return urlsplit(self.url).hostname or self.host

    def host_patterns(self) -> list[str]:
        """MLflow matches the Host header, port included, so each name also gets `name:*`."""
        names = dict.fromkeys((*LOCAL_NAMES, *self.allowed_hosts))
        return [pattern for name in names for pattern in (name, f"{name}:*")]


class TeamServer:
    """PostgreSQL plus `mlflow server` on it; `start()` returns once the API answers."""

    def __init__(self, config: ServerConfig, mlflow_log: Path | None = None) -> None:
        self.config = config
        self.mlflow_log = mlflow_log
        self.postgres: subprocess.Popen[bytes] | None = None
        self.mlflow: MlflowServer | None = None

    def start(self, timeout: float = START_TIMEOUT_S, tracking: bool = True) -> None:
        """Start PostgreSQL (its tracking and study databases), then, unless `tracking` is
        False, the MLflow server on it; return once both answer. Without `tracking`, a job that
        only shares Optuna studies (benchmarks/tuning.py) skips the MLflow server's start-up
        (5 s on 2 cores). Raises UserError if a port is taken; on any failure what started is
        stopped."""
        check_auth_environment(self.config)
        ensure_port_free(
            self.config.host, self.config.port, f"make server SERVER_PORT={self.config.port + 1}"
        )
        ensure_port_free(
            self.config.host,
            self.config.study_port,
            f"make server STUDY_PORT={self.config.study_port + 1}",
        )
        try:
            self._start_postgres(timeout)
            if tracking:
                self._start_mlflow(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """The tracking server first (it holds connections), then PostgreSQL's fast shutdown."""
        if self.mlflow is not None:
            self.mlflow.stop()
        if self.postgres is not None:
            stop_group(self.postgres, signal.SIGINT)

    def wait(self) -> str:
        """Block until either process exits; return which one did."""
        while True:
            for name, code in (
                ("the MLflow server", self.mlflow.poll() if self.mlflow else None),
                ("PostgreSQL", self.postgres.poll() if self.postgres else None),
            ):
                if code is not None:
                    return f"{name} exited with code {code}"
            time.sleep(0.5)

    def _start_postgres(self, timeout: float) -> None:
        prepare_cluster(self.config)
        with (self.config.data_dir / "postgres.log").open("ab") as log:
            self.postgres = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.config.pg_data),
                    "-k",
                    str(self.config.pg_root),
                    "-p",
                    str(self.config.study_port),
                    "-c",
                    f"listen_addresses={self.config.host}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # After the change of user: a fast shutdown if this process dies, even by SIGKILL.
                preexec_fn=lambda: die_with_parent(signal.SIGINT),
                **_as_postgres_user(),
            )
        wait_for_postgres(self.config, self.postgres, timeout)
        for database in (TRACKING_DB, *((AUTH_DB,) if self.config.auth else ())):
            ensure_database(self.config, database)
        ensure_study_database(self.config)

    def _start_mlflow(self, timeout: float) -> None:
        self.config.artifacts.mkdir(parents=True, exist_ok=True)
        if self.config.auth:
            write_auth_config(self.config)
        self.mlflow = MlflowServer(
            mlflow_command(self.config),
            self.config.local_url,
            env=mlflow_env(self.config),
            log=self.mlflow_log,
            drop=SERVER_NOISE,
        )
        self.mlflow.start(timeout)


def mlflow_command(config: ServerConfig) -> list[str]:
    """The tracking server on PostgreSQL, answering to the allowed host names, with basic
    auth if asked for."""
    options = [
        "--allowed-hosts",
        ",".join(config.host_patterns()),
        "--registry-store-uri",
        config.database_uri(TRACKING_DB),
    ]
    if config.auth:
        options += ["--app-name", "basic-auth"]
    return server_command(
        config.database_uri(TRACKING_DB),
        config.artifacts,
        config.host,
        config.port,
        config.workers,
        options,
    )


def mlflow_env(config: ServerConfig) -> dict[str, str]:
    """This process's environment, with the basic-auth app's settings file when asked for."""
    auth = {"MLFLOW_AUTH_CONFIG_PATH": str(config.auth_config)} if config.auth else {}
    return {**os.environ, **auth}


def check_auth_environment(config: ServerConfig) -> None:
    """The auth app needs both secrets from the environment; name the missing ones up front."""
    if not config.auth:
        return
    missing = [name for name in (ADMIN_PASSWORD_ENV, SECRET_KEY_ENV) if not os.environ.get(name)]
    if missing:
        raise UserError(
            f"--auth needs {' and '.join(missing)} set in the environment (the admin's first "
            f"password; a random secret key, e.g. from 'openssl rand -hex 32')"
        )


def write_auth_config(config: ServerConfig) -> None:
    """The basic-auth app's settings: users in the same PostgreSQL, credential cache on.

    The admin password is not in the file: MLflow reads it from MLFLOW_AUTH_ADMIN_PASSWORD when
    it creates the admin user, the first time only.
    """
    config.auth_config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {config.database_uri(AUTH_DB)}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
    )


def prepare_cluster(config: ServerConfig) -> None:
    """Create the data folder and, the first time, the PostgreSQL cluster (as `postgres`)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.pg_root.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(config.pg_root, POSTGRES_USER, POSTGRES_USER)
        _check_postgres_can_reach(config.pg_root)
    if not (config.pg_data / "PG_VERSION").exists():
        init_cluster(config)
    write_access_rules(config)


def init_cluster(config: ServerConfig) -> None:
    result = subprocess.run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(config.pg_data),
            "-U",
            DB_ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
        capture_output=True,
        text=True,
        check=False,
        **_as_postgres_user(),
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"initdb failed for {config.pg_data}: {last}")


# Who may connect how (written at every start, replacing initdb's): anyone who can open the
# socket folder (0700, the server's user) as any role; over TCP only the study role, with its
# password, only to its database (initdb's default would trust every local TCP client).
PG_HBA = """\
local all all trust
host {db} {role} 0.0.0.0/0 scram-sha-256
host {db} {role} ::/0 scram-sha-256
"""


def write_access_rules(config: ServerConfig) -> None:
    hba = config.pg_data / "pg_hba.conf"
    hba.write_text(PG_HBA.format(db=OPTUNA_DB, role=OPTUNA_ROLE))
    if os.geteuid() == 0:
        shutil.chown(hba, POSTGRES_USER, POSTGRES_USER)


def _check_postgres_can_reach(folder: Path) -> None:
    reach = subprocess.run(["test", "-w", str(folder)], check=False, **_as_postgres_user())
    if reach.returncode != 0:
        raise UserError(
            f"the '{POSTGRES_USER}' user cannot open {folder} (a parent folder is private); "
            f"pass --data-dir (make server DATA_DIR=...) a folder such as /srv/mlflow-team"
        )


def _as_postgres_user() -> dict[str, str]:
    """Popen arguments that drop root to the postgres user; nothing for any other user."""
    if os.geteuid() != 0:
        return {}
    return {"user": POSTGRES_USER, "group": POSTGRES_USER}


def wait_for_postgres(
    config: ServerConfig, process: subprocess.Popen[bytes], timeout: float
) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(
                f"PostgreSQL exited with code {process.returncode}; see "
                f"{config.data_dir / 'postgres.log'}"
            )
        try:
            with admin_connection(config, connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise UserError(f"PostgreSQL did not start within {timeout:.0f} s; see postgres.log")


def admin_connection(config: ServerConfig, connect_timeout: int = 10) -> psycopg.Connection:
    """A connection to the cluster's `postgres` database as its superuser, over the socket."""
    import psycopg

    return psycopg.connect(
        host=str(config.pg_root),
        port=config.study_port,
        user=DB_ROLE,
        dbname="postgres",
        autocommit=True,
        connect_timeout=connect_timeout,
    )


def ensure_database(config: ServerConfig, name: str, owner: str = DB_ROLE) -> None:
    from psycopg import sql

    with admin_connection(config) as connection:
        exists = connection.execute("select 1 from pg_database where datname = %s", (name,))
        if exists.fetchone() is None:
            connection.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )


def ensure_study_database(config: ServerConfig) -> None:
    """The study role (its password generated once, kept in a file only the server's user
    reads), its database, and the TCP URL for other machines' tune workers in a file beside it.
    A data folder made before the role existed keeps its older study tables (owned by
    `mlflow`): the new role cannot use them; remove the `optuna` database to start afresh."""
    from psycopg import sql

    password = study_password(config)
    with admin_connection(config) as connection:
        exists = connection.execute("select 1 from pg_roles where rolname = %s", (OPTUNA_ROLE,))
        verb = "alter" if exists.fetchone() else "create"
        connection.execute(
            sql.SQL(verb + " role {} login password {}").format(
                sql.Identifier(OPTUNA_ROLE), sql.Literal(password)
            )
        )
    ensure_database(config, OPTUNA_DB, owner=OPTUNA_ROLE)
    write_private(config.study_url_file, config.study_uri(password) + "\n")


def study_password(config: ServerConfig) -> str:
    """The study role's password: made at the first start, then read back."""
    if config.study_password_file.exists():
        return config.study_password_file.read_text().strip()
    password = secrets.token_urlsafe(24)
    write_private(config.study_password_file, password + "\n")
    return password


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (created with mode 0600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def parse_args() -> ServerConfig:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--allowed-hosts",
        default="",
        help="comma-separated names clients use besides localhost/127.0.0.1, e.g. mlflow.lan",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help=f"basic auth: needs {ADMIN_PASSWORD_ENV} and {SECRET_KEY_ENV} in the environment",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument(
        "--study-port",
        type=int,
        default=DEFAULT_STUDY_PORT,
        help="PostgreSQL's port, where other machines' tune workers reach the studies",
    )
    parser.add_argument("--data-dir", type=Path, default=workspace_root() / DATA_DIR)
    args = parser.parse_args()
    names = tuple(name.strip() for name in args.allowed_hosts.split(",") if name.strip())
    return ServerConfig(
        args.data_dir.resolve(),
        args.host,
        args.port,
        names,
        args.auth,
        args.workers,
        args.study_port,
    )


def _interrupt_on_hangup(signum: int, frame: FrameType | None) -> None:
    """Closing the terminal (SIGHUP) stops the server like Ctrl-C."""
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    signal.signal(signal.SIGHUP, _interrupt_on_hangup)
    config = parse_args()
    server = TeamServer(config)
    server.start()
    print(f"MLFLOW_TRACKING_URI={config.url}", flush=True)
    print(f"OPTUNA_STORAGE={config.database_uri(OPTUNA_DB)}", flush=True)
    print(
        f'tune workers on other machines: OPTUNA_STORAGE="$(cat {config.study_url_file})" '
        f"({redact(config.study_uri(study_password(config)))}; the password is in that file, "
        f"readable by you only)",
        flush=True,
    )
    print(f"data in {config.data_dir}; Ctrl-C stops the server and PostgreSQL.", flush=True)
    try:
        ended = server.wait()
    except KeyboardInterrupt:
        for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop, signal.SIG_IGN)
        server.stop()
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) cannot show it
            print("stopped: the MLflow server and PostgreSQL.", flush=True)
        return
    server.stop()
    raise UserError(f"{ended}; its messages are above (PostgreSQL's in postgres.log)")


if __name__ == "__main__":
    run_entry_point(main, on_interrupt="interrupted: the team server was not started")
