"""The `train@<entry>-<fold>` stage's work: fit one forecaster `train.repeats` times on the
scaled training windows of fold k, at the settings its tune stage chose
(tuning/fold_<k>/<entry>.json; its listed ones when it does not tune).

Repeat i uses seed `train.seed + i` for its initial weights and its batch order, so repeat i of
every entry of one batch size sees the same batches. Repeats train side by side on
`train.workers` processes (`lstm_vs_rnn.workers`), with the same bytes for any number.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.files import atomic_directory, write_csv
from lstm_vs_rnn.modeling.checkpoints import ForecasterFiles
from lstm_vs_rnn.modeling.chosen_settings import at_chosen_settings
from lstm_vs_rnn.modeling.networks import build_model, count_parameters
from lstm_vs_rnn.modeling.repeats import (
    FittedRepeat,
    RepeatEpoch,
    RepeatStarted,
    fit_repeat,
    training_windows,
)
from lstm_vs_rnn.modeling.training import EpochLosses, best_validation_repeat, history_frame
from lstm_vs_rnn.params import Params, validation_windows
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.processes import usable_cores
from lstm_vs_rnn.progress import StageProgress
from lstm_vs_rnn.reporting.figures import loss_figure, save_figure
from lstm_vs_rnn.stage_names import entry_stage
from lstm_vs_rnn.stage_result import StageResult
from lstm_vs_rnn.workers import worker_pool

# The params keys the stage reads, as dvc.yaml lists them (tests/test_layout.py checks both;
# `{entry}` is the stage's entry, dvc.yaml's `${key}`):
# every train key but `workers`, which changes no output (params.EXECUTION_KEYS).
PARAMS = (
    "data.window",
    "train.epochs",
    "train.batch_size",
    "train.learning_rate",
    "train.val_fraction",
    "train.seed",
    "train.repeats",
    "train.device",
    "train.num_threads",
    "train.grad_clip_norm",
    "models.{entry}",
)


class RepeatListener(Protocol):
    """Who follows the repeats as they train (the stage's MLflow runs, one per repeat)."""

    def repeat_started(self, repeat: int, seed: int) -> None: ...

    def epoch_done(self, repeat: int, losses: EpochLosses) -> None: ...

    def repeat_done(self, fitted: FittedRepeat) -> None: ...


class RepeatEvents:
    """The events the repeats report, passed to the listener and the stage's progress line."""

    def __init__(self, listener: RepeatListener, progress: StageProgress) -> None:
        self.listener, self.progress = listener, progress

    def on_event(self, event: object) -> None:
        if isinstance(event, RepeatStarted):
            self.listener.repeat_started(event.repeat, event.seed)
        elif isinstance(event, RepeatEpoch):
            self.listener.epoch_done(event.repeat, event.losses)
            self.progress.epoch_done(event.repeat, event.losses.epoch)
        elif isinstance(event, FittedRepeat):
            self.listener.repeat_done(event)
            val_loss = event.history[-1].val_loss
            self.progress.job_done(
                event.repeat, f"repeat {event.repeat}, seed {event.seed}: val loss {val_loss:.4g}"
            )


@dataclass(frozen=True)
class BestRepeat:
    """The repeat logged as the entry's model: the lowest final-epoch validation loss."""

    files: ForecasterFiles
    spec: dict[str, Any]
    input_example: np.ndarray  # (2, window), the series' units
    tags: dict[str, str]


@dataclass(frozen=True)
class TrainResult:
    """What train@<entry>-<fold> logs: the stage's numbers and figure, and its best repeat."""

    logged: StageResult
    best: BestRepeat


def run(params: Params, paths: ProjectPaths, name: str, listener: RepeatListener) -> TrainResult:
    """Train every repeat of entry `name` on fold k = `paths.fold`, weights into
    models/fold_<k>/<name>/ (replaced whole, only if every repeat finished), the loss histories
    into reports/plots/losses/fold_<k>/<name>.csv and reports/figures/fold_<k>/loss_<name>.png.

    `listener` follows each repeat as it starts, finishes an epoch and ends; a terminal shows
    one live progress line, a log one line per repeat.

    Raises UserError if tuning/fold_<k>/<name>.json is missing for an entry that tunes,
    TrainingDiverged (a UserError) naming the repeat whose loss stopped being finite, and
    `workers.WorkerDied` if a worker process was killed.
    """
    configured = params
    params, tuning = at_chosen_settings(configured, name, paths.tuning_result(name))
    windows, _ = training_windows(paths.train_array, params.data.window)
    stage = entry_stage("train", name, paths.fold)
    progress = StageProgress(stage, params.train.repeats, params.train.epochs)
    started = time.monotonic()
    try:
        with atomic_directory(paths.model_dir(name)) as folder:
            events = RepeatEvents(listener, progress)
            histories = train_repeats(name, params, paths.train_array, folder, events)
    finally:
        progress.close()
    seconds = time.monotonic() - started
    write_csv(paths.loss_history(name), histories)
    save_figure(loss_figure({name: histories}), paths.loss_figure(name))
    final = histories.groupby("repeat").last()
    n_fit = len(windows) - validation_windows(len(windows), params.train.val_fraction)
    logged = StageResult(
        params={f"chosen.{key}": value for key, value in tuning["chosen"].items()},
        metrics={
            "final_train_loss_median": float(final["train_loss"].median()),
            "best_val_loss_median": float(histories.groupby("repeat")["val_loss"].min().median()),
            "n_parameters": count_parameters(build_model(params.models[name])),
            "train_seconds": seconds,
            "windows_per_second": n_fit * len(histories) / seconds,
        },
        figures=[paths.loss_figure(name)],
    )
    return TrainResult(logged, best_repeat(params, paths, name, histories, windows.numpy()))


def train_repeats(
    name: str, params: Params, train_array: Path, folder: Path, events: RepeatEvents
) -> pd.DataFrame:
    """Train every repeat of `name` on `train.workers` processes, weights into `folder`; return
    the loss histories, repeat by repeat (the same bytes for any number of workers)."""
    seeds = params.repeat_seeds()
    workers = min(params.train.workers or usable_cores(), len(seeds))
    with worker_pool(workers) as pool:
        fitted = pool.map(
            fit_repeat,
            [
                (name, params, repeat, seed, train_array, folder)
                for repeat, seed in enumerate(seeds)
            ],
            describe=lambda index: f"{name}, repeat {index} (seed {seeds[index]})",
            on_event=events.on_event,
        )
    return pd.concat(
        [history_frame(repeat.repeat, repeat.seed, repeat.history) for repeat in fitted],
        ignore_index=True,
    )


def best_repeat(
    params: Params, paths: ProjectPaths, name: str, histories: pd.DataFrame, windows: np.ndarray
) -> BestRepeat:
    """The repeat whose saved weights have the lowest validation loss, as the model `name`
    forecasting in the series' units; two training windows are its input example."""
    best = best_validation_repeat(histories)
    seed = params.repeat_seeds()[best]
    settings = params.models[name]
    scaler = MinMaxScaling.from_json(paths.scaler_json)
    return BestRepeat(
        files=ForecasterFiles(weights=paths.model_weights(name, best), scaler=paths.scaler_json),
        spec={
            "name": name,
            "arch": settings.arch,
            "hidden_size": settings.hidden_size,
            "num_layers": settings.num_layers,
            "window": params.data.window,
        },
        input_example=scaler.inverse_transform(windows[:2].astype(np.float64)),
        tags={
            "repeat": str(best),
            "seed": str(seed),
            "chosen_by": "lowest final-epoch validation loss",
        },
    )
