"""Section 1: training and prediction throughput of our loop against two references.

Ours is `lstm_vs_rnn.modeling.training.train_model` / `predict` (shuffled index batches over
`unfold` window views). The references, written here, do the same work with the same model,
optimiser, seed and thread count:

* textbook: a per-sample `Dataset` whose `__getitem__` builds tensors, a shuffled
  `DataLoader(batch_size=64)`, and prediction one window at a time;
* bare: the minimal loop over batches built before the clock starts, no logging, no progress
  bar, no per-batch `.item()`: the floor any training loop can reach with this model.

Times are CPU seconds of this process (torch runs one thread, as in the stages), so other
jobs on a shared host do not show up as a slower loop. Each epoch (ours and both references)
also computes the validation loss, as ours always does, so the ratios compare loops, not
amounts of work. Implementations are interleaved within each repeat so a slow spell on a
shared host hits all three alike.
"""

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmarks.probed_repo import distinct_entries
from benchmarks.report import Row, rate, timed, verdict
from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import sine_series
from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.modeling.prediction import predict
from lstm_vs_rnn.modeling.training import configure_torch, train_model
from lstm_vs_rnn.params import Params, TrainParams, split_point

SECTION = "1 throughput"
TEXTBOOK_TRAIN_TARGET = 2.0
TEXTBOOK_PREDICT_TARGET = 20.0
BARE_TARGET = 1.1


@dataclass(frozen=True)
class Series:
    """One scaled series cut into windows: the fit part, the validation tail, the test part."""

    values: np.ndarray  # float32, scaled; training part then test part
    windows: torch.Tensor
    targets: torch.Tensor
    n_fit: int
    n_train_windows: int
    window: int

    @property
    def test_windows(self) -> torch.Tensor:
        return self.windows[self.n_train_windows :]


def make_series(params: Params, n_points: int) -> Series:
    """The pipeline's series at `n_points`, scaled as the `scale` stage does."""
    data = params.data.model_copy(update={"n_points": n_points})
    values = sine_series(data)["y"].to_numpy()
    split = split_point(n_points, data.train_fraction)
    scaled = MinMaxScaling.fit(values[:split]).transform(values).astype(np.float32)
    windows, targets = make_windows(torch.from_numpy(scaled), data.window)
    n_train_windows = split - data.window
    n_val = int(n_train_windows * params.train.val_fraction)
    return Series(scaled, windows, targets, n_train_windows - n_val, n_train_windows, data.window)


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The textbook per-sample dataset: every item builds two new tensors."""

    def __init__(self, values: np.ndarray, window: int, start: int, stop: int) -> None:
        self.values, self.window, self.start, self.stop = values, window, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.start + index
        inputs = torch.tensor(self.values[i : i + self.window], dtype=torch.float32).unsqueeze(-1)
        target = torch.tensor([self.values[i + self.window]], dtype=torch.float32)
        return inputs, target


def fresh_model(name: str, params: Params) -> nn.Module:
    """Same initial weights for every implementation: the seed is reset first."""
    return build_model(params.models[name], params.train.seed)


def train_ours(model: nn.Module, series: Series, settings: TrainParams) -> None:
    n_val = series.n_train_windows - series.n_fit
    train_model(
        model,
        series.windows[: series.n_train_windows],
        series.targets[: series.n_train_windows],
        n_val,
        settings,
        torch.device("cpu"),
        settings.seed,
    )


def train_textbook(model: nn.Module, series: Series, settings: TrainParams) -> None:
    fit = WindowDataset(series.values, series.window, 0, series.n_fit)
    val = WindowDataset(series.values, series.window, series.n_fit, series.n_train_windows)
    loader = DataLoader(
        fit,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    loss_fn = nn.MSELoss()
    for _ in range(settings.epochs):
        model.train()
        total = 0.0
        for inputs, expected in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), expected)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(inputs)
        model.eval()
        with torch.no_grad():
            val_total = sum(
                loss_fn(model(x), y).item() * len(x)
                for x, y in DataLoader(val, batch_size=settings.batch_size)
            )
        _ = (total / len(fit), val_total / len(val))


def prebuilt_batches(series: Series, settings: TrainParams) -> list[tuple[torch.Tensor, ...]]:
    """The bare loop's input: every batch of one epoch, gathered before timing starts."""
    order = torch.randperm(series.n_fit, generator=torch.Generator().manual_seed(settings.seed))
    return [
        (series.windows[rows].unsqueeze(-1), series.targets[rows].unsqueeze(-1))
        for rows in order.split(settings.batch_size)
    ]


def train_bare(
    model: nn.Module, series: Series, settings: TrainParams, batches: list[tuple[torch.Tensor, ...]]
) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    loss_fn = nn.MSELoss()
    val_inputs = series.windows[series.n_fit : series.n_train_windows].unsqueeze(-1)
    val_targets = series.targets[series.n_fit : series.n_train_windows].unsqueeze(-1)
    for _ in range(settings.epochs):
        model.train()
        for inputs, expected in batches:
            optimizer.zero_grad()
            loss_fn(model(inputs), expected).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            loss_fn(model(val_inputs), val_targets)


def predict_one_by_one(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """The textbook prediction loop: one forward pass per window."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(window.view(1, -1, 1)).view(1) for window in windows])


@dataclass(frozen=True)
class Rates:
    """Median windows per second of each implementation for one model and size, and the
    median of the per-repeat ratios (paired, so drift between repeats cancels out)."""

    ours: float
    textbook: float
    bare: float
    predict_ours: float
    predict_bare: float
    predict_single: float
    ours_vs_textbook: float
    bare_vs_ours: float
    bare_vs_textbook: float
    predict_ours_vs_single: float
    predict_bare_vs_single: float


def forward_all(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """The prediction floor: one forward pass over every window, nothing around it."""
    model.eval()
    with torch.no_grad():
        return model(windows.unsqueeze(-1))


def warm_up(
    name: str,
    params: Params,
    series: Series,
    settings: TrainParams,
    batches: list[tuple[torch.Tensor, ...]],
) -> None:
    """One untimed pass of each loop over a few batches, so no first call pays for allocation."""
    n_fit = min(series.n_fit, 8 * settings.batch_size)
    n_train = min(series.n_train_windows, n_fit + 64)
    short = dataclasses.replace(series, n_fit=n_fit, n_train_windows=n_train)
    train_ours(fresh_model(name, params), short, settings)
    train_textbook(fresh_model(name, params), short, settings)
    train_bare(fresh_model(name, params), short, settings, batches[:8])
    predict_one_by_one(fresh_model(name, params), series.test_windows[:64])


def cpu_timed(action: Callable[[], object]) -> float:
    return timed(action, time.process_time)


def one_repeat(
    name: str,
    params: Params,
    series: Series,
    settings: TrainParams,
    batches: list[tuple[torch.Tensor, ...]],
    single: torch.Tensor,
    reverse: bool,
) -> dict[str, float]:
    """Rates of every implementation once; `reverse` flips the order, so none is always first."""
    test, cpu = series.test_windows, torch.device("cpu")
    training = {
        "ours": partial(train_ours, fresh_model(name, params), series, settings),
        "textbook": partial(train_textbook, fresh_model(name, params), series, settings),
        "bare": partial(train_bare, fresh_model(name, params), series, settings, batches),
    }
    model = fresh_model(name, params)
    predicting = {
        "predict_ours": (len(test), partial(predict, model, test, cpu)),
        "predict_bare": (len(test), partial(forward_all, model, test)),
        "predict_single": (len(single), partial(predict_one_by_one, model, single)),
    }
    order = list(training.items())
    rates = {
        key: series.n_fit / cpu_timed(action)
        for key, action in (reversed(order) if reverse else order)
    }
    rates.update({key: count / cpu_timed(action) for key, (count, action) in predicting.items()})
    return rates


def measure(name: str, params: Params, series: Series, repeats: int, max_single: int) -> Rates:
    """Interleaved repeats; training rates count fitted windows per second of one epoch."""
    settings = params.train.model_copy(update={"epochs": 1})
    batches = prebuilt_batches(series, settings)
    single = series.test_windows[:max_single]
    warm_up(name, params, series, settings, batches)
    samples = [
        one_repeat(name, params, series, settings, batches, single, reverse=index % 2 == 1)
        for index in range(repeats)
    ]

    def median(key: str) -> float:
        return statistics.median(sample[key] for sample in samples)

    def paired(numerator: str, denominator: str) -> float:
        return statistics.median(sample[numerator] / sample[denominator] for sample in samples)

    return Rates(
        ours=median("ours"),
        textbook=median("textbook"),
        bare=median("bare"),
        predict_ours=median("predict_ours"),
        predict_bare=median("predict_bare"),
        predict_single=median("predict_single"),
        ours_vs_textbook=paired("ours", "textbook"),
        bare_vs_ours=paired("bare", "ours"),
        bare_vs_textbook=paired("bare", "textbook"),
        predict_ours_vs_single=paired("predict_ours", "predict_single"),
        predict_bare_vs_single=paired("predict_bare", "predict_single"),
    )


def rows_for(name: str, n_points: int, rates: Rates) -> list[Row]:
    """Three comparisons; each also shows the best any loop could do (the bare floor)."""
    where = f"{name} n={n_points:,}"
    train_speedup = rates.ours_vs_textbook
    train_ceiling = rates.bare_vs_textbook
    predict_speedup = rates.predict_ours_vs_single
    predict_ceiling = rates.predict_bare_vs_single
    bare_slowdown = rates.bare_vs_ours
    return [
        Row(
            SECTION,
            f"{where} train: ours vs textbook DataLoader",
            f"{rate(rates.ours)} vs {rate(rates.textbook)} = {train_speedup:.2f}x "
            f"(bare floor: {train_ceiling:.2f}x)",
            f">= {TEXTBOOK_TRAIN_TARGET:g}x",
            verdict(train_speedup >= TEXTBOOK_TRAIN_TARGET),
        ),
        Row(
            SECTION,
            f"{where} train: bare loop / ours",
            f"{rate(rates.bare)} / {rate(rates.ours)} = {bare_slowdown:.2f}x",
            f"<= {BARE_TARGET:g}x",
            verdict(bare_slowdown <= BARE_TARGET),
        ),
        Row(
            SECTION,
            f"{where} predict: ours vs batch size 1",
            f"{rate(rates.predict_ours)} vs {rate(rates.predict_single)} = {predict_speedup:.1f}x "
            f"(one forward pass: {predict_ceiling:.1f}x)",
            f">= {TEXTBOOK_PREDICT_TARGET:g}x",
            verdict(predict_speedup >= TEXTBOOK_PREDICT_TARGET),
        ),
    ]


def run(
    params: Params, sizes: tuple[int, ...], repeats: tuple[int, ...], max_single: int
) -> list[Row]:
    """Every model at every size; torch is configured exactly as the training stage does."""
    configure_torch(params.train)
    rows = [
        Row(
            SECTION,
            "setup",
            f"batch {params.train.batch_size}, window {params.data.window}, "
            f"{params.train.num_threads} torch thread(s), 1 epoch, "
            f"median of {'/'.join(map(str, repeats))} (CPU time)",
        )
    ]
    for n_points, times in zip(sizes, repeats, strict=True):
        series = make_series(params, n_points)
        for name in distinct_networks(params):
            rows += rows_for(name, n_points, measure(name, params, series, times, max_single))
    return rows


def distinct_networks(params: Params) -> list[str]:
    """Each distinct network of params.yaml once (see `distinct_entries`)."""
    return list(distinct_entries({name: m.model_dump() for name, m in params.models.items()}))
