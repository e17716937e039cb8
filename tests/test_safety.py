"""Safety: artifacts are never unpickled, secrets are not logged. That the UI stays on 127.0.0.1
is checked on `make ui` itself, in test_ui_command.py."""

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, MlflowServer, make_pipeline_repo

from lstm_vs_rnn.errors import UserError, redact
from lstm_vs_rnn.files import read_array
from lstm_vs_rnn.modeling.checkpoints import load_model
from lstm_vs_rnn.params import ModelParams, parse_yaml

SOURCES = sorted([*(REPO_ROOT / "src").rglob("*.py"), *(REPO_ROOT / "stages").glob("*.py")])


class Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_no_source_unpickles_anything() -> None:
    forbidden = {
        r"\bimport pickle\b|\bfrom pickle\b|\bcloudpickle\b|\bjoblib\b|\bdill\b": "pickle module",
        r"allow_pickle\s*=\s*True": "np.load with allow_pickle=True",
        r"weights_only\s*=\s*False": "torch.load with weights_only=False",
        r"pd\.read_pickle|\.to_pickle\(": "pandas pickle",
    }
    problems = [
        f"{path.relative_to(REPO_ROOT)}: {what}"
        for path in SOURCES
        for pattern, what in forbidden.items()
        if re.search(pattern, path.read_text())
    ]
    assert problems == []
    for path in SOURCES:
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, f"{path}: {call}"
        for call in re.findall(r"np\.load\([^)]*\)", path.read_text()):
            assert "allow_pickle=False" in call, f"{path}: {call}"


def test_a_pickled_payload_as_model_file_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    weights = tmp_path / "model.pt"
    torch.save({"recurrent.weight_ih_l0": Payload(marker)}, weights)
    with pytest.raises(UserError, match="not a model state_dict saved by a train stage of 'lstm'"):
        load_model("lstm", ModelParams(arch="lstm", hidden_size=8, num_layers=1), weights)
    assert not marker.exists()


def test_a_pickled_payload_as_npy_file_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    array = tmp_path / "train.npy"
    np.save(array, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match=r"not a NumPy \.npy array"):
        read_array(array, "scale")
    assert not marker.exists()
    assert pickle.loads(pickle.dumps(1)) == 1  # the payload mechanism itself is not broken


def test_redact_hides_only_the_password() -> None:
    assert redact("http://alice:s3cret@host:5000/x?y=1") == "http://alice:***@host:5000/x?y=1"
    assert redact("https://bob:p%40ss@example.org") == "https://bob:***@example.org"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    # A password's own '@' (not percent-encoded), an IPv6 host, and URLs inside a message.
    assert redact("postgresql://u:p@ss@db/x") == "postgresql://u:***@db/x"
    assert redact("http://[::1]:5000") == "http://[::1]:5000"
    assert (
        redact("to http://a:b@h/x failed: http://c:d@i")
        == "to http://a:***@h/x failed: http://c:***@i"
    )
    assert redact("password s3cret rejected", "s3cret") == "password *** rejected"


@pytest.mark.e2e
def test_credentials_in_the_tracking_uri_and_the_environment_are_never_logged(
    tmp_path: Path,
) -> None:
    """A stage logs to a real server through a URI with user:password in it, with a secret in
    its environment and a study storage URL with the password in params.yaml; neither the
    password nor the secret reaches any run, and the environment is not logged wholesale (every
    param is a params.yaml key)."""
    from mlflow.tracking import MlflowClient

    password, canary = "s3cret-pw-4711", "canary-token-0815"
    storage = f"postgresql://optuna:{password}@127.0.0.1:1/optuna"
    repo = make_pipeline_repo(tmp_path / "project", {"tune.storage": storage})
    server = MlflowServer(tmp_path / "server")
    server.start()
    try:
        uri = f"http://alice:{password}@127.0.0.1:{server.port}"
        env = {"MLFLOW_TRACKING_URI": uri, "SOME_API_TOKEN": canary}
        result = repo.stage("generate", env=env)
        assert password not in result.stdout + result.stderr
        client = MlflowClient(server.uri)
        experiment = client.get_experiment_by_name("lstm-vs-rnn")
        runs = client.search_runs([experiment.experiment_id])
        assert {run.data.tags.get("pipeline.role") for run in runs} == {"configuration", "stage"}
        allowed = set(yaml_keys(repo.root / "params.yaml"))
        for run in runs:
            logged = [
                run.info.run_name,
                *run.data.tags,
                *run.data.tags.values(),
                *run.data.params,
                *run.data.params.values(),
                *run.data.metrics,
            ]
            for text in logged:
                assert password not in str(text) and canary not in str(text), text
            assert set(run.data.params) <= allowed
            assert not any(key in run.data.params for key in os.environ)
    finally:
        server.stop()

    # The same URI with the server gone: the error names it, redacted.
    dead = repo.stage("generate", check=False, env={"MLFLOW_TRACKING_URI": uri})
    assert dead.returncode == 1
    assert f"http://alice:***@127.0.0.1:{server.port}" in dead.stderr
    assert password not in dead.stderr


def yaml_keys(path: Path) -> list[str]:
    """Every leaf of params.yaml as a dotted key, as the stages log them."""

    def walk(node: object, prefix: str) -> list[str]:
        if isinstance(node, dict):
            return [key for name, value in node.items() for key in walk(value, f"{prefix}{name}.")]
        return [prefix.rstrip(".")]

    return walk(parse_yaml(path.read_text()), "")
