"""The logged MLflow model, through a real SQLite store: raw windows in, raw forecasts out."""

import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.files import write_text
from lstm_vs_rnn.modeling.checkpoints import ForecasterFiles, save_weights
from lstm_vs_rnn.modeling.multistep import network_forecaster, roll_out
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.modeling.prediction import predict
from lstm_vs_rnn.modeling.training import configure_torch, train_model
from lstm_vs_rnn.params import ModelParams, load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.tracking.runs import stage_run

WINDOW = 10


def test_the_logged_model_forecasts_in_the_series_own_units(
    tmp_path: Path, sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "forecaster-model-test")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    series = 25 + 3 * np.sin(np.arange(400) * 0.2)  # far from the [0, 1] the network sees
    scaler = MinMaxScaling.fit(series[:300])
    scaler_file = tmp_path / "scaler.json"
    write_text(scaler_file, scaler.to_json())
    params = load_params(PATHS.params)
    scaled = torch.from_numpy(scaler.transform(series[:300]).astype(np.float32))
    windows, targets = make_windows(scaled, WINDOW)
    model = build_model(ModelParams(arch="lstm", hidden_size=8, num_layers=1), seed=3)
    device = configure_torch(params.train)
    train_model(model, windows, targets, 20, params.train, device, seed=3)
    weights = tmp_path / "repeat_003.pt"
    save_weights(model.eval(), weights)
    raw_windows = sliding_window_view(series[:-1], WINDOW)

    with stage_run("train@lstm-0", params, ("train",)) as run:
        run.log_forecaster(
            "lstm",
            ForecasterFiles(weights=weights, scaler=scaler_file),
            spec={
                "name": "lstm",
                "arch": "lstm",
                "hidden_size": 8,
                "num_layers": 1,
                "window": WINDOW,
            },
            input_example=raw_windows[:2],
            tags={"repeat": "3", "seed": "3"},
        )
        run_id, experiment_id = run.run_id, run.experiment_id

    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    assert logged.name == "lstm"
    assert logged.tags["repeat"] == "3"
    loaded = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    assert loaded.metadata.get_input_schema() is None  # the model checks its input itself
    assert loaded.metadata.get_output_schema().inputs[0].shape == (-1, -1)
    assert loaded.metadata.metadata["input"].startswith(f"windows of shape (n, {WINDOW})")
    forecast = loaded.predict(raw_windows)
    own = predict(model, torch.from_numpy(scaler.transform(raw_windows).astype(np.float32)), device)
    expected = scaler.inverse_transform(own.numpy().astype(np.float64))
    np.testing.assert_allclose(forecast[:, 0], expected, rtol=1e-12)
    assert forecast.shape == (len(raw_windows), 1)
    assert forecast.min() > 20 and forecast.max() < 30  # the series' units, not [0, 1]

    # Multi-step: `horizon` recursive steps per window, in the series' units.
    (horizon_spec,) = loaded.metadata.get_params_schema().params
    assert (horizon_spec.name, horizon_spec.default) == ("horizon", 1)
    five = loaded.predict(raw_windows, params={"horizon": 5})
    scaled = scaler.transform(raw_windows).astype(np.float32)
    rolled = roll_out(network_forecaster(model, device), scaled, 5)
    np.testing.assert_allclose(
        five, scaler.inverse_transform(rolled.astype(np.float64)), rtol=1e-12
    )
    assert five.shape == (len(raw_windows), 5)
    np.testing.assert_array_equal(five[:, :1], forecast)  # step 1 is the one-step forecast
    np.testing.assert_array_equal(loaded.predict(raw_windows, params={"horizon": 1}), forecast)
    for bad in (0, -3, 10_001):
        with pytest.raises(ValueError, match=rf"horizon must be an integer .*got {bad}"):
            loaded.predict(raw_windows, params={"horizon": bad})
    with pytest.raises(Exception, match="horizon"):
        loaded.predict(raw_windows, params={"horizon": 2.5})

    check_input_kinds(loaded, raw_windows[:7])


def check_input_kinds(loaded: mlflow.pyfunc.PyFuncModel, windows: np.ndarray) -> None:
    """Every real-valued array-like of shape (n, window) is the same input; anything else is
    one short line stating the expected shape."""
    reference = loaded.predict(windows)
    rounded = np.round(windows)
    as_float32 = windows.astype(np.float32)
    same_input = {
        "float64 array": (windows, reference),
        "list of lists": (windows.tolist(), reference),
        "DataFrame": (pd.DataFrame(windows, columns=[f"t-{WINDOW - i}" for i in range(WINDOW)]),
                      reference),
        "float32 array": (as_float32, loaded.predict(as_float32.astype(np.float64))),
        "int64 array": (rounded.astype(np.int64), loaded.predict(rounded)),
        "int32 array": (rounded.astype(np.int32), loaded.predict(rounded)),
        "list of int lists": (rounded.astype(int).tolist(), loaded.predict(rounded)),
    }  # fmt: skip
    for kind, (model_input, expected) in same_input.items():
        np.testing.assert_array_equal(loaded.predict(model_input), expected, err_msg=kind)
    with_nan, with_inf = windows.copy(), windows.copy()
    with_nan[2, 3], with_inf[4, 0] = np.nan, -np.inf
    refused = {
        "too short": (windows[:, :5], r"got shape \(7, 5\)"),
        "one window, 1-D": (windows[0], r"got shape \(10,\)"),
        "3-D": (windows[:, :, None], r"got shape \(7, 10, 1\)"),
        "NaN": (with_nan, r"got nan at row 2, column 3 \(1 non-finite value\(s\)\)"),
        "infinity": (
            with_inf.astype(np.float32),
            r"got -inf at row 4, column 0 \(1 non-finite value\(s\)\)",
        ),
        "text": ([["a"] * WINDOW], r"got values of type <U1"),
        "ragged": ([[1.0] * WINDOW, [1.0] * 3], r"got rows of different lengths"),
        "complex": (windows.astype(complex), r"got values of type complex128"),
    }
    for kind, (model_input, detail) in refused.items():
        with pytest.raises(ValueError) as raised:
            loaded.predict(model_input)
        message = str(raised.value)
        assert "\n" not in message, kind
        assert re.fullmatch(
            rf"expected windows of shape \(n, {WINDOW}\): n rows of {WINDOW} real numbers, "
            rf"{detail}",
            message,
        ), (kind, message)
