"""Gradient flow: the sensitivity computation against cases worked out by hand, its aggregation,
and the measurement over real weight and data files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.evaluation.gradients import (
    TABLE_COLUMNS,
    evenly_spaced,
    input_sensitivity,
    lag_quantiles,
    log10_lag_ratio,
    measure_gradient_flow,
    scaled_test_windows,
)
from lstm_vs_rnn.files import write_array, write_csv
from lstm_vs_rnn.modeling.checkpoints import save_weights
from lstm_vs_rnn.modeling.networks import RecurrentForecaster, build_model
from lstm_vs_rnn.params import ModelParams, dump_yaml, load_params, parse_yaml
from lstm_vs_rnn.paths import PATHS, ProjectPaths
from lstm_vs_rnn.pipeline.evaluate import load_repeats

WINDOW = 12


class LinearRecurrence(nn.Module):
    """h_t = w·h_{t-1} + u·x_t, ŷ = h_T: the forecast's sensitivity to x_{T-k} is |u·w^k|."""

    def __init__(self, w: float, u: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.u = nn.Parameter(torch.tensor(u))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        state = torch.zeros_like(windows[:, 0])
        for step in range(windows.shape[1]):
            state = self.w * state + self.u * windows[:, step]
        return state


def random_windows(n: int, low: float = -1.0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (1 - low) * torch.rand(n, WINDOW, 1, generator=generator)


@pytest.mark.parametrize("w", [0.8, -0.9, 1.1])
def test_a_linear_recurrence_has_sensitivity_u_times_w_to_the_k(w: float) -> None:
    sensitivity = input_sensitivity(LinearRecurrence(w, 0.5), random_windows(5))
    expected = np.abs(0.5 * w ** np.arange(WINDOW))
    assert sensitivity.shape == (5, WINDOW)
    np.testing.assert_allclose(sensitivity.numpy(), np.tile(expected, (5, 1)), rtol=1e-6)


def test_the_forecaster_with_a_linear_one_unit_rnn_has_sensitivity_c_u_w_to_the_k() -> None:
    """The real forward path (recurrent layer, last step, linear head) with an nn.RNN whose
    ReLU is the identity: positive weights, no bias, positive inputs."""
    model = RecurrentForecaster("rnn", hidden_size=1, num_layers=1)
    model.recurrent = nn.RNN(1, 1, nonlinearity="relu", batch_first=True)
    with torch.no_grad():
        model.recurrent.weight_ih_l0.fill_(0.5)
        model.recurrent.weight_hh_l0.fill_(0.8)
        model.recurrent.bias_ih_l0.zero_()
        model.recurrent.bias_hh_l0.zero_()
        model.head.weight.fill_(2.0)
    sensitivity = input_sensitivity(model, random_windows(300, low=0.1)).numpy()
    expected = 2.0 * 0.5 * 0.8 ** np.arange(WINDOW)
    np.testing.assert_allclose(sensitivity, np.tile(expected, (300, 1)), rtol=1e-6)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_each_lag_matches_a_central_finite_difference(arch: str) -> None:
    model = build_model(ModelParams(arch=arch, hidden_size=8, num_layers=2), seed=3)
    windows = random_windows(4, seed=1).double()
    sensitivity = input_sensitivity(model, windows).numpy()  # leaves the model in float64
    step = 1e-6
    for k in range(WINDOW):
        shift = torch.zeros_like(windows)
        shift[:, WINDOW - 1 - k] = step
        with torch.no_grad():
            slope = (model(windows + shift) - model(windows - shift)).squeeze(-1) / (2 * step)
        np.testing.assert_allclose(sensitivity[:, k], slope.abs().numpy(), rtol=1e-6, atol=1e-12)


def test_scaled_and_original_units_give_the_same_sensitivity() -> None:
    """Inputs and output share one min-max scale, so the factor cancels: the forecaster in
    original units, x -> inverse(f(transform(x))), has the scaled model's sensitivity."""
    scaling = MinMaxScaling(data_min=-2.0, data_max=3.0)
    model = build_model(ModelParams(arch="lstm", hidden_size=6, num_layers=1), seed=0)
    scaled = random_windows(8, low=0.0)
    raw = torch.from_numpy(scaling.inverse_transform(scaled.double().numpy()))

    def in_original_units(windows: torch.Tensor) -> torch.Tensor:
        return scaling.inverse_transform(model(scaling.transform(windows)))

    sensitivity = input_sensitivity(model, scaled)
    raw.requires_grad_(True)
    (gradient,) = torch.autograd.grad(in_original_units(raw).sum(), raw)
    np.testing.assert_allclose(gradient.squeeze(-1).abs().flip(-1), sensitivity, rtol=1e-12)


def test_batches_change_nothing_but_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model(ModelParams(arch="lstm", hidden_size=4, num_layers=1), seed=0)
    windows = random_windows(10)
    whole = input_sensitivity(model, windows)
    monkeypatch.setattr("lstm_vs_rnn.evaluation.gradients.GRADIENT_BATCH_SIZE", 3)
    np.testing.assert_allclose(input_sensitivity(model, windows), whole, rtol=1e-12)


def test_the_sample_of_windows_is_every_window_or_an_even_spread() -> None:
    np.testing.assert_array_equal(evenly_spaced(7, limit=10), np.arange(7))
    sample = evenly_spaced(200_000, limit=1000)
    assert len(sample) == 1000 and sample[0] == 0 and sample[-1] == 199_999
    assert np.all(np.diff(sample) >= 199)  # evenly spread, no repeats


def test_quantiles_pool_every_window_of_every_repeat() -> None:
    repeat_0 = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    repeat_1 = np.array([[4.0, 40.0], [5.0, 50.0]])
    table = lag_quantiles([repeat_0, repeat_1])
    assert list(table.columns) == ["lag", "median", "p10", "p90"]
    assert table["lag"].tolist() == [0, 1]
    np.testing.assert_allclose(table["median"], [3.0, 30.0])
    np.testing.assert_allclose(table["p10"], [1.4, 14.0])  # numpy's linear interpolation
    np.testing.assert_allclose(table["p90"], [4.6, 46.0])


def test_the_lag_ratio_is_in_decades_and_finite_for_a_zero_median() -> None:
    assert log10_lag_ratio(np.array([[2.0, 1.0, 0.02], [2.0, 1.0, 0.02]])) == pytest.approx(-2)
    assert np.isfinite(log10_lag_ratio(np.array([[1.0, 0.0], [1.0, 0.0]])))


@pytest.fixture
def project(tmp_path: Path) -> tuple[ProjectPaths, object]:
    """Scaled arrays and the weights of 2 repeats of two models, as the stages write them."""
    raw = parse_yaml(PATHS.params.read_text())
    raw["data"]["window"] = 5
    raw["train"]["repeats"] = 2
    raw["models"] = {
        "vanilla": {"arch": "rnn", "hidden_size": 4, "num_layers": 1},
        "cell": {"arch": "lstm", "hidden_size": 3, "num_layers": 1},
    }
    (tmp_path / "params.yaml").write_text(dump_yaml(raw))
    paths = ProjectPaths(tmp_path)
    params = load_params(paths.params)
    series = np.sin(np.arange(60) * 0.3) * 0.5 + 0.5
    paths.processed_dir.mkdir(parents=True)
    write_array(paths.train_array, series[:48])
    write_array(paths.test_array, series[48:])
    for name, settings in params.models.items():
        paths.model_dir(name).mkdir(parents=True)
        for repeat in range(2):
            save_weights(
                build_model(settings, seed=100 + repeat), paths.model_weights(name, repeat)
            )
    return paths, params


def test_the_table_has_every_lag_of_every_model_and_state(project, tmp_path: Path) -> None:
    paths, params = project
    flow = measure_gradient_flow(params, paths, torch.device("cpu"), load_repeats(params, paths))
    write_csv(tmp_path / "grad.csv", flow.table)
    table = pd.read_csv(tmp_path / "grad.csv")
    assert tuple(table.columns) == TABLE_COLUMNS
    for model in ("vanilla", "cell"):
        for state in ("trained", "init"):
            rows = table[(table.model == model) & (table.state == state)]
            assert rows["lag"].tolist() == [0, 1, 2, 3, 4]
    assert np.all(table.p10 <= table["median"]) and np.all(table["median"] <= table.p90)
    assert flow.oldest_lag == 4
    assert {name: ratio.arch for name, ratio in flow.ratios.items()} == {
        "vanilla": "rnn",
        "cell": "lstm",
    }
    assert len(flow.ratios["cell"].per_state["trained"]) == 2  # one per repeat
    assert set(flow.median_by_lag()) == {0, 1, 2, 3, 4}
    assert set(flow.median_by_lag()[0]) == {
        f"{model}.grad_median.{state}"
        for model in ("vanilla", "cell")
        for state in ("trained", "init")
    }


def test_init_is_each_repeats_own_initial_weights(project) -> None:
    """The saved "trained" weights here are build_model(seed 100 + repeat); init uses the
    repeat seeds 42, 43: its curve is theirs, measured on the same sampled test windows."""
    paths, params = project
    flow = measure_gradient_flow(params, paths, torch.device("cpu"), load_repeats(params, paths))
    windows = scaled_test_windows(paths, params.data.window)
    settings = params.models["cell"]
    for state, seeds in (("init", params.repeat_seeds()), ("trained", [100, 101])):
        expected = lag_quantiles(
            [input_sensitivity(build_model(settings, seed), windows).numpy() for seed in seeds]
        )
        rows = flow.table[(flow.table.model == "cell") & (flow.table.state == state)]
        np.testing.assert_array_equal(rows["median"], expected["median"])
        ratios = flow.oldest_over_newest("cell")
        assert ratios[state] == expected["median"].iloc[-1] / expected["median"].iloc[0]
