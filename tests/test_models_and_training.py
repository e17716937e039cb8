"""Unit tests of the models, the training loop and the metrics."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.baselines import (
    autoregressive_forecast,
    fit_autoregressive,
    persistence_forecast,
)
from lstm_vs_rnn.evaluation.metrics import epochs_to_converge, forecast_metrics
from lstm_vs_rnn.modeling.checkpoints import load_model, save_weights
from lstm_vs_rnn.modeling.networks import build_model, count_parameters
from lstm_vs_rnn.modeling.prediction import predict
from lstm_vs_rnn.modeling.training import (
    EpochLosses,
    FunctionalAdam,
    TrainingDiverged,
    best_validation_repeat,
    configure_torch,
    history_frame,
    train_model,
)
from lstm_vs_rnn.params import MODEL_ARCHITECTURES, ModelParams, TrainParams

SETTINGS = TrainParams(
    epochs=8,
    batch_size=16,
    learning_rate=0.01,
    val_fraction=0.2,
    seed=1,
    device="cpu",
    num_threads=1,
    grad_clip_norm=None,
    repeats=1,
)


def sine_windows(window: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    series = torch.sin(torch.arange(200, dtype=torch.float32) * 0.3) * 0.5 + 0.5
    return make_windows(series, window)


@pytest.mark.parametrize("name", sorted(MODEL_ARCHITECTURES))
def test_output_shape_is_one_value_per_window(name: str) -> None:
    model = build_model(ModelParams(arch=name, hidden_size=6, num_layers=2))
    assert model(torch.zeros(5, 12, 1)).shape == (5, 1)


def test_parameter_counts_match_the_cells() -> None:
    rnn = count_parameters(build_model(ModelParams(arch="rnn", hidden_size=50, num_layers=1)))
    lstm = count_parameters(build_model(ModelParams(arch="lstm", hidden_size=50, num_layers=1)))
    assert rnn == 50 * (1 + 50 + 2) + 51  # W_ih, W_hh, two biases, then the head
    assert lstm == 4 * 50 * (1 + 50 + 2) + 51  # four gates


def test_parameter_counts_of_the_gru_and_the_matched_rnn() -> None:
    gru = count_parameters(build_model(ModelParams(arch="gru", hidden_size=50, num_layers=1)))
    wide = count_parameters(build_model(ModelParams(arch="rnn", hidden_size=101, num_layers=1)))
    assert gru == 3 * 50 * (1 + 50 + 2) + 51  # three gates
    assert wide == 101 * (1 + 101 + 2) + 102 == 10_606  # within 0.5% of the LSTM-50's 10,651


def test_forget_bias_sets_only_the_forget_gate_and_draws_nothing() -> None:
    plain = build_model(ModelParams(arch="lstm", hidden_size=4, num_layers=2), seed=5)
    biased = build_model(
        ModelParams(arch="lstm", hidden_size=4, num_layers=2, forget_bias=1.0), seed=5
    )
    for (name, before), after in zip(plain.named_parameters(), biased.parameters(), strict=True):
        if not name.startswith("recurrent.bias_"):
            assert torch.equal(before, after), name  # the same seed's weights
            continue
        gates = after.detach().reshape(4, 4)  # input, forget, cell, output
        expected = 1.0 if "_ih_" in name else 0.0
        assert torch.equal(gates[1], torch.full((4,), expected)), name
        assert torch.equal(gates[[0, 2, 3]], before.detach().reshape(4, 4)[[0, 2, 3]]), name


@pytest.mark.parametrize("name", sorted(MODEL_ARCHITECTURES))
def test_training_loss_goes_down_on_a_tiny_set(name: str) -> None:
    device = configure_torch(SETTINGS)
    windows, targets = sine_windows()
    model = build_model(ModelParams(arch=name, hidden_size=16, num_layers=1))
    history = train_model(model, windows, targets, 30, SETTINGS, device, seed=1)
    assert [epoch.epoch for epoch in history] == list(range(1, 9))
    assert history[-1].train_loss < history[0].train_loss / 2
    assert history[-1].val_loss < history[0].val_loss


def test_training_is_deterministic() -> None:
    def weights() -> list[torch.Tensor]:
        device = configure_torch(SETTINGS)
        model = build_model(ModelParams(arch="lstm", hidden_size=8, num_layers=1), seed=1)
        windows, targets = sine_windows()
        train_model(model, windows, targets, 30, SETTINGS, device, seed=1)
        return [p.detach().clone() for p in model.parameters()]

    for first, second in zip(weights(), weights(), strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize("clip", [None, 0.5])
def test_functional_adam_moves_the_weights_exactly_as_torch_adam(clip: float | None) -> None:
    def weights(optimizer_class: type) -> list[torch.Tensor]:
        configure_torch(SETTINGS)
        model = build_model(ModelParams(arch="lstm", hidden_size=8, num_layers=2), seed=3)
        optimizer = optimizer_class(list(model.parameters()), lr=0.02)
        windows, targets = sine_windows()
        for start in range(0, 160, 16):
            optimizer.zero_grad()
            prediction = model(windows[start : start + 16].unsqueeze(-1))
            loss = nn.functional.mse_loss(prediction, targets[start : start + 16].unsqueeze(-1))
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
        return [param.detach().clone() for param in model.parameters()]

    ours, torchs = weights(FunctionalAdam), weights(torch.optim.Adam)
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs, strict=True))
    initial = build_model(ModelParams(arch="lstm", hidden_size=8, num_layers=2), seed=3)
    assert not torch.equal(ours[0], next(initial.parameters()))


def test_training_does_not_import_torch_dynamo() -> None:
    """The point of `FunctionalAdam`: 1.2 s of CPU saved in every process that trains."""
    script = (
        "import sys, torch\n"
        "from lstm_vs_rnn.modeling.networks import build_model\n"
        "from lstm_vs_rnn.modeling.training import train_model\n"
        "from lstm_vs_rnn.params import ModelParams, TrainParams\n"
        f"settings = TrainParams(**{vars(SETTINGS)!r})\n"
        "windows, targets = torch.rand(60, 8), torch.rand(60)\n"
        "model = build_model(ModelParams(arch='gru', hidden_size=4, num_layers=1))\n"
        "train_model(model, windows, targets, 10, settings, torch.device('cpu'), seed=1)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


class BatchRecorder(nn.Module):
    """A stand-in network that remembers which windows each batch held (their first value is
    the window's index) and draws `init_draws` numbers from torch's global stream when built,
    as an architecture with that many weights would."""

    def __init__(self, init_draws: int) -> None:
        super().__init__()
        torch.rand(init_draws)
        self.scale = nn.Parameter(torch.ones(1))
        self.batches: list[list[int]] = []

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.batches.append(windows[:, 0, 0].long().tolist())
        return windows[:, -1, :] * self.scale


def batch_order(init_draws: int, seed: int) -> list[list[int]]:
    windows = torch.arange(60, dtype=torch.float32).unsqueeze(-1).repeat(1, 4)
    model = BatchRecorder(init_draws)
    settings = TrainParams(**{**vars(SETTINGS), "epochs": 2})
    train_model(model, windows, torch.zeros(60), 10, settings, torch.device("cpu"), seed=seed)
    return model.batches


def test_a_repeat_gives_every_model_the_same_batches_and_each_repeat_its_own() -> None:
    """Pairing: within a repeat only the architecture and its initial weights differ."""
    small, large = batch_order(init_draws=3, seed=42), batch_order(init_draws=10_651, seed=42)
    assert small == large
    first_epoch = [row for batch in small[:4] for row in batch]  # 50 fit windows, batches of 16
    assert sorted(first_epoch) == list(range(50))
    assert batch_order(init_draws=3, seed=43) != small


def test_the_seed_decides_the_initial_weights() -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        return list(
            build_model(
                ModelParams(arch="rnn", hidden_size=4, num_layers=1), seed=seed
            ).parameters()
        )

    assert all(torch.equal(a, b) for a, b in zip(weights(7), weights(7), strict=True))
    assert not torch.equal(weights(7)[0], weights(8)[0])


def test_divergence_stops_with_the_epoch_and_a_fix() -> None:
    settings = TrainParams(**{**vars(SETTINGS), "learning_rate": 10.0, "epochs": 50})
    device = configure_torch(settings)
    windows, targets = sine_windows()
    model = build_model(ModelParams(arch="rnn", hidden_size=16, num_layers=1))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e20)
    with pytest.raises(TrainingDiverged, match=r"epoch 1.*learning_rate.*grad_clip_norm"):
        train_model(model, windows, targets, 30, settings, device, seed=1)


def test_prediction_in_batches_equals_one_pass() -> None:
    model = build_model(ModelParams(arch="lstm", hidden_size=4, num_layers=1)).eval()
    windows, _ = sine_windows()
    with torch.no_grad():
        whole = model(windows.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(predict(model, windows, torch.device("cpu")), whole)


def test_weights_round_trip_and_reject_another_architecture(tmp_path) -> None:
    model = build_model(ModelParams(arch="lstm", hidden_size=4, num_layers=1))
    path = tmp_path / "model.pt"
    save_weights(model, path)
    loaded = load_model("lstm", ModelParams(arch="lstm", hidden_size=4, num_layers=1), path)
    for ours, theirs in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    with pytest.raises(UserError, match=r"model\.pt.*hidden_size=8"):
        load_model("lstm", ModelParams(arch="lstm", hidden_size=8, num_layers=1), path)
    with pytest.raises(UserError, match=r"model\.pt"):
        load_model("rnn", ModelParams(arch="rnn", hidden_size=4, num_layers=1), path)


def test_metrics_against_hand_computed_values() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.0, 3.0, 2.0, 4.0])  # errors 0, 1, -1, 0
    train = np.array([0.0, 2.0, 1.0, 3.0])  # naive one-step MAE = (2 + 1 + 2) / 3 = 5/3
    metrics = forecast_metrics(actual, predicted, train)
    assert metrics["test_rmse"] == pytest.approx(np.sqrt(0.5))
    assert metrics["test_mae"] == pytest.approx(0.5)
    assert metrics["test_r2"] == pytest.approx(1 - 2 / 5)  # SSE 2, SST 5
    assert metrics["test_mase"] == pytest.approx(0.5 / (5 / 3))


def test_persistence_repeats_the_previous_value() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert persistence_forecast(values, 2).tolist() == [3.0, 4.0]


def test_error_spread_is_the_sample_std_of_the_errors() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.0, 3.0, 2.0, 4.0])  # errors 0, 1, -1, 0: mean 0, SS 2, n - 1 = 3
    metrics = forecast_metrics(actual, predicted, actual)
    assert metrics["test_error_std"] == pytest.approx(np.sqrt(2 / 3))


def test_the_ar_baseline_recovers_a_noiseless_linear_recursion() -> None:
    """y_t = 0.5 + 0.9 y_{t-1} - 0.2 y_{t-2}: least squares on the windows finds it exactly."""
    values = [1.0, 2.0]
    for _ in range(60):
        values.append(0.5 + 0.9 * values[-1] - 0.2 * values[-2])
    series = np.array(values)
    train, test = series[:40], series[40:]
    fitted = fit_autoregressive(train, window=2)
    forecast = autoregressive_forecast(fitted, np.concatenate([train[-2:], test]))
    np.testing.assert_allclose(forecast, test, rtol=1e-9)


def test_the_ar_baseline_estimates_known_coefficients_of_a_noisy_ar2() -> None:
    """y_t = 0.5 + 0.6 y_{t-1} - 0.3 y_{t-2} + e_t, e ~ N(0, 0.1^2), 20,000 steps: least squares
    finds the coefficients to within a few standard errors (about 0.007 here), where a series
    settled to a constant would let any weights with its fixed point pass. The window is
    oldest first, so the weights read (phi_2, phi_1)."""
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.1, 20_000)
    values = np.zeros(20_000)
    for t in range(2, 20_000):
        values[t] = 0.5 + 0.6 * values[t - 1] - 0.3 * values[t - 2] + noise[t]
    fitted = fit_autoregressive(values[100:], window=2)
    np.testing.assert_allclose(fitted.weights, [-0.3, 0.6], atol=0.03)
    assert fitted.intercept == pytest.approx(0.5, abs=0.03)
    persistence = np.sqrt(np.mean(np.diff(values[100:]) ** 2))
    history = values[-1000:]
    errors = autoregressive_forecast(fitted, history) - history[2:]
    assert np.std(errors) == pytest.approx(0.1, rel=0.1)  # the noise alone
    assert np.std(errors) < 0.9 * persistence


def test_convergence_is_the_first_epoch_within_five_percent_of_the_best() -> None:
    assert epochs_to_converge(np.array([4.0, 2.0, 1.04, 1.2, 1.0])) == 3
    assert epochs_to_converge(np.array([1.0, 2.0])) == 1


def test_the_chosen_repeat_is_the_one_whose_saved_weights_validate_best() -> None:
    """Repeat 0 has the lowest loss of all at epoch 2, but its saved (final-epoch) weights
    validate worse than repeat 1's: the shipped repeat is 1, whose weights are the ones kept."""
    epochs = [EpochLosses(1, 1.0, 0.50), EpochLosses(2, 0.8, 0.10), EpochLosses(3, 0.7, 0.40)]
    other = [EpochLosses(1, 1.0, 0.60), EpochLosses(2, 0.8, 0.30), EpochLosses(3, 0.7, 0.20)]
    histories = pd.concat([history_frame(0, 1, epochs), history_frame(1, 2, other)])
    assert best_validation_repeat(histories) == 1
    assert best_validation_repeat(histories.iloc[::-1]) == 1
