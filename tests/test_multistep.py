"""Recursive multi-step forecasts against hand-rolled loops, and their per-step scoring."""

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.windows import make_windows, with_history
from lstm_vs_rnn.evaluation.baselines import (
    LinearAutoregression,
    autoregressive_forecast,
    fit_autoregressive,
    persistence_forecast,
)
from lstm_vs_rnn.evaluation.horizon import (
    MAX_ORIGINS,
    forecast_origins,
    headline_steps,
    horizon_errors,
    with_horizon_headline,
)
from lstm_vs_rnn.evaluation.metrics import forecast_metrics
from lstm_vs_rnn.files import write_array, write_text
from lstm_vs_rnn.modeling import multistep
from lstm_vs_rnn.modeling.checkpoints import save_weights
from lstm_vs_rnn.modeling.multistep import network_forecaster, persistence_forecaster, roll_out
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.modeling.prediction import predict
from lstm_vs_rnn.params import ModelParams, Params, load_params
from lstm_vs_rnn.paths import PATHS, ProjectPaths
from lstm_vs_rnn.pipeline.evaluate import load_repeats

CPU = torch.device("cpu")
WINDOW, HORIZON = 6, 4


def noisy_sine(n: int, seed: int = 0) -> np.ndarray:
    return np.sin(np.arange(n) * 0.3) + np.random.default_rng(seed).normal(0, 0.2, n)


def test_a_network_rollout_equals_a_hand_rolled_loop() -> None:
    model = build_model(ModelParams(arch="lstm", hidden_size=5, num_layers=1), seed=1).eval()
    series = noisy_sine(40).astype(np.float32)
    windows = sliding_window_view(series, WINDOW)[:5]

    forecasts = roll_out(network_forecaster(model, CPU), windows, HORIZON)

    expected = np.empty((len(windows), HORIZON))
    with torch.no_grad():
        for origin, window in enumerate(windows):
            inputs = list(window)
            for step in range(HORIZON):
                latest = torch.tensor(inputs[-WINDOW:], dtype=torch.float32).reshape(1, WINDOW, 1)
                expected[origin, step] = model(latest).item()
                inputs.append(expected[origin, step])
    assert forecasts.shape == (5, HORIZON)
    np.testing.assert_allclose(forecasts, expected, rtol=1e-5, atol=1e-6)


def test_an_ar_rollout_equals_a_hand_rolled_loop_with_the_fitted_coefficients() -> None:
    series = noisy_sine(200)
    fitted = fit_autoregressive(series[:150], WINDOW)
    windows = sliding_window_view(series[150:], WINDOW)[:5]

    forecasts = roll_out(fitted.predict, windows, HORIZON)

    for origin, window in enumerate(windows):
        inputs = list(window)
        for step in range(HORIZON):
            latest = inputs[-WINDOW:]
            value = sum(w * x for w, x in zip(fitted.weights, latest, strict=True))
            inputs.append(value + fitted.intercept)
            assert forecasts[origin, step] == pytest.approx(inputs[-1], rel=1e-12)


def test_the_ar_refactoring_keeps_the_one_step_forecast() -> None:
    series = noisy_sine(300)
    train, test = series[:240], series[240:]
    history_and_test = with_history(train, test, WINDOW)
    fitted = fit_autoregressive(train, WINDOW)
    direct = sliding_window_view(history_and_test[:-1], WINDOW) @ fitted.weights + fitted.intercept
    np.testing.assert_array_equal(autoregressive_forecast(fitted, history_and_test), direct)


def test_persistence_repeats_the_last_value() -> None:
    windows = sliding_window_view(noisy_sine(30), WINDOW)
    forecasts = roll_out(persistence_forecaster, windows, HORIZON)
    np.testing.assert_array_equal(forecasts, np.repeat(windows[:, -1:], HORIZON, axis=1))


def test_chunks_of_origins_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    series = noisy_sine(200)
    fitted = fit_autoregressive(series, WINDOW)
    windows = sliding_window_view(series, WINDOW)
    whole = roll_out(fitted.predict, windows, HORIZON)
    monkeypatch.setattr(multistep, "ROLLOUT_CHUNK", 7)
    np.testing.assert_array_equal(roll_out(fitted.predict, windows, HORIZON), whole)


def test_origins_leave_every_step_inside_the_test_part() -> None:
    assert forecast_origins(200, 20) == slice(0, 181, 1)
    assert forecast_origins(20, 20) == slice(0, 1, 1)
    long = range(200_000)[forecast_origins(200_000, 20)]
    assert 0.9 * MAX_ORIGINS <= len(long) <= MAX_ORIGINS
    assert long[0] == 0 and long[-1] + 20 <= 200_000


def test_headline_steps_are_those_within_the_horizon() -> None:
    assert headline_steps(20) == [1, 5, 10, 20]
    assert headline_steps(7) == [1, 5, 7]
    assert headline_steps(1) == [1]


def small_project(tmp_path: Path, repeats: int) -> tuple[Params, ProjectPaths, np.ndarray]:
    """Scaled arrays, a scaler and the weights of two models, as the stages write them."""
    paths = ProjectPaths(tmp_path)
    series = 5 + noisy_sine(160)
    scaler = MinMaxScaling.fit(series[:120])
    write_text(paths.scaler_json, scaler.to_json())
    write_array(paths.train_array, scaler.transform(series[:120]).astype(np.float32))
    write_array(paths.test_array, scaler.transform(series[120:]).astype(np.float32))
    models = {
        "rnn": ModelParams(arch="rnn", hidden_size=4, num_layers=1),
        "lstm": ModelParams(arch="lstm", hidden_size=4, num_layers=1),
    }
    for name, settings in models.items():
        for repeat in range(repeats):
            save_weights(build_model(settings, seed=repeat), paths.model_weights(name, repeat))
    defaults = load_params(PATHS.params)
    params = defaults.model_copy(
        update={
            "data": defaults.data.model_copy(update={"window": WINDOW}),
            "train": defaults.train.model_copy(update={"repeats": repeats}),
            "models": models,
            "evaluate": defaults.evaluate.model_copy(update={"horizon": HORIZON}),
        }
    )
    return params, paths, series


def test_rmse_per_step_of_every_repeat_and_baseline(tmp_path: Path) -> None:
    params, paths, series = small_project(tmp_path, repeats=3)
    train, test = series[:120], series[120:]
    clean = np.sin(np.arange(120, 160) * 0.3) + 5

    errors = horizon_errors(
        params,
        paths,
        CPU,
        (train, test),
        clean,
        fit_autoregressive(train, WINDOW),
        load_repeats(params, paths),
    )

    table = errors.table
    assert list(table.columns) == ["model", "repeat", "step", "rmse"]
    assert len(table) == (2 * 3 + 3) * HORIZON
    assert list(dict.fromkeys(table["model"])) == [
        "rnn",
        "lstm",
        "persistence",
        "ar",
        "noise_floor",
    ]
    assert sorted(set(table["step"])) == [1, 2, 3, 4]
    assert table[table["model"] == "ar"]["repeat"].isna().all()
    assert errors.origins == len(test) - HORIZON + 1
    assert list(errors.models["lstm"].columns) == ["step", "mean", "ci95_low", "ci95_high"]
    per_step = errors.mean_per_step()
    assert sorted(per_step) == [1, 2, 3, 4]
    assert set(per_step[1]) == {
        f"{name}.horizon_rmse_by_step"
        for name in ("rnn", "lstm", "persistence", "ar", "noise_floor")
    }


def test_step_one_is_the_one_step_forecast_over_the_same_origins(tmp_path: Path) -> None:
    params, paths, series = small_project(tmp_path, repeats=2)
    train, test = series[:120], series[120:]
    errors = horizon_errors(
        params,
        paths,
        CPU,
        (train, test),
        None,
        fit_autoregressive(train, WINDOW),
        load_repeats(params, paths),
    )
    table = errors.table
    first = table[table["step"] == 1]
    scored = slice(0, errors.origins)  # the origins: every step inside the test part

    def one_step_rmse(forecast: np.ndarray) -> float:
        return forecast_metrics(test[scored], forecast[scored], train)["test_rmse"]

    scaler = MinMaxScaling.from_json(paths.scaler_json)
    scaled = with_history(scaler.transform(train), scaler.transform(test), WINDOW)
    windows, _ = make_windows(torch.from_numpy(scaled.astype(np.float32)), WINDOW)
    for name, settings in params.models.items():
        for repeat in range(2):
            model = build_model(settings, seed=repeat).eval()
            one_step = scaler.inverse_transform(predict(model, windows, CPU).numpy().astype(float))
            recursive = first[(first["model"] == name) & (first["repeat"] == repeat)]["rmse"]
            # float32 network outputs: a batch of other windows may round differently
            assert recursive.item() == pytest.approx(one_step_rmse(one_step), rel=1e-6)
    fitted = fit_autoregressive(train, WINDOW)
    ar = autoregressive_forecast(fitted, with_history(train, test, WINDOW))
    persistence = persistence_forecast(series, len(test))
    for name, forecast in (("ar", ar), ("persistence", persistence)):
        recursive = first[first["model"] == name]["rmse"].item()
        assert recursive == pytest.approx(one_step_rmse(forecast), rel=1e-12)


def test_the_headline_goes_into_each_models_and_baselines_metrics(tmp_path: Path) -> None:
    params, paths, series = small_project(tmp_path, repeats=1)
    train, test = series[:120], series[120:]
    errors = horizon_errors(
        params,
        paths,
        CPU,
        (train, test),
        None,
        fit_autoregressive(train, WINDOW),
        load_repeats(params, paths),
    )
    metrics = {"rnn": {"failures": 0}, "lstm": {}, "persistence": {}, "ar": {}, "rnn_vs_x": {}}

    merged = with_horizon_headline(metrics, errors, HORIZON)

    assert merged["rnn"]["failures"] == 0 and "horizon_rmse" not in metrics["rnn"]
    assert sorted(merged["lstm"]["horizon_rmse"]) == ["h1", "h4"]
    assert merged["lstm"]["horizon_rmse"]["h4"]["ci95_low"] == "n/a"  # one repeat
    assert isinstance(merged["ar"]["horizon_rmse"]["h1"], float)
    assert merged["rnn_vs_x"] == {}


def test_an_ar1_rollout_at_every_step_by_hand() -> None:
    """y_h = 1 + 0.5·y_{h-1} from y_0 = 4: 3, 2.5, 2.25, 2.125, i.e. 2 + 2·0.5^h at every
    step h, not just the first; persistence stays at 4."""
    windows = np.array([[7.0, 4.0]])
    ar = LinearAutoregression(np.array([0.0, 0.5]), 1.0)
    steps = np.arange(1, 5)
    np.testing.assert_allclose(roll_out(ar.predict, windows, 4)[0], 2 + 2 * 0.5**steps)
    np.testing.assert_array_equal(roll_out(persistence_forecaster, windows, 4)[0], [4.0] * 4)
