"""params.yaml validation: the real file loads; each bad edit is one line naming the key."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from tests.conftest import set_dotted


def write_params(tmp_path: Path, changes: dict[str, Any]) -> Path:
    tree = yaml.safe_load(PATHS.params.read_text())
    for dotted, value in changes.items():
        set_dotted(tree, dotted, value)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_the_project_params_are_valid_and_hold_the_reference_experiment() -> None:
    params = load_params(PATHS.params)
    assert (params.data.n_points, params.data.window, params.data.train_fraction) == (1000, 20, 0.8)
    shared = {"rnn", "lstm", "gru", "rnn_wide"}
    assert set(params.models) == shared | {"rnn_tuned", "lstm_tuned", "gru_tuned"}
    assert set(params.tuned_entries()) == {"rnn_tuned", "lstm_tuned", "gru_tuned"}
    assert params.models["rnn_wide"].arch == "rnn"
    assert params.train.epochs == 20 and params.train.learning_rate == 0.01
    assert params.flat()["models.lstm.hidden_size"] == 50


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"train.epochs": "ten"}, r"train\.epochs = 'ten'.*an integer >= 1"),
        ({"train.epochs": 2.5}, r"train\.epochs = 2\.5.*an integer"),
        ({"train.epochs": True}, r"train\.epochs = True.*an integer"),
        ({"train.batch_size": 0}, r"train\.batch_size = 0.*>= 1"),
        ({"models.lstm.hidden_size": -5}, r"models\.lstm\.hidden_size = -5.*>= 1"),
        ({"data.train_fraction": 1.0}, r"data\.train_fraction = 1\.0.*> 0 and < 1"),
        ({"train.val_fraction": 0}, r"train\.val_fraction = 0.*> 0 and < 1"),
        ({"train.learning_rate": float("nan")}, r"train\.learning_rate = nan"),
        ({"data.noise_std": float("inf")}, r"data\.noise_std = inf"),
        ({"data.n_points": "1e12"}, r"data\.n_points = '1e12'.*<= 10000000"),
        ({"data.n_points": 10**12}, r"data\.n_points = 1000000000000.*<= 10000000"),
        ({"train.device": "tpu"}, r"train\.device = 'tpu'.*auto, cpu, cuda"),
        ({"data.window": 800}, r"data\.window = 800.*at most 798"),
        ({"train.val_fraction": 0.001}, r"train\.val_fraction = 0\.001 leaves no validation"),
        (
            {"models.lstm.hiden_size": 50},
            r"unknown key 'models\.lstm\.hiden_size'; did you mean 'models\.lstm\.hidden_size'",
        ),
        (
            {"models.Big-RNN": {"arch": "rnn", "hidden_size": 8, "num_layers": 1}},
            r"'models\.Big-RNN' is not allowed",
        ),
        ({"data": None}, r"data must be a mapping"),
        ({"data.source": "fourier"}, r"data\.source = 'fourier'.*sine, lagged, csv"),
        ({"data.source": "lagged", "data.lag": 20}, r"data\.lag = 20.*below data\.window = 20"),
        ({"data.source": "lagged", "data.phi": 1.0}, r"data\.phi = 1\.0.*> -1 and < 1"),
        ({"data.source": "csv", "data.path": ""}, r"data\.path = ''.*non-empty text"),
        ({"data.sorce": "csv"}, r"unknown key 'data\.sorce'; did you mean 'data\.source'"),
        ({"models.rnn.forget_bias": 1.0}, r"models\.rnn\.forget_bias = 1\.0.*only an lstm"),
        (
            {"models.lstm.arch": "transformer"},
            r"models\.lstm\.arch = 'transformer'.*rnn, lstm, gru",
        ),
        ({"evaluate.horizon": 0}, r"evaluate\.horizon = 0.*>= 1"),
        ({"tracking.experiment_name": ""}, r"tracking\.experiment_name = ''"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(UserError, match=expected) as raised:
        load_params(write_params(tmp_path, changes))
    assert "\n" not in str(raised.value)


def test_the_inactive_sources_keys_are_ignored_and_not_logged(tmp_path: Path) -> None:
    params = load_params(write_params(tmp_path, {"data.lag": "not even a number"}))
    assert params.data.source == "sine"
    assert "data.lag" not in params.flat() and "data.path" not in params.flat()
    lagged = load_params(write_params(tmp_path, {"data.source": "lagged"}))
    assert lagged.flat()["data.lag"] == 10 and "data.t_step" not in lagged.flat()


def test_missing_section_is_named(tmp_path: Path) -> None:
    tree = yaml.safe_load(PATHS.params.read_text())
    del tree["train"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(UserError, match=r"missing key 'train'"):
        load_params(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", r"the file is empty"),
        ("data: [1, 2\n", r"invalid YAML at line 2"),
        ("- 1\n- 2\n", r"expected a mapping of sections"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=expected):
        load_params(path)
