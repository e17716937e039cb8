"""One training repeat as a job for a worker process, and the events it reports while it runs.

A repeat depends only on its params, its seed and the training series on disk, never on what
ran before it in the same process: so repeats give the same bytes whether they run one after
another or side by side on several processes (`lstm_vs_rnn.workers`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.files import read_array
from lstm_vs_rnn.modeling.checkpoints import save_weights
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.modeling.training import (
    EpochLosses,
    TrainingDiverged,
    configure_torch,
    train_model,
)
from lstm_vs_rnn.params import Params, validation_windows
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.workers import report


@dataclass(frozen=True)
class RepeatStarted:
    repeat: int
    seed: int


@dataclass(frozen=True)
class RepeatEpoch:
    repeat: int
    losses: EpochLosses


@dataclass(frozen=True)
class FittedRepeat:
    """A finished repeat: its loss per epoch and the file its weights were saved to."""

    repeat: int
    seed: int
    history: list[EpochLosses]
    weights: Path


@functools.cache
def training_windows(train_array: Path, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The scaled training series at `train_array` as (windows, targets), shapes (n, window)
    and (n,); read once per process."""
    series = torch.from_numpy(read_array(train_array, "scale").astype(np.float32))
    return make_windows(series, window)


def fit_repeat(
    name: str, params: Params, repeat: int, seed: int, train_array: Path, folder: Path
) -> FittedRepeat:
    """Train repeat `repeat` (torch seed `seed`) of model entry `name` on the scaled training
    part at `train_array` and save its weights into `folder`; reports `RepeatStarted`, a
    `RepeatEpoch` per epoch, then the `FittedRepeat`. A diverged loss raises
    `TrainingDiverged` naming model, repeat and seed."""
    device = configure_torch(params.train)
    windows, targets = training_windows(train_array, params.data.window)
    n_val = validation_windows(len(windows), params.train.val_fraction)
    report(RepeatStarted(repeat, seed))
    try:
        model = build_model(params.models[name], seed)
        history = train_model(
            model,
            windows,
            targets,
            n_val,
            params.train,
            device,
            seed,
            on_epoch=lambda losses: report(RepeatEpoch(repeat, losses)),
        )
    except TrainingDiverged as error:
        raise TrainingDiverged(f"{name}, repeat {repeat} (seed {seed}): {error}") from None
    weights = folder / PATHS.model_weights(name, repeat).name
    save_weights(model.cpu().eval(), weights)
    fitted = FittedRepeat(repeat, seed, history, weights)
    report(fitted)
    return fitted
