"""params.yaml validation: the real file loads; each bad edit is one line naming the key."""

import re
from pathlib import Path
from typing import Any

import pytest

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import dump_yaml, load_params, parse_yaml
from lstm_vs_rnn.paths import PATHS
from tests.conftest import set_dotted


def write_params(tmp_path: Path, changes: dict[str, Any]) -> Path:
    tree = parse_yaml(PATHS.params.read_text())
    for dotted, value in changes.items():
        set_dotted(tree, dotted, value)
    path = tmp_path / "params.yaml"
    path.write_text(dump_yaml(tree))
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
    assert params.evaluate.primary == [["lstm_tuned", "rnn_tuned"], ["lstm", "rnn"]]


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
        ({"evaluate.primary": "lstm"}, r"evaluate\.primary = 'lstm'.*a list of pairs"),
        ({"evaluate.primary": [["lstm"]]}, r"evaluate\.primary\[0\] = \['lstm'\].*a pair"),
        ({"evaluate.primary": [["lstm", "lstm"]]}, r"evaluate\.primary\[0\].*with itself"),
        (
            {"evaluate.primary": [["lstm", "rnn"], ["rnn", "lstm"]]},
            r"evaluate\.primary\[1\] = \['rnn', 'lstm'\] repeats an earlier pair",
        ),
        ({"evaluate.primary": [["LSTM", "rnn"]]}, r"evaluate\.primary\[0\] = \['LSTM', 'rnn'\]"),
        ({"evaluate.equivalence_margin": 0}, r"evaluate\.equivalence_margin = 0.*> 0 and <= 1"),
        ({"evaluate.folds": [1]}, r"evaluate\.folds = \[1\] lacks fold 0"),
        ({"tune.halving": 1}, r"tune\.halving = 1.*>= 2"),
        ({"tune.first_seeds": 9}, r"tune\.first_seeds = 9 is above tune\.final_seeds = 8"),
        ({"tune.seed": 45}, r"tune\.seed = 45 gives tuning seeds 45-52, which overlap .* 42-51"),
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
    tree = parse_yaml(PATHS.params.read_text())
    del tree["train"]
    path = tmp_path / "params.yaml"
    path.write_text(dump_yaml(tree))
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


def params_text_with(tmp_path: Path, key: str, text: str) -> Path:
    """The project's params.yaml with the line of `key` (unique among a section's own keys,
    indented once) set to `text`, written as a user types it: the YAML scalar is kept as is, not
    re-quoted by a dumper."""
    source = PATHS.params.read_text(encoding="utf-8")
    edited, count = re.subn(rf"(?m)^(  {key}:) .*$", rf"\1 {text}", source)
    assert count == 1, key
    path = tmp_path / "params.yaml"
    path.write_text(edited, encoding="utf-8")
    return path


# Scalars on which YAML 1.1 (PyYAML) and YAML 1.2 (ruamel.yaml, what DVC reads) disagree, and
# the forms that both read alike.
YAML_SCALARS = [
    "1e-3", "1E3", "1.0e-3", "+1", "1.", "-0", "0o17", "017", "0x1F", "0b101", "1_000",
    "yes", "no", "on", "off", "y", "n", "true", "True", "TRUE", "null", "~", "Null", "NULL",
    "", ".inf", "-.Inf", ".NaN", "'.inf'", "1:20", "2020-01-01",
]  # fmt: skip


@pytest.mark.parametrize("scalar", YAML_SCALARS)
def test_every_scalar_reads_as_dvc_reads_it(scalar: str) -> None:
    from dvc.utils.serialize import parse_yaml as dvc_parse_yaml

    ours, dvcs = parse_yaml(f"key: {scalar}\n")["key"], dvc_parse_yaml(f"key: {scalar}\n", "x")
    assert repr(ours) == repr(dvcs["key"])  # repr: nan == nan and 1 vs 1.0 vs True differ


@pytest.mark.parametrize(
    ("key", "text", "dotted", "expected"),
    [
        ("learning_rate", "1e-3", "train.learning_rate", 0.001),
        ("learning_rate", "5E-3", "train.learning_rate", 0.005),
        ("epochs", "0o17", "train.epochs", 15),
        ("epochs", "017", "train.epochs", 17),
        ("batch_size", "1_000", "train.batch_size", 1000),
        ("grad_clip_norm", "~", "train.grad_clip_norm", None),
        ("grad_clip_norm", "NULL", "train.grad_clip_norm", None),
        ("experiment_name", "yes", "tracking.experiment_name", "yes"),
        ("experiment_name", "off", "tracking.experiment_name", "off"),
    ],
)
def test_params_hold_the_values_dvc_reads(
    tmp_path: Path, key: str, text: str, dotted: str, expected: object
) -> None:
    from dvc.utils.serialize import load_yaml

    path = params_text_with(tmp_path, key, text)
    ours = load_params(path).flat()[dotted]
    section, name = dotted.split(".")
    assert ours == expected == load_yaml(str(path))[section][name]


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("device", "on", r"train\.device = 'on' is not allowed; expected one of auto, cpu"),
        ("learning_rate", ".inf", r"train\.learning_rate = inf"),
        ("epochs", "1e3", r"train\.epochs = 1000\.0 is not allowed; expected an integer"),
    ],
)
def test_yaml_1_2_values_that_are_still_wrong_are_named(
    tmp_path: Path, key: str, text: str, expected: str
) -> None:
    with pytest.raises(UserError, match=expected):
        load_params(params_text_with(tmp_path, key, text))


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    source = PATHS.params.read_text(encoding="utf-8")
    path = tmp_path / "params.yaml"
    path.write_text(source.replace("  epochs:", "  epochs: 3\n  epochs:", 1), encoding="utf-8")
    with pytest.raises(UserError, match=r"params\.yaml: invalid YAML at line \d+: .*duplicate"):
        load_params(path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("x" * 501, r"is 501 characters long .*at most 500"),
        ("two\nlines", r"= 'two\\nlines' holds the control character '\\n'"),
        ("tab\tstop", r"= 'tab\\tstop' holds the control character '\\t'"),
    ],
)
def test_experiment_names_mlflow_refuses_are_caught_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    with pytest.raises(UserError, match=rf"tracking\.experiment_name {expected}"):
        load_params(write_params(tmp_path, {"tracking.experiment_name": name}))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
    with pytest.raises(UserError, match=rf"^MLFLOW_EXPERIMENT_NAME {expected}"):
        load_params(PATHS.params)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "x" * 500 + " ")
    with pytest.raises(UserError, match="501 characters"):
        load_params(PATHS.params)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "销量 · Продажи " + "x" * 480)
    assert load_params(PATHS.params)


def test_a_primary_pair_may_name_an_entry_this_configuration_lacks(tmp_path: Path) -> None:
    """Dropping an entry (`-S ~models.lstm`) must not need an edit of evaluate.primary: the
    pair is left out of the run and claims.md says so (reporting.claims)."""
    params = load_params(write_params(tmp_path, {"evaluate.primary": [["lstm_big", "rnn"]]}))
    assert params.evaluate.primary == [["lstm_big", "rnn"]]


# Every key params.yaml may hold, with a value it refuses and what the refusal must say the key
# takes (the words of params.yaml's comments). `test_every_key_of_params_py_is_listed` keeps
# this table complete: a field added to params.py without its line here fails.
EVERY_KEY = {
    "data.source": ("rain", "expected one of sine, lagged, csv"),
    "data.train_fraction": ("most", "expected a number > 0 and < 1"),
    "data.window": (2.5, "expected an integer >= 1 and <= 100000"),
    "data.n_points": ("many", "expected an integer >= 10 and <= 10000000"),
    "data.t_step": ("0.1s", "expected a number > 0"),
    "data.noise_std": (-1, "expected a number >= 0"),
    "data.seed": (-1, "expected an integer >= 0 and <= 4294967295"),
    "data.lag": ("ten", "expected an integer >= 1 and <= 99999"),
    "data.phi": (1.5, "expected a number > -1 and < 1"),
    "data.path": ("", "expected a non-empty text"),
    "data.column": (5, "expected a non-empty text"),
    "data.time_column": (" ", "expected a non-empty text, or null (the row number is the time"),
    "train.epochs": ("ten", "expected an integer >= 1 and <= 100000"),
    "train.batch_size": (0, "expected an integer >= 1 and <= 1000000"),
    "train.learning_rate": ("fast", "expected a number > 0 and <= 10"),
    "train.val_fraction": (1, "expected a number > 0 and < 1"),
    "train.seed": ("x", "expected an integer >= 0 and <= 4294967295"),
    "train.repeats": (0, "expected an integer >= 1 and <= 1000"),
    "train.device": ("tpu", "expected one of auto, cpu, cuda"),
    "train.num_threads": ("all", "expected an integer >= 1 and <= 256"),
    "train.grad_clip_norm": ("yes", "expected a number > 0, or null (no clipping)"),
    "train.workers": (0, "expected an integer >= 1 and <= 256, or null (one process per usable"),
    "models.lstm.arch": ("transformer", "expected one of rnn, lstm, gru"),
    "models.lstm.hidden_size": (0, "expected an integer >= 1 and <= 4096"),
    "models.lstm.num_layers": ("two", "expected an integer >= 1 and <= 16"),
    "models.lstm.forget_bias": ("one", "expected a number >= -10 and <= 10, or null (keeps Py"),
    "models.lstm.tune": ("sometimes", "expected true or false, or null (tune when tune.n_tri"),
    "tune.n_trials": (-1, "expected an integer >= 0 and <= 100000"),
    "tune.seed": (-1, "expected an integer >= 0 and <= 4294967295"),
    "tune.first_seeds": (0, "expected an integer >= 1 and <= 1000"),
    "tune.halving": ("x", "expected an integer >= 2 and <= 100"),
    "tune.final_seeds": (0, "expected an integer >= 1 and <= 1000"),
    "tune.sampler_seed": ("x", "expected an integer >= 0 and <= 4294967295"),
    "tune.workers": ("all", "expected an integer >= 1 and <= 1024, or null (every usable core)"),
    "tune.storage": ("", "expected a non-empty text, or null (.optuna/studies.db in the works"),
    "tune.heartbeat_seconds": (0, "expected an integer >= 1 and <= 3600"),
    "tune.space": ("wide", "expected a mapping of each tuned hyperparameter to {low, high, log}"),
    "tune.space.learning_rate": (0.01, "expected {low, high, log} (a range: low and high numb"),
    "tune.space.learning_rate.low": ("small", "expected a number (the range is of integers"),
    "tune.space.learning_rate.high": (None, "expected a number (the range is of integers"),
    "tune.space.learning_rate.log": ("yes", "expected true or false (draw log-uniformly)"),
    "tune.space.hidden_size": ([16, "wide"], "hidden_size.1 = 'wide' is not allowed; expected "
                               "a choice of the list: a number or null"),
    "evaluate.horizon": (0, "expected an integer >= 1 and <= 10000"),
    "evaluate.primary": (5, "expected a list of pairs of model entries"),
    "evaluate.folds": (2, "expected a list of distinct fold numbers holding 0"),
    "evaluate.equivalence_margin": ("x", "expected a number > 0 and <= 1"),
    "tracking.experiment_name": ("", "expected a non-empty text"),
}  # fmt: skip
SOURCE_OF = {"t_step": "sine", "lag": "lagged", "phi": "lagged", "path": "csv", "column": "csv"}


def test_every_key_of_params_py_is_listed() -> None:
    from lstm_vs_rnn import params as module

    sections = {
        "train": module.TrainParams,
        "models.lstm": module.ModelParams,
        "tune": module.TuneParams,
        "evaluate": module.EvaluateParams,
        "tracking": module.TrackingParams,
        "tune.space.learning_rate": module.RangeSpec,
    }
    declared = {f"data.{key}" for key in module.DATA_KEYS} | {
        f"{section}.{key}" for section, model in sections.items() for key in model.model_fields
    }
    assert declared <= set(EVERY_KEY)


@pytest.mark.parametrize("key", sorted(EVERY_KEY))
def test_every_keys_refusal_says_what_it_takes(tmp_path: Path, key: str) -> None:
    value, expected = EVERY_KEY[key]
    source = SOURCE_OF.get(key.split(".")[-1], "csv" if key == "data.time_column" else None)
    changes = {"data.source": source} if source and key.startswith("data.") else {}
    with pytest.raises(UserError) as refused:
        load_params(write_params(tmp_path, {**changes, key: value}))
    message = str(refused.value)
    assert message.startswith(f"params.yaml: {key}")
    assert expected in message and "\n" not in message
