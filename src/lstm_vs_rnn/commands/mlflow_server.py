"""An `mlflow server` this project starts (`make ui`, `make server`, the tests, the benchmarks):
its command line, its environment, and one supervisor that starts it and stops it whole.

The server runs under `group_guard` in a session of its own: a terminal's Ctrl-C reaches the
command that started it alone (which then stops it and says so in one line), and when that
command dies, even by SIGKILL, or the guard gets SIGTERM, SIGINT or SIGHUP, the whole group goes
(`mlflow server` runs its HTTP server as a child of its own, which a signal to `mlflow` alone
would leave holding the port). `start()` returns once the server answers /health.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from lstm_vs_rnn.errors import UserError

# The guard's package, wherever this process found it.
SRC_ROOT = Path(__file__).resolve().parents[2]
GROUP_GUARD = (sys.executable, "-m", "lstm_vs_rnn.commands.group_guard")
# uvicorn without its access log (a line per request, /health polls included) and its INFO
# start and stop lines; request errors and their tracebacks still print.
UVICORN_OPTS = "--no-access-log --log-level warning"
HEALTH_POLL_S = 0.25
STOP_TIMEOUT_S = 30.0
# How long a stopped server's last output lines are waited for.
FORWARD_DRAIN_S = 2.0
# Held back while the server is being started, so a Ctrl-C then cannot leave it unsupervised.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def server_command(
    backend_store: str,
    artifacts: Path,
    host: str,
    port: int,
    workers: int = 1,
    options: Sequence[str] = (),
) -> list[str]:
    """`mlflow server` on `backend_store`, serving artifacts from `artifacts` (clients need no
    shared disk), bound to `host` (127.0.0.1 keeps it on this machine) and `port`, quiet
    unless something fails; `options` are further `mlflow server` options."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--uvicorn-opts",
        UVICORN_OPTS,
        *options,
    ]


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) for the server: the guard's package on
    PYTHONPATH, and unless `base` says otherwise, no GenAI job runner and no INFO lines.

    The job runner (seven worker processes) serves LLM judges and prompt optimisation, which
    this project never uses. MLflow's INFO lines at start ("Creating initial MLflow database
    tables...") and the StarletteDeprecationWarning that MLflow's own code triggers say nothing
    a user can act on; other warnings and errors still show.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    env.setdefault(
        "PYTHONWARNINGS",
        "ignore::UserWarning:mlflow.server.fastapi_app,"
        "ignore:starlette.middleware.wsgi is deprecated",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SRC_ROOT), env.get("PYTHONPATH"))))
    return env


class MlflowServer:
    """One `mlflow server` process group, started and stopped as one; it can be restarted.

    `url` is where this machine reaches it (for the health check); `env` the environment it
    starts from (default: this process's; see `server_env`); its output goes to `log`
    (appended) or, without one, to this process's terminal, less the lines `drop` matches
    (copied by a thread of this process when `drop` is given).
    """

    def __init__(
        self,
        command: list[str],
        url: str,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
        drop: re.Pattern[bytes] | None = None,
    ) -> None:
        self.command = command
        self.url = url
        self.env = server_env(env)
        self.log = log
        self.cwd = cwd
        self.drop = drop
        self.process: subprocess.Popen[bytes] | None = None
        self.forwarder: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        """Start the server; return once it answers /health. Raises UserError (the server
        stopped) if it exits first or does not answer within `timeout` seconds."""
        with _stop_signals_held():  # delivered once `self.process` is set, so it is stopped
            self.process = self._popen()
        try:
            wait_for_health(self.url, self.process, timeout, self._where_messages_are())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the whole group: SIGTERM, SIGKILL after STOP_TIMEOUT_S."""
        if self.process is not None:
            stop_group(self.process, signal.SIGTERM)
        if self.forwarder is not None:
            # Its last lines, if any: a uvicorn worker still closing connections keeps the
            # pipe open after the server exits, and is not waited for (it ends by itself).
            self.forwarder.join(timeout=FORWARD_DRAIN_S)

    def wait(self) -> int:
        """Block until the server exits; its exit code."""
        assert self.process is not None, "the server was never started"
        return self.process.wait()

    def poll(self) -> int | None:
        """The server's exit code, None while it runs (or was never started)."""
        return None if self.process is None else self.process.poll()

    def _popen(self) -> subprocess.Popen[bytes]:
        if self.drop is not None:
            return self._spawn_filtered()
        if self.log is None:
            return self._spawn(None)
        with self.log.open("ab") as log:
            return self._spawn(log)

    def _spawn(self, log: IO[bytes] | int | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*GROUP_GUARD, *self.command],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
        )

    def _spawn_filtered(self) -> subprocess.Popen[bytes]:
        """The server with its output through a pipe, copied by a thread without the lines
        `drop` matches, to `log` or this process's standard output."""
        process = self._spawn(subprocess.PIPE)
        assert process.stdout is not None and self.drop is not None
        destination = self.log.open("ab") if self.log else sys.stdout.buffer
        self.forwarder = threading.Thread(
            target=forward_output, args=(process.stdout, destination, self.drop), daemon=True
        )
        self.forwarder.start()
        return process

    def _where_messages_are(self) -> str:
        return f"see {self.log}" if self.log else "its messages are above"


def forward_output(source: IO[bytes], destination: IO[bytes], drop: re.Pattern[bytes]) -> None:
    """Copy a server's output, line by line as it comes, without the lines `drop` matches."""
    for line in iter(source.readline, b""):
        if not drop.search(line):
            destination.write(line)
            destination.flush()


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends, then deliver them (the guard, which
    inherits the mask, unblocks them for itself)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def wait_for_health(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float,
    messages: str = "its messages are above",
) -> None:
    """Return once the server `process` answers `url`/health; UserError if it exits first or
    does not answer within `timeout` seconds (`messages`: where its own words are)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(
                f"the MLflow server exited with code {process.returncode} while starting; "
                f"{messages}"
            )
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(HEALTH_POLL_S)
    raise UserError(f"the MLflow server did not answer at {url} within {timeout:.0f} s")


def ensure_port_free(host: str, port: int, other_port: str) -> None:
    """Fail with one line before uvicorn does with a page of errors; `other_port` is the
    command that picks another port (e.g. 'make ui PORT=5001').

    SO_REUSEADDR as the server sets it: a port left in TIME_WAIT by a server just stopped is
    free, a port something listens on is not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"port {port} on {host} is not available ({exc.strerror}); "
                f"stop what uses it or pick another, e.g. '{other_port}'"
            ) from None


def stop_group(process: subprocess.Popen[bytes], first: signal.Signals) -> None:
    """Send `first` to the process's own group (it leads a session of its own), wait, and
    SIGKILL the group if it has not stopped within STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, first)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
