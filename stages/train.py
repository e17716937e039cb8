"""Stage `train@<model>`: fit one forecaster `train.repeats` times on the scaled training windows.

The entry trains at the settings its tune stage chose (tuning/<model>.json: its listed ones when
it does not tune). Repeat i uses seed `train.seed + i` for its initial weights and its batch
order, so repeat i of every model of one batch size sees the same batches. Writes
models/<model>/repeat_<i>.pt (state_dicts), reports/plots/losses/<model>.csv (train and
validation loss per repeat and epoch) and reports/figures/loss_<model>.png; logs one MLflow run
per repeat under the stage's run and, as the model `<model>` forecasting in the series' units,
the repeat whose saved (final-epoch) weights have the lowest validation loss. Repeats train side
by side on `train.workers` processes (lstm_vs_rnn.workers), with the same bytes for any number;
a terminal shows one live progress line, a log one line per repeat.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/train.py lstm`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.files import atomic_directory, write_csv
from lstm_vs_rnn.modeling.checkpoints import ForecasterFiles
from lstm_vs_rnn.modeling.chosen_settings import load_tuning_result, settings_of
from lstm_vs_rnn.modeling.networks import build_model, count_parameters
from lstm_vs_rnn.modeling.repeats import (
    FittedRepeat,
    RepeatEpoch,
    RepeatStarted,
    fit_repeat,
    training_windows,
)
from lstm_vs_rnn.modeling.training import best_validation_repeat, history_frame
from lstm_vs_rnn.params import Params, load_params, validation_windows
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.progress import StageProgress
from lstm_vs_rnn.reporting.figures import loss_figure, save_figure
from lstm_vs_rnn.tracking.identity import file_sha256
from lstm_vs_rnn.tracking.registry import register_forecaster
from lstm_vs_rnn.tracking.runs import StageRun, stage_run
from lstm_vs_rnn.tracking.tags import MODEL_HASH_TAG
from lstm_vs_rnn.workers import failed_job, usable_cores, worker_pool


def parse_model_name() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    return parser.parse_args().model


class RepeatRuns:
    """The parent's side of repeats training on workers: each repeat's MLflow run, opened when
    it starts, fed its losses per epoch and ended in its state, and the stage's progress line."""

    def __init__(self, run: StageRun, name: str, progress: StageProgress) -> None:
        self.run = run
        self.name = name
        self.progress = progress
        self.open: dict[int, StageRun] = {}

    def on_event(self, event: object) -> None:
        if isinstance(event, RepeatStarted):
            self.open[event.repeat] = self.run.start_repeat_run(self.name, event.repeat, event.seed)
        elif isinstance(event, RepeatEpoch):
            losses = event.losses
            self.open[event.repeat].log_metrics(
                {"train_loss": losses.train_loss, "val_loss": losses.val_loss}, step=losses.epoch
            )
            self.progress.epoch_done(event.repeat, losses.epoch)
        elif isinstance(event, FittedRepeat):
            self.finish(event)

    def finish(self, fitted: FittedRepeat) -> None:
        history = fitted.history
        repeat_run = self.open.pop(fitted.repeat)
        repeat_run.set_tags({MODEL_HASH_TAG: file_sha256(fitted.weights)})
        repeat_run.log_metrics(
            {
                "final_train_loss": history[-1].train_loss,
                "final_val_loss": history[-1].val_loss,
                "best_val_loss": min(epoch.val_loss for epoch in history),
            }
        )
        self.run.end_repeat_run(repeat_run, "FINISHED")
        self.progress.job_done(
            fitted.repeat,
            f"repeat {fitted.repeat}, seed {fitted.seed}: val loss {history[-1].val_loss:.4g}",
        )

    def end_unfinished(self, error: BaseException) -> None:
        """End the runs still open after `error`: FAILED for the repeat that failed (or whose
        worker died), KILLED for those stopped because of it or by an interrupt."""
        failed = failed_job(error)
        for repeat, repeat_run in sorted(self.open.items()):
            self.run.end_repeat_run(repeat_run, "FAILED" if repeat == failed else "KILLED")
        self.open.clear()


def train_repeats(
    run: StageRun, name: str, params: Params, folder: Path, progress: StageProgress
) -> pd.DataFrame:
    """Train every repeat of `name` on `train.workers` processes, weights into `folder`; return
    the loss histories, repeat by repeat (the same bytes for any number of workers)."""
    seeds = params.repeat_seeds()
    workers = min(params.train.workers or usable_cores(), len(seeds))
    runs = RepeatRuns(run, name, progress)
    try:
        with worker_pool(workers) as pool:
            fitted = pool.map(
                fit_repeat,
                [(name, params, repeat, seed, folder) for repeat, seed in enumerate(seeds)],
                describe=lambda index: f"{name}, repeat {index} (seed {seeds[index]})",
                on_event=runs.on_event,
            )
    except BaseException as error:
        runs.end_unfinished(error)
        raise
    finally:
        progress.close()
    return pd.concat(
        [history_frame(repeat.repeat, repeat.seed, repeat.history) for repeat in fitted],
        ignore_index=True,
    )


def log_best_repeat(
    run: StageRun, name: str, params: Params, histories: pd.DataFrame, windows: torch.Tensor
) -> None:
    """Log the repeat whose saved weights have the lowest validation loss as the model `name`."""
    best = best_validation_repeat(histories)
    seed = params.repeat_seeds()[best]
    settings = params.models[name]
    scaler = MinMaxScaling.from_json(PATHS.scaler_json)
    model_id = run.log_forecaster(
        name,
        ForecasterFiles(weights=PATHS.model_weights(name, best), scaler=PATHS.scaler_json),
        spec={
            "name": name,
            "arch": settings.arch,
            "hidden_size": settings.hidden_size,
            "num_layers": settings.num_layers,
            "window": params.data.window,
        },
        input_example=scaler.inverse_transform(windows[:2].numpy().astype(np.float64)),
        tags={
            "repeat": str(best),
            "seed": str(seed),
            "chosen_by": "lowest final-epoch validation loss",
        },
    )
    run.set_tags({"logged_model.repeat": str(best), "logged_model.seed": str(seed)})
    register_forecaster(run, name, model_id, PATHS.model_weights(name, best))


def at_chosen_settings(params: Params, name: str) -> tuple[Params, dict[str, Any]]:
    """`params` with entry `name`'s model and training settings as its tune stage chose, and
    those chosen settings."""
    chosen = load_tuning_result(params, name, PATHS.tuning_result(name))["chosen"]
    model, train = settings_of(params.models[name], params.train, chosen)
    update = {"models": {**params.models, name: model}, "train": train}
    return params.model_copy(update=update), chosen


def main() -> None:
    name = parse_model_name()
    params = load_params(PATHS.params)
    if name not in params.models:
        raise UserError(
            f"params.yaml: no model '{name}' under models (configured: {', '.join(params.models)})"
        )
    configured = params
    params, chosen = at_chosen_settings(configured, name)
    windows, _ = training_windows(params.data.window)
    prefixes = ("data.window", "train.", f"models.{name}.")
    with stage_run(f"train@{name}", configured, param_prefixes=prefixes) as run:
        run.log_params({f"chosen.{key}": value for key, value in chosen.items()})
        started = time.monotonic()
        progress = StageProgress(f"train@{name}", params.train.repeats, params.train.epochs)
        with atomic_directory(PATHS.model_dir(name)) as folder:
            histories = train_repeats(run, name, params, folder, progress)
        seconds = time.monotonic() - started
        write_csv(PATHS.loss_history(name), histories)
        save_figure(loss_figure({name: histories}), PATHS.loss_figure(name))
        final = histories.groupby("repeat").last()
        n_fit = len(windows) - validation_windows(len(windows), params.train.val_fraction)
        run.log_metrics(
            {
                "final_train_loss_median": float(final["train_loss"].median()),
                "best_val_loss_median": float(
                    histories.groupby("repeat")["val_loss"].min().median()
                ),
                "n_parameters": count_parameters(build_model(params.models[name])),
                "train_seconds": seconds,
                "windows_per_second": n_fit * len(histories) / seconds,
            }
        )
        run.log_figure(PATHS.loss_figure(name))
        log_best_repeat(run, name, params, histories, windows)


if __name__ == "__main__":
    run_entry_point(main)
