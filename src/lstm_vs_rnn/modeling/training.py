"""The training loop: shuffled mini-batches over window views, MSE, Adam, per-epoch losses.

pandas is imported only where the loss histories become frames (in the train stage's own
process): a tune worker (`commands.tune_worker`), which only trains, is spared its import (0.3 s).
Adam's update is torch's own (`torch.optim.adam.adam`) driven by `FunctionalAdam`, which spares
every training process the 1.2 s of CPU `torch.optim.Optimizer` spends importing `torch._dynamo`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.adam import adam

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.modeling.prediction import predict
from lstm_vs_rnn.params import TrainParams

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class EpochLosses:
    """Mean MSE (scaled units) over every training window of the epoch and the validation tail."""

    epoch: int
    train_loss: float
    val_loss: float


class FunctionalAdam:
    """Adam (Kingma & Ba, 2015) with torch's defaults, stepped by `torch.optim.adam.adam`.

    It holds what `torch.optim.Adam` holds for each parameter (first and second moments shaped
    like the parameter, a float step count on the CPU) and hands them to the same functional
    update `torch.optim.Adam.step` calls, with the same arguments, under `torch.no_grad()`: the
    weights are bit-for-bit those of `torch.optim.Adam(params, lr=lr)` (betas 0.9 and 0.999,
    eps 1e-8, no weight decay, no AMSGrad). Why not `torch.optim.Adam` itself: every entry
    point of `torch.optim.Optimizer` (construction, `zero_grad`, `step`) imports `torch._dynamo`
    for `torch.compile`, which costs 1.2 s of CPU in each process that trains (each train and
    tune stage, each of their workers), about a third of a small stage's start-up.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: list[nn.Parameter], lr: float) -> None:
        self.params = params
        self.lr = lr
        self._moments: dict[nn.Parameter, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        """Drop every gradient (set to None, as `torch.optim.Optimizer.zero_grad` does)."""
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter that has a gradient, once."""
        with_grad = [param for param in self.params if param.grad is not None]
        moments = [self._moments_of(param) for param in with_grad]
        adam(
            with_grad,
            [param.grad for param in with_grad],
            [first for first, _, _ in moments],
            [second for _, second, _ in moments],
            [],
            [steps for _, _, steps in moments],
            amsgrad=False,
            has_complex=any(torch.is_complex(param) for param in with_grad),
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=self.lr,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
            foreach=None,
            capturable=False,
            differentiable=False,
            fused=None,
            grad_scale=None,
            found_inf=None,
            decoupled_weight_decay=False,
        )

    def _moments_of(self, param: nn.Parameter) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if param not in self._moments:
            self._moments[param] = (
                torch.zeros_like(param, memory_format=torch.preserve_format),
                torch.zeros_like(param, memory_format=torch.preserve_format),
                torch.tensor(0.0, dtype=_step_dtype()),
            )
        return self._moments[param]


def _step_dtype() -> torch.dtype:
    """The step count's dtype, as `torch.optim.optimizer._get_scalar_dtype` picks it."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the message names the epoch and how to fix it."""


def configure_torch(settings: TrainParams) -> torch.device:
    """Fix the thread count (LSTM weights differ between 1 and 2 threads) and pick the device.

    The CPU kernels used here are deterministic at a fixed thread count; only CUDA needs
    deterministic algorithms forced, and the switch costs ~0.9 s of imports (torch._dynamo).
    Seeds are per repeat (see `train_model` and `models.build_model`).
    """
    torch.set_num_threads(settings.num_threads)
    device = resolve_device(settings.device)
    if device.type == "cuda":
        torch.use_deterministic_algorithms(True)
    return device


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "params.yaml: train.device = 'cuda' but no CUDA device is available; "
            "use 'auto' or 'cpu'"
        )
    return torch.device(device)


def train_model(
    model: nn.Module,
    windows: torch.Tensor,
    targets: torch.Tensor,
    n_val: int,
    settings: TrainParams,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[EpochLosses], None] = lambda losses: None,
) -> list[EpochLosses]:
    """Fit on all windows but the last `n_val`, which give the validation loss each epoch.

    The batch order comes from a generator of its own seeded with `seed`, never from torch's
    global stream: the global stream also draws the initial weights, whose count differs
    between architectures, so repeat i of an RNN and of an LSTM see the same batches.
    """
    n_fit = len(windows) - n_val
    fit_windows, fit_targets = windows[:n_fit], targets[:n_fit]
    val_windows, val_targets = windows[n_fit:], targets[n_fit:]
    model.to(device)
    optimizer = FunctionalAdam(list(model.parameters()), lr=settings.learning_rate)
    loss_fn = nn.MSELoss()
    order = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, settings.epochs + 1):
        model.train()
        total, permutation = 0.0, torch.randperm(n_fit, generator=order)
        for start in range(0, n_fit, settings.batch_size):
            rows = permutation[start : start + settings.batch_size]
            inputs = fit_windows[rows].unsqueeze(-1).to(device)
            expected = fit_targets[rows].unsqueeze(-1).to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), expected)
            _stop_if_diverged(loss.item(), epoch, settings)
            loss.backward()
            if settings.grad_clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
            optimizer.step()
            total += loss.item() * len(rows)
        val_loss = loss_fn(predict(model, val_windows, device), val_targets).item()
        _stop_if_diverged(val_loss, epoch, settings)
        losses = EpochLosses(epoch, total / n_fit, val_loss)
        history.append(losses)
        on_epoch(losses)
    return history


def _stop_if_diverged(loss: float, epoch: int, settings: TrainParams) -> None:
    if not math.isfinite(loss):
        if settings.grad_clip_norm is None:
            hint = "or set train.grad_clip_norm (e.g. 1.0)"
        else:
            hint = f"or lower train.grad_clip_norm (now {settings.grad_clip_norm})"
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}: the loss is {loss}; lower "
            f"train.learning_rate (now {settings.learning_rate}) {hint}"
        )


def history_frame(repeat: int, seed: int, history: list[EpochLosses]) -> pd.DataFrame:
    """One repeat's losses per epoch, as rows of the model's loss-history CSV."""
    import pandas as pd

    frame = pd.DataFrame([vars(epoch) for epoch in history])
    frame.insert(0, "seed", seed)
    frame.insert(0, "repeat", repeat)
    return frame


def best_validation_repeat(histories: pd.DataFrame) -> int:
    """The repeat whose saved weights, those of its final epoch, have the lowest validation loss.

    Chosen on validation, never on test, so it is the one to ship (the logged MLflow model) and
    to draw predictions for. Every repeat trains the full `train.epochs` and saves its last
    epoch's weights (each repeat's test metrics mean "after N epochs"), so the choice reads the
    last epoch's loss: a repeat's lowest loss at an earlier epoch belongs to weights that were
    not kept. Ties go to the lowest repeat.
    """
    final = histories.sort_values("epoch").groupby("repeat")["val_loss"].last()
    return int(final.idxmin())
