"""Shared fixtures: a real copy of the project in a temporary git repository.

End-to-end tests run the real `dvc` and the real MLflow store there; nothing is mocked.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "stages",
    "src",
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
    "models.rnn.hidden_size": 8,
    "models.lstm.hidden_size": 8,
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
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def edit_params(self, changes: dict[str, Any]) -> None:
        tree = self.params()
        for dotted, value in changes.items():
            set_dotted(tree, dotted, value)
        (self.root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))

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
            shutil.copytree(
                source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, root / name)
    repo = PipelineRepo(root, clean_env())
    repo.run("git", "init", "-q", "-b", "main")
    repo.dvc("init", "-q")
    repo.dvc("config", "core.analytics", "false")
    repo.edit_params({**TINY_PARAMS, **(params or {})})
    repo.commit("project copy with tiny params")
    return repo


@pytest.fixture
def pipeline_repo(tmp_path: Path) -> Iterator[PipelineRepo]:
    yield make_pipeline_repo(tmp_path / "project")
