"""`make ui` as a terminal user sees it: when the URL appears, what the server prints while it
is browsed, and what Ctrl-C leaves on the screen; and that it listens on 127.0.0.1 only.

Real `make`, the project's Makefile, `python -m lstm_vs_rnn.commands.ui` and `mlflow server` on
127.0.0.1; Ctrl-C is SIGINT to the whole process group, as a terminal sends it.
"""

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT, PipelineRepo, free_port, make_pipeline_repo

pytestmark = pytest.mark.e2e

# Starting `mlflow server` takes 4-5 s on an idle 2-core machine; these are waits, not limits.
START_S = 180.0
STOP_S = 60.0
BROWSING_REQUESTS = 100
URL_LINE = "  runs table: "


class Output:
    """The lines a process prints, read as they come (a pipe read blocks; a queue can wait)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, prefix: str, timeout: float) -> str:
        """Collect lines until one starts with `prefix`; that line."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r}:\n" + "\n".join(self.lines))

    def rest(self, timeout: float) -> list[str]:
        """Every line still to come, once the process has closed its output."""
        start = len(self.lines)
        deadline = time.monotonic() + timeout
        while (line := self._queue.get(timeout=max(deadline - time.monotonic(), 0.1))) is not None:
            self.lines.append(line)
        return self.lines[start:]


@pytest.fixture(scope="module")
def repo_with_makefile(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    """A project copy with the Makefile, where nothing ran: each test starts a UI on it."""
    repo = make_pipeline_repo(tmp_path_factory.mktemp("ui-command") / "project")
    shutil.copy2(REPO_ROOT / "Makefile", repo.root / "Makefile")
    return repo


def start_make_ui(repo: PipelineRepo, port: int) -> subprocess.Popen[str]:
    """`make ui` with this test's environment; `-o` keeps make from ever re-installing it."""
    venv = Path(sys.prefix)
    stamp = venv / ".installed"
    return subprocess.Popen(
        ["make", "-o", str(stamp), "ui", f"PORT={port}", f"VENV={venv}"],
        cwd=repo.root,
        env=repo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # CI shells start jobs with SIGINT ignored; a terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def browse(base: str) -> None:
    """What the UI's page does while a person clicks around: many small API calls."""
    for _ in range(BROWSING_REQUESTS // 2):
        requests.get(f"{base}/", timeout=30).raise_for_status()
        requests.post(
            f"{base}/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=30
        ).raise_for_status()


def listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_make_ui_prints_a_working_url_logs_no_requests_and_stops_in_one_line(
    repo_with_makefile: PipelineRepo,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_make_ui(repo_with_makefile, port)
    output = Output(process)
    try:
        output.until(URL_LINE, START_S)
        # Printed once the server answers: the first request must succeed, with no retry.
        assert requests.get(f"{base}/health", timeout=5).ok
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 by default, nothing else
        output.until("  Ctrl-C stops it.", 5)
        browse(base)
        time.sleep(1)  # time for any log line the requests caused to arrive
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=STOP_S)
        after_ctrl_c = output.rest(timeout=5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    printed = "\n".join(output.lines)
    print(printed)
    # make dies of the SIGINT it got too (-2), once the UI has exited 0: no "make: ***" line.
    assert code in (0, 130, -signal.SIGINT), printed
    assert after_ctrl_c == ["MLflow UI stopped."], printed
    assert "Traceback" not in printed and "make: ***" not in printed, printed
    assert "HTTP/1.1" not in printed, "the server's access log is on"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/health", timeout=5)


def processes_in_session(session: int) -> list[str]:
    """Command lines of the live processes whose session id is `session` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended while being read
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(command)
    return found


def test_a_ui_command_killed_outright_leaves_no_server_and_a_free_port(
    repo_with_makefile: PipelineRepo,
) -> None:
    """SIGKILL gives the UI command no chance to stop its server: the server (in a session of
    its own, so a terminal's Ctrl-C reaches the command alone) and its uvicorn process must
    still go, and the port be free for the next `make ui`."""
    port = free_port()
    process = repo_with_makefile.start_module("lstm_vs_rnn.commands.ui", "--port", str(port))
    output = Output(process)
    try:
        output.until(URL_LINE, START_S)
        server_sessions = {
            os.getsid(int(child))
            for child in Path(f"/proc/{process.pid}/task/{process.pid}/children")
            .read_text()
            .split()
        }
        assert server_sessions, "the UI command started no server process"
        process.kill()
        process.wait(timeout=STOP_S)
        deadline = time.monotonic() + STOP_S
        while any(processes_in_session(s) for s in server_sessions):
            assert time.monotonic() < deadline, [processes_in_session(s) for s in server_sessions]
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
