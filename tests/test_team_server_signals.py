"""`make server` never leaves orphans: closing its terminal (SIGHUP), SIGTERM, or a SIGKILL of
the supervisor itself stops PostgreSQL and the MLflow server (its HTTP worker included) and frees
the port. Real PostgreSQL 15 and a real `mlflow server`, started through the command
`make server` runs; the server's log has no line per /health request.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import clean_env, free_port

from lstm_vs_rnn.commands.mlflow_server import ensure_port_free

pytestmark = pytest.mark.e2e

STOP_DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """Under /tmp and world-readable: PostgreSQL runs as the postgres user under root."""
    folder = Path(tempfile.mkdtemp(prefix="lstm-vs-rnn-signals-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def process_table() -> dict[int, tuple[int, int]]:
    """Every process as pid -> (parent pid, session id), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return table


def in_sessions(sessions: set[int]) -> list[int]:
    return [pid for pid, (_, session) in process_table().items() if session in sessions]


def start_server(data_dir: Path, port: int, study_port: int) -> subprocess.Popen[str]:
    env = {**clean_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lstm_vs_rnn.commands.team_server",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--study-port",
            str(study_port),
            # One uvicorn worker: the supervisor's handling of its children is what is tested,
            # and a second worker only adds its start-up.
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("MLFLOW_TRACKING_URI="):
            return server
    raise AssertionError(f"the server did not start (exit code {server.wait()})")


@pytest.mark.parametrize(
    "signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGKILL], ids=["SIGHUP", "SIGTERM", "SIGKILL"]
)
def test_a_stopped_or_killed_supervisor_leaves_no_process_and_a_free_port(
    data_dir: Path, signum: int
) -> None:
    port, study_port = free_port(), free_port()
    server = start_server(data_dir, port, study_port)
    try:
        children = [pid for pid, (parent, _) in process_table().items() if parent == server.pid]
        # PostgreSQL and the MLflow server's guard, each leading a session of its own.
        assert len(children) == 2, children
        sessions = set(children)
        assert len(in_sessions(sessions)) > 3  # postgres' helpers, mlflow and uvicorn too
        for _ in range(3):
            assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).ok
        server.send_signal(signum)
        server.wait(timeout=STOP_DEADLINE_S)
        deadline = time.monotonic() + STOP_DEADLINE_S
        while in_sessions(sessions) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert in_sessions(sessions) == []
    finally:
        if server.poll() is None:
            server.kill()
        output = server.communicate()[0]
    if signum != signal.SIGKILL:
        assert server.returncode == 0, output
        assert output.strip().endswith("stopped: the MLflow server and PostgreSQL.")
    assert "/health" not in output and "INFO" not in output, output
    for free in (port, study_port):  # nothing listens: no UserError
        ensure_port_free("127.0.0.1", free, "another port")
