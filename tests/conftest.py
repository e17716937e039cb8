"""Shared test infrastructure: a real copy of the project in a temporary git repository, and a
real `mlflow server` on 127.0.0.1 (the benchmarks use both too).

End-to-end tests run the real `dvc` and the real MLflow store there; nothing is mocked.
"""

import os
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

from lstm_vs_rnn.params import dump_yaml, parse_yaml

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
# start first, so the two pytest-xdist workers (--dist loadfile, which hands out the first files
# in turn) finish at about the same time instead of one waiting idle while the other runs a
# long file alone. The benchmark smoke, one long test, must not come last.
SLOWEST_FILES_FIRST = (
    "test_pipeline_e2e.py",
    "test_team_server.py",
    "test_benchmarks_smoke.py",
    "test_tuning.py",
    "test_faults.py",
    "test_logged_model_env.py",
    "test_sources_pipeline.py",
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
    # Two small entries whatever the project's default list holds.
    "models": {
        "rnn": {"arch": "rnn", "hidden_size": 8, "num_layers": 1},
        "lstm": {"arch": "lstm", "hidden_size": 8, "num_layers": 1},
    },
}


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
        """Run one stage script directly, as `dvc repro` would."""
        script, *model = name.split("@")
        return self.run(
            "python",
            f"stages/{script}.py",
            *model,
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
    repo.dvc("init", "-q")
    # The project's DVC settings and plot templates (analytics off, the offline plots page).
    shutil.copy2(REPO_ROOT / ".dvc" / "config", root / ".dvc" / "config")
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
        relocate_store(root / "mlflow.db", str(source), str(root))
    return PipelineRepo(root, clean_env())


def relocate_store(store: Path, old: str, new: str) -> None:
    """Replace the folder `old` by `new` in every text column of a SQLite MLflow store: the
    experiment's artifact location and each run's and logged model's artifact URI hold
    absolute paths."""
    with sqlite3.connect(store) as connection:
        tables = [
            name
            for (name,) in connection.execute("select name from sqlite_master where type = 'table'")
        ]
        for table in tables:
            columns = [
                column
                for _, column, kind, *_ in connection.execute(f"pragma table_info('{table}')")
                if "CHAR" in kind.upper() or "TEXT" in kind.upper()
            ]
            for column in columns:
                connection.execute(
                    f'update "{table}" set "{column}" = replace("{column}", ?, ?) '
                    f'where instr("{column}", ?) > 0',
                    (old, new, old),
                )


def shared_build(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str, name: str, *targets: str
) -> BuiltPipeline:
    """A project copy (TINY_PARAMS) after `dvc repro <targets>`, built by the first
    pytest-xdist worker that asks for it (the others wait on a file lock and reuse it)."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # one folder for every worker
    folder = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (folder / "repro.out").exists():
            repo = make_pipeline_repo(folder / "project")
            result = repo.dvc("repro", *targets)
            (folder / "repro.err").write_text(result.stderr)
            (folder / "repro.out").write_text(result.stdout)
    return BuiltPipeline(
        folder / "project", (folder / "repro.out").read_text(), (folder / "repro.err").read_text()
    )


@pytest.fixture(scope="session")
def built_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> BuiltPipeline:
    """The whole tiny pipeline after one `dvc repro` from nothing, shared by the test run."""
    return shared_build(tmp_path_factory, worker_id, "built-pipeline")


@pytest.fixture(scope="session")
def scaled_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> BuiltPipeline:
    """The tiny pipeline after `dvc repro scale` (generate and scale), shared by the test run:
    the start of every test of a later stage. A copy may change any param but `data`."""
    return shared_build(tmp_path_factory, worker_id, "scaled-pipeline", "scale")


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


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with its own SQLite store, in its own process group."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'server.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=clean_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_healthy(self.uri, self.process, self.log, timeout)
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # its own group: the server and its workers
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def wait_until_healthy(
    base_url: str, process: subprocess.Popen, log: Callable[[], str], timeout: float = 120
) -> None:
    """Poll the server's /health until it answers; fail with its log if it dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log()}")
        try:
            if requests.get(f"{base_url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not answer within {timeout} s:\n{log()}")


@contextmanager
def running_mlflow_server(root: Path) -> Iterator[MlflowServer]:
    """A started server, stopped however the block ends."""
    server = MlflowServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
