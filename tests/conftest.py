"""Shared test infrastructure: a real copy of the project in a temporary git repository, and a
real `mlflow server` on 127.0.0.1 (the benchmarks use both too).

End-to-end tests run the real `dvc` and the real MLflow store there; nothing is mocked.
"""

import contextlib
import errno
import os
import pty
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from filelock import FileLock

from lstm_vs_rnn.commands import mlflow_server
from lstm_vs_rnn.commands.relocate_store import relocate
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import dump_yaml, parse_yaml
from lstm_vs_rnn.processes import usable_cores
from lstm_vs_rnn.stage_names import stage_command

# Values of the CI variable that mark a CI run (GitHub Actions, GitLab and .ci/run set "true").
CI_VALUES = ("true", "1", "yes")


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skip is a failure: a missing Chromium, PostgreSQL or host name must not leave
    the browser or team-server tests green without running."""
    outcome = yield
    report = outcome.get_result()
    if running_in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI (CI={os.environ['CI']}), which counts as a failure: {reason}"
        )


# The test files that take longest (measured with --durations on 2 cores), longest first: they
# start first, so the pytest-xdist workers (--dist loadfile, which hands out the first files in
# turn) finish at about the same time instead of one waiting idle while another runs a long
# file alone. The benchmark smoke, one long test, must not come last.
SLOWEST_FILES_FIRST = (
    "test_pipeline_e2e.py",
    "test_team_server.py",
    "test_benchmarks_smoke.py",
    "test_tuning.py",
    "test_faults.py",
    "test_logged_model_env.py",
    "test_sources_pipeline.py",
    "test_registry.py",
    "test_committed_results.py",
    "test_ui_command.py",
    "test_team_server_signals.py",
    "test_prune.py",
    "test_safety.py",
    "test_kernel_digests.py",
    "test_store_refusals.py",
    "test_parallel_repeats.py",
    "test_compare.py",
    "test_parallel_queue.py",
    "test_bad_inputs.py",
    "test_forecaster_model.py",
    "test_ci_skips.py",
    "test_ui_browser.py",
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): one pytest worker per core this process may run on,
    counted as the pipeline counts them (`processes.usable_cores`: the affinity mask), where
    pytest-xdist would count physical cores. The suite is CPU-bound: on 2 cores, 3 or 4
    workers took as long and more CPU."""
    return usable_cores()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest files first (a stable sort: the order inside each file is kept)."""
    rank = {name: position for position, name in enumerate(SLOWEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "stages",
    "src",
    "data/sunspots",
    "pyproject.toml",
    ".dvcignore",
    ".gitignore",
)

# Small enough that the whole pipeline runs in seconds, large enough to train something.
TINY_PARAMS = {
    "data.n_points": 300,
    "data.window": 10,
    "train.epochs": 3,
    "train.batch_size": 32,
    "train.repeats": 3,
    # Repeats in the stage's own process: pytest already keeps both cores busy, and a pool's
    # spawned workers cost seconds per stage (tests/test_parallel_repeats.py tests the pool).
    "train.workers": 1,
    # No tuning unless a test asks for it (tests/test_tuning.py).
    "tune.n_trials": 0,
    # One fold unless a test asks for more (tests/test_folds.py).
    "evaluate.folds": [0],
    # Two small entries whatever the project's default list holds.
    "models": {
        "rnn": {"arch": "rnn", "hidden_size": 8, "num_layers": 1},
        "lstm": {"arch": "lstm", "hidden_size": 8, "num_layers": 1},
    },
}


# Every stage of TINY_PARAMS' two entries (which do not tune), in the order DVC runs them.
TINY_STAGES = [
    "check_params",
    "generate",
    "scale",
    "tune@rnn-0",
    "tune@lstm-0",
    "train@rnn-0",
    "train@lstm-0",
    "evaluate",
]


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, key = dotted.split(".")
    for section in sections:
        tree = tree[section]
    tree[key] = value


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without anything that would point runs or DVC elsewhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "DVC_")) and key != "PYTHONPATH"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
    )
    env.update(extra or {})
    return env


def run_statuses(root: Path) -> dict[str, str]:
    """Status of every run in the workspace's SQLite store (read directly: no MLflow import)."""
    store = root / "mlflow.db"
    if not store.exists():
        return {}
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as connection:
        return dict(connection.execute("select run_uuid, status from runs"))


@dataclass
class PipelineRepo:
    """A temporary git + DVC repository holding a copy of the project."""

    root: Path
    env: dict[str, str]

    def run(
        self,
        *command: str,
        check: bool = True,
        timeout: float = 600,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command,
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def start_module(self, module: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """`python -m <module> <args>` started in the project with its `src` on the path, its
        output (stdout and stderr) in one text pipe; `kwargs` go to `subprocess.Popen`."""
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=self.root,
            env={**self.env, "PYTHONPATH": "src"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,
        )

    def dvc(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("dvc", *args, **kwargs)

    def stage(self, name: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run one stage script directly, as `dvc repro` would (`train@lstm-0`: the script
        stages/train.py with the arguments `lstm 0`)."""
        return self.run(
            "python",
            *stage_command(name),
            env={"PYTHONPATH": "src", **kwargs.pop("env", {})},
            **kwargs,
        )

    def params(self) -> dict[str, Any]:
        return parse_yaml((self.root / "params.yaml").read_text())

    def edit_params(self, changes: dict[str, Any]) -> None:
        tree = self.params()
        for dotted, value in changes.items():
            set_dotted(tree, dotted, value)
        (self.root / "params.yaml").write_text(dump_yaml(tree))

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-qm", message)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"


def make_pipeline_repo(root: Path, params: dict[str, Any] | None = None) -> PipelineRepo:
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(
                source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, root / name)
    repo = PipelineRepo(root, clean_env())
    repo.run("git", "init", "-q", "-b", "main")
    # The project's .dvc folder as git holds it (what `dvc init` wrote, the project's DVC
    # settings and plot templates), as a clone gets it: a `dvc init` costs a second.
    (root / ".dvc").mkdir()
    for name in (".gitignore", "config"):
        shutil.copy2(REPO_ROOT / ".dvc" / name, root / ".dvc" / name)
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", root / ".dvc" / "plots")
    repo.edit_params({**TINY_PARAMS, **(params or {})})
    repo.commit("project copy with tiny params")
    return repo


@pytest.fixture
def pipeline_repo(tmp_path: Path) -> Iterator[PipelineRepo]:
    yield make_pipeline_repo(tmp_path / "project")


@dataclass(frozen=True)
class BuiltPipeline:
    """A project copy (TINY_PARAMS) after a real `dvc repro`, shared by the whole test run:
    copy it (`copy_to`), never change it. Every stage process costs seconds, so the tests that
    continue from stages that have run start from this one instead of running their own."""

    root: Path
    repro_output: str
    # What the stages printed on stderr (their progress lines) during that `dvc repro`.
    repro_stderr: str

    def copy_to(self, root: Path) -> PipelineRepo:
        """A copy at `root`, as if `dvc repro` had run there (see `copy_project`)."""
        return copy_project(self.root, root)


def copy_project(source: Path, root: Path) -> PipelineRepo:
    """A copy of the project at `source` made at `root` (git history, DVC cache and outputs,
    MLflow store and artifacts), its store pointing at its own artifacts: cheaper than running
    the stages again, which costs seconds per stage process."""
    shutil.copytree(source, root, symlinks=True)
    if (root / "mlflow.db").exists():
        relocate(root / "mlflow.db", source.resolve(), root.resolve())
    return PipelineRepo(root, clean_env())


def shared_build(
    tmp_path_factory: pytest.TempPathFactory,
    worker_id: str,
    name: str,
    build: Callable[[Path], subprocess.CompletedProcess[str]],
) -> BuiltPipeline:
    """The project copy `build` makes at the root it is given (returning its last `dvc repro`),
    built by the first pytest-xdist worker that asks for it (the others wait on a file lock
    and reuse it)."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # one folder for every worker
    folder = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (folder / "repro.out").exists():
            result = build(folder / "project")
            (folder / "repro.err").write_text(result.stderr)
            (folder / "repro.out").write_text(result.stdout)
    return BuiltPipeline(
        folder / "project", (folder / "repro.out").read_text(), (folder / "repro.err").read_text()
    )


@pytest.fixture(scope="session")
def built_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> BuiltPipeline:
    """The whole tiny pipeline after one `dvc repro` from nothing, shared by the test run."""
    return shared_build(
        tmp_path_factory,
        worker_id,
        "built-pipeline",
        lambda root: make_pipeline_repo(root).dvc("repro"),
    )


@pytest.fixture(scope="session")
def scaled_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> BuiltPipeline:
    """The tiny pipeline after `dvc repro scale` (generate and scale), shared by the test run:
    the start of every test of a later stage. A copy may change any param but `data`."""
    return shared_build(
        tmp_path_factory,
        worker_id,
        "scaled-pipeline",
        lambda root: make_pipeline_repo(root).dvc("repro", "scale"),
    )


# The second configuration of `edited_pipeline`: models.lstm.hidden_size 8 -> this.
EDITED_LSTM_HIDDEN_SIZE = 16


@pytest.fixture(scope="session")
def edited_pipeline(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str, built_pipeline: BuiltPipeline
) -> BuiltPipeline:
    """`built_pipeline` committed as its first configuration, then `models.lstm.hidden_size`
    edited to EDITED_LSTM_HIDDEN_SIZE (not committed) and `dvc repro` run again (its output is
    `repro_output`): two configurations in one store and in DVC's run cache, shared by the
    test run (the model edit, the registry's second version, the UI's and `make compare`'s
    two configurations)."""

    def build(root: Path) -> subprocess.CompletedProcess[str]:
        repo = built_pipeline.copy_to(root)
        repo.commit("first configuration")
        repo.edit_params({"models.lstm.hidden_size": EDITED_LSTM_HIDDEN_SIZE})
        return repo.dvc("repro")

    return shared_build(tmp_path_factory, worker_id, "edited-pipeline", build)


def processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is `folder`: a stage and its workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def start_in_terminal(repo: PipelineRepo, *args: str) -> tuple[int, int]:
    """Start a stage script in a new pseudo-terminal; return its pid and the terminal's fd."""
    pid, terminal = pty.fork()
    if pid == 0:
        # A shell that starts jobs in the background (`make test &`) ignores SIGINT in them,
        # and an ignored SIGINT stays ignored across exec: the stage should not inherit it.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.chdir(repo.root)
        env = {**repo.env, "PYTHONPATH": "src"}
        os.execve(sys.executable, [sys.executable, *args], env)
    return pid, terminal


def stop_if_running(pid: int) -> None:
    """End a stage a failed assertion left running (SIGTERM: its runs end KILLED, its workers
    with it), so the next test of the module starts from a quiet store."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


def read_terminal(terminal: int) -> bytes:
    """The next output of the terminal, b"" once its other side is closed: reading a pty's
    master then raises EIO on Linux, which is its end of file."""
    try:
        return os.read(terminal, 4096)
    except OSError as error:
        if error.errno == errno.EIO:
            return b""
        raise


def read_until(terminal: int, pattern: str, timeout: float) -> str:
    """What the terminal shows until `pattern` appears in it."""
    seen, deadline = "", time.monotonic() + timeout
    while not re.search(pattern, seen):
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([terminal], [], [], 1)
        if ready:
            chunk = read_terminal(terminal)
            assert chunk, f"the stage closed its terminal before {pattern!r}: {seen}"
            seen += chunk.decode(errors="replace")
    return seen


def press_ctrl_c(pid: int, terminal: int, timeout: float = 60) -> tuple[int, str]:
    """Press Ctrl-C in the terminal (SIGINT to its foreground group, as a user's key does);
    the exit code of `pid` and what it printed."""
    os.write(terminal, b"\x03")
    return wait_for_exit(pid, terminal, timeout)


def wait_for_exit(pid: int, terminal: int, timeout: float) -> tuple[int, str]:
    """The exit code of `pid`, draining its terminal meanwhile, and what it printed."""
    seen, deadline, closed = "", time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), seen
        if closed:
            time.sleep(0.2)
            continue
        ready, _, _ = select.select([terminal], [], [], 0.2)
        if ready:
            chunk = read_terminal(terminal)
            closed = not chunk
            seen += chunk.decode(errors="replace")
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"the stage did not exit: {seen}")


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite MLflow store with MLflow's schema, made once per test process: creating
    the schema (every migration) costs seconds, copying the file does not."""
    from mlflow.tracking import MlflowClient

    store = tmp_path_factory.mktemp("migrated-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{store}").search_experiments()  # creates the schema
    return store


@pytest.fixture
def sqlite_store(migrated_store: Path, tmp_path: Path) -> str:
    """The tracking URI of a new, empty SQLite MLflow store of this test (tmp_path/mlflow.db)."""
    shutil.copy2(migrated_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The admin of a basic-auth test server (MlflowServer(auth=True)).
SERVER_ADMIN = ("admin", "admin-pw-for-tests-only")


class MlflowServer(mlflow_server.MlflowServer):
    """A real `mlflow server` on 127.0.0.1 with its own SQLite store, supervised as `make ui`
    and `make server` supervise theirs (its own process group, stopped whole); with `auth`,
    MLflow's basic-auth app (users in SQLite too, admin SERVER_ADMIN, every other user READ by
    default, as `make server AUTH=1` sets it)."""

    def __init__(self, root: Path, port: int | None = None, auth: bool = False) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = port or free_port()
        self.auth = auth
        command = mlflow_server.server_command(
            f"sqlite:///{root / 'server.db'}",
            root / "artifacts",
            "127.0.0.1",
            self.port,
            options=("--app-name", "basic-auth") if auth else (),
        )
        env = clean_env(self._auth_env() if auth else None)
        super().__init__(command, self.uri, env=env, log=root / "server.log", cwd=root)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        """Start it; fail the test with the server's log if it does not answer."""
        try:
            super().start(timeout)
            if self.auth:
                # The auth app's first API call loads it (seconds on a busy machine): made here,
                # so a stage's 5-second probe does not time out on it.
                requests.get(
                    f"{self.uri}/api/2.0/mlflow/experiments/search?max_results=1",
                    auth=SERVER_ADMIN,
                    timeout=timeout,
                ).raise_for_status()
        except UserError as error:
            self.stop()
            raise AssertionError(f"{error}:\n{self.log_tail()}") from None
        except requests.RequestException:
            self.stop()
            raise

    def _auth_env(self) -> dict[str, str]:
        config = self.root / "basic_auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{self.root / 'auth.db'}\n"
            f"admin_username = {SERVER_ADMIN[0]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # As `make server` sets it: a password hash is checked once a minute, not per call.
            "auth_cache_ttl_seconds = 60\n"
        )
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": SERVER_ADMIN[1],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
        }

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def wait_until_healthy(
    base_url: str, process: subprocess.Popen, log: Callable[[], str], timeout: float = 120
) -> None:
    """Wait as `make ui` and `make server` wait for their server's /health; fail with its log
    if it dies or hangs."""
    try:
        mlflow_server.wait_for_health(base_url, process, timeout)
    except UserError as error:
        raise AssertionError(f"{error}:\n{log()}") from None


@contextmanager
def running_mlflow_server(root: Path, auth: bool = False) -> Iterator[MlflowServer]:
    """A started server, stopped however the block ends."""
    server = MlflowServer(root, auth=auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Tiny: a trial is one seed of 2 epochs of a 4- or 8-unit network on 300 points; 4
# configurations on 1 seed, the best 2 on a second one: 6 trials.
TUNING = {
    "train.epochs": 2,
    "tune.n_trials": 4,
    "tune.first_seeds": 1,
    "tune.halving": 2,
    "tune.final_seeds": 2,
    "tune.heartbeat_seconds": 1,
    "tune.space": {
        "learning_rate": {"low": 0.001, "high": 0.05, "log": True},
        "hidden_size": [4, 8],
        "epochs": [2],
        "grad_clip_norm": [None, 1.0],
    },
    "models": {
        "rnn": {"arch": "rnn", "hidden_size": 8, "num_layers": 1, "tune": False},
        "lstm": {"arch": "lstm", "hidden_size": 8, "num_layers": 1, "tune": False},
        "rnn_tuned": {"arch": "rnn", "hidden_size": 8, "num_layers": 1},
        "lstm_tuned": {"arch": "lstm", "hidden_size": 8, "num_layers": 1},
    },
}


@pytest.fixture
def tuning_repo(scaled_pipeline: BuiltPipeline) -> Callable[..., PipelineRepo]:
    """Makes a copy of the scaled tiny pipeline at a root, with TUNING and `changes` (the
    tuning tests, and the team server's tests of tuning through PostgreSQL)."""

    def make(root: Path, **changes: object) -> PipelineRepo:
        repo = scaled_pipeline.copy_to(root)
        repo.edit_params({**TUNING, **changes})
        repo.commit("tuning params")
        return repo

    return make
