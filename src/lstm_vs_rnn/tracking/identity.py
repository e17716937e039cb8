"""A configuration's identity: the hash of its params, data and code, its run name, provenance.

One parent run per configuration (tracking.parents) is found by `config_hash`, so two machines
with the same params, data and code share it, and a code change starts a new one.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from lstm_vs_rnn.params import EXECUTION_KEYS, CsvData, DataParams, LaggedData, Params
from lstm_vs_rnn.paths import PROJECT_ROOT
from lstm_vs_rnn.tracking.liveness import location_tags
from lstm_vs_rnn.tracking.tags import COMMIT_TAG, DIRTY_TAG, EXPERIMENT_TAG, USER_TAG

# The pipeline's code and definition: their content is part of a configuration's identity.
CODE_FILES = ("src", "stages", "dvc.yaml", "requirements.txt")

# The files `git.dirty` compares with the commit: the pipeline's code, definition and params.
CODE_AND_PARAMS = ("src", "stages", "dvc.yaml", "params.yaml", "requirements.txt")


def config_hash(params: Params) -> str:
    """Identifies a pipeline configuration: every param that can change an output, and the
    version of the code that computes them.

    With the code in it, a parent's metrics always come from one code version: a code change
    starts a new parent instead of overwriting the old one's headline (as DVC re-runs the
    stages whose code changed)."""
    relevant = {
        key: value
        for key, value in params.flat().items()
        if not key.startswith("tracking.") and key not in EXECUTION_KEYS
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


def provenance_tags() -> dict[str, str]:
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
