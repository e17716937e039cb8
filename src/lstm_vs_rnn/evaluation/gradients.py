"""Gradient flow, measured: how strongly each forecast depends on the input k steps back.

The article's vanishing-gradient argument (Pascanu et al. 2013) is about the product of k
step Jacobians: through a plain RNN it shrinks geometrically with k, while an LSTM's memory
cell can carry it. What that product does to a forecast is its sensitivity to an old input,
|dŷ/dx_{t-k}|, with k = 0 the most recent value of the window and k = window-1 the oldest.
It is measured by differentiating the prediction with respect to the input window, which is
the only path that runs through the recurrence (the `output` tensor of `nn.RNN`/`nn.LSTM`
holds earlier steps' states, but a forecast read off the last step has no gradient there).

Each model is measured trained and at initialisation (`build_model(settings, seed)` gives
exactly the initial weights of that repeat), over the scaled test windows: at most
`MAX_WINDOWS` of them, evenly spaced, the same ones for every model and repeat. In float64, so
that a sensitivity of 1e-30 at an old lag is a number, not an underflowed zero.

The sensitivity is unit-free: inputs and output share one min-max scaling (x_s = (x - a)/r,
ŷ_s = (ŷ - a)/r), so dŷ_s/dx_s = dŷ/dx and scaled and original units give the same value.
"""

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from lstm_vs_rnn.data.windows import make_windows, with_history
from lstm_vs_rnn.files import read_array
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.params import Params
from lstm_vs_rnn.paths import ProjectPaths

STATES = ("trained", "init")
TABLE_COLUMNS = ("model", "state", "lag", "median", "p10", "p90")
# Test windows measured per model and repeat: all of them at default params (200); at 10^6
# points (200,000 test windows) an evenly spaced 1,000, so the kept sensitivities stay
# repeats x 1,000 x window x 8 bytes per model and state (8 MB at 10 repeats, window 100).
MAX_WINDOWS = 1000
# Windows per backward pass: bounds the autograd graph. At 10^6 points, window 100, hidden 50,
# measuring both models raised a bare process's peak RSS by 160 MiB (92 MiB at 64, but twice
# as slow); evaluate's peak stays where prediction puts it (726 MiB, 734 MiB without this).
GRADIENT_BATCH_SIZE = 256
# A median sensitivity of exactly 0 (saturated units) is counted as this in log ratios, so
# that a ratio is always finite.
SMALLEST = float(np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class LagRatios:
    """One model's per-repeat log10 of (median sensitivity at the oldest lag / at lag 0), per
    state: how many decades the dependence on the input falls across the window."""

    arch: str
    per_state: dict[str, np.ndarray]


@dataclass(frozen=True)
class GradientFlow:
    """Sensitivity per lag (median and 10-90% band over windows and repeats) per model and
    state, and the per-repeat lag ratios the vanishing-gradient claim is tested on."""

    table: pd.DataFrame
    ratios: dict[str, LagRatios]

    @property
    def oldest_lag(self) -> int:
        """window - 1: the lag of the first value of the window."""
        return int(self.table["lag"].max())

    def oldest_over_newest(self, model: str) -> dict[str, float]:
        """For metrics.json: per state, the median over windows and repeats at the oldest lag
        over the median at lag 0."""
        ratios = {}
        for state in STATES:
            rows = self.table[(self.table["model"] == model) & (self.table["state"] == state)]
            median = rows.sort_values("lag")["median"].to_numpy()
            ratios[state] = float(median[-1] / median[0])
        return ratios

    def median_by_lag(self) -> dict[int, dict[str, float]]:
        """Per lag, `<model>.grad_median.<state>`: one curve per model and state with
        step = lag, for the tracking store."""
        by_lag: dict[int, dict[str, float]] = {}
        for row in self.table.itertuples(index=False):
            by_lag.setdefault(int(row.lag), {})[f"{row.model}.grad_median.{row.state}"] = float(
                row.median
            )
        return by_lag


def input_sensitivity(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """|dŷ_i/dx_i[t-k]| for every window i (rows) and lag k (columns), float64 on the CPU.

    `windows` is (n, window, 1), scaled. Each forecast depends only on its own window, so the
    gradient of the summed forecasts is every window's own gradient at once. Column k is the
    input k steps before the forecast's origin: the window read backwards. Converts `model`
    to float64 in place (its float32 weights are exact in float64: the same function).
    """
    model = model.double().eval()
    device = next(model.parameters()).device
    parts = []
    # cuDNN's RNN backward refuses to run in eval mode; the native kernels compute the same.
    with torch.backends.cudnn.flags(enabled=False):
        for start in range(0, len(windows), GRADIENT_BATCH_SIZE):
            batch = windows[start : start + GRADIENT_BATCH_SIZE].to(device, torch.float64)
            batch.requires_grad_(True)
            (gradient,) = torch.autograd.grad(model(batch).sum(), batch)
            parts.append(gradient.squeeze(-1).abs().flip(-1).cpu())
    return torch.cat(parts)


def evenly_spaced(n_windows: int, limit: int = MAX_WINDOWS) -> np.ndarray:
    """Indices of at most `limit` windows spread evenly from the first to the last: a fixed,
    deterministic sample that covers the whole test part."""
    if n_windows <= limit:
        return np.arange(n_windows)
    return np.unique(np.linspace(0, n_windows - 1, limit).round().astype(np.int64))


def lag_quantiles(sensitivities: list[np.ndarray]) -> pd.DataFrame:
    """Per lag, the median and 10th/90th percentiles over every window of every repeat.

    `sensitivities` holds one (windows, lags) array per repeat; windows and repeats are pooled,
    so the band shows the spread of single forecasts, repeats included.
    """
    pooled = np.concatenate(sensitivities, axis=0)
    p10, median, p90 = np.quantile(pooled, [0.1, 0.5, 0.9], axis=0)
    return pd.DataFrame(
        {"lag": np.arange(pooled.shape[1]), "median": median, "p10": p10, "p90": p90}
    )


def log10_lag_ratio(sensitivity: np.ndarray) -> float:
    """log10 of the median over windows at the oldest lag over the median at lag 0."""
    median = np.maximum(np.median(sensitivity, axis=0), SMALLEST)
    return float(np.log10(median[-1]) - np.log10(median[0]))


def scaled_test_windows(paths: ProjectPaths, window: int) -> torch.Tensor:
    """The evenly spaced sample of scaled test windows, (n, window, 1) float32, as the models
    read them (the test part preceded by the last `window` training points)."""
    train = read_array(paths.train_array, "scale")
    test = read_array(paths.test_array, "scale")
    series = torch.from_numpy(with_history(train, test, window).astype(np.float32))
    windows, _ = make_windows(series, window)
    return windows[torch.from_numpy(evenly_spaced(len(windows)))].unsqueeze(-1)


def measure_gradient_flow(
    params: Params,
    paths: ProjectPaths,
    device: torch.device,
    trained: Mapping[str, Sequence[nn.Module]],
) -> GradientFlow:
    """Every model, every repeat, trained (`trained[name][repeat]`, left as it is: a copy is
    measured) and at initialisation, on the same test windows."""
    windows = scaled_test_windows(paths, params.data.window)
    frames, ratios = [], {}
    for name, settings in params.models.items():
        per_state: dict[str, list[np.ndarray]] = {state: [] for state in STATES}
        for repeat, seed in enumerate(params.repeat_seeds()):
            models = {
                "trained": copy.deepcopy(trained[name][repeat]),
                "init": build_model(settings, seed),
            }
            for state, model in models.items():
                per_state[state].append(input_sensitivity(model.to(device), windows).numpy())
        for state in STATES:
            quantiles = lag_quantiles(per_state[state])
            frames.append(quantiles.assign(model=name, state=state))
        ratios[name] = LagRatios(
            settings.arch,
            {state: np.array([log10_lag_ratio(s) for s in per_state[state]]) for state in STATES},
        )
    table = pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]
    return GradientFlow(table, ratios)
