"""Stage `train@<model>`: fit one forecaster `train.repeats` times on the scaled training windows.

The entry trains at the settings its tune stage chose (tuning/<model>.json: its listed ones when
it does not tune). Repeat i uses seed `train.seed + i` for its initial weights and its batch
order, so repeat i of every model of one batch size sees the same batches. Writes
models/<model>/repeat_<i>.pt (state_dicts), reports/plots/losses/<model>.csv (train and
validation loss per repeat and epoch) and reports/figures/loss_<model>.png; logs one MLflow run
per repeat under the stage's run and, as the model `<model>` forecasting in the series' units,
the repeat whose saved (final-epoch) weights have the lowest validation loss.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/train.py lstm`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.files import atomic_directory, read_array, write_csv
from lstm_vs_rnn.modeling.checkpoints import ForecasterFiles, save_weights
from lstm_vs_rnn.modeling.networks import build_model, count_parameters
from lstm_vs_rnn.modeling.training import (
    TrainingDiverged,
    best_validation_repeat,
    configure_torch,
    history_frame,
    train_model,
)
from lstm_vs_rnn.modeling.tuning import read_chosen, settings_of
from lstm_vs_rnn.params import Params, load_params, validation_windows
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.reporting.figures import loss_figure, save_figure
from lstm_vs_rnn.tracking.identity import file_sha256
from lstm_vs_rnn.tracking.runs import StageRun, stage_run
from lstm_vs_rnn.tracking.tags import MODEL_HASH_TAG


def parse_model_name() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    return parser.parse_args().model


def train_repeat(
    run: StageRun,
    name: str,
    params: Params,
    repeat: int,
    seed: int,
    windows: torch.Tensor,
    targets: torch.Tensor,
    device: torch.device,
    folder: Path,
) -> pd.DataFrame:
    """Train one repeat, save its weights into `folder` and log it; return its loss history."""
    n_val = validation_windows(len(windows), params.train.val_fraction)
    with run.repeat_run(name, repeat, seed) as repeat_run:
        model = build_model(params.models[name], seed)
        try:
            history = train_model(
                model,
                windows,
                targets,
                n_val,
                params.train,
                device,
                seed,
                on_epoch=lambda losses: repeat_run.log_metrics(
                    {"train_loss": losses.train_loss, "val_loss": losses.val_loss},
                    step=losses.epoch,
                ),
            )
        except TrainingDiverged as error:
            raise TrainingDiverged(f"{name}, repeat {repeat} (seed {seed}): {error}") from None
        weights = folder / PATHS.model_weights(name, repeat).name
        save_weights(model.cpu().eval(), weights)
        repeat_run.set_tags({MODEL_HASH_TAG: file_sha256(weights)})
        repeat_run.log_metrics(
            {
                "final_train_loss": history[-1].train_loss,
                "final_val_loss": history[-1].val_loss,
                "best_val_loss": min(epoch.val_loss for epoch in history),
            }
        )
    return history_frame(repeat, seed, history)


def log_best_repeat(
    run: StageRun, name: str, params: Params, histories: pd.DataFrame, windows: torch.Tensor
) -> None:
    """Log the repeat whose saved weights have the lowest validation loss as the model `name`."""
    best = best_validation_repeat(histories)
    seed = params.repeat_seeds()[best]
    settings = params.models[name]
    scaler = MinMaxScaling.from_json(PATHS.scaler_json)
    run.log_forecaster(
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


def at_chosen_settings(params: Params, name: str) -> Params:
    """`params` with entry `name`'s model and training settings as its tune stage chose."""
    model, train = settings_of(
        params.models[name], params.train, read_chosen(PATHS.tuning_result(name))
    )
    return params.model_copy(update={"models": {**params.models, name: model}, "train": train})


def main() -> None:
    name = parse_model_name()
    params = load_params(PATHS.params)
    if name not in params.models:
        raise UserError(
            f"params.yaml: no model '{name}' under models (configured: {', '.join(params.models)})"
        )
    configured, params = params, at_chosen_settings(params, name)
    series = torch.from_numpy(read_array(PATHS.train_array, "scale").astype(np.float32))
    windows, targets = make_windows(series, params.data.window)
    device = configure_torch(params.train)
    prefixes = ("data.window", "train.", f"models.{name}.")
    with stage_run(f"train@{name}", configured, param_prefixes=prefixes) as run:
        run.log_params(
            {
                f"chosen.{key}": value
                for key, value in read_chosen(PATHS.tuning_result(name)).items()
            }
        )
        started = time.monotonic()
        with atomic_directory(PATHS.model_dir(name)) as folder:
            histories = pd.concat(
                [
                    train_repeat(run, name, params, repeat, seed, windows, targets, device, folder)
                    for repeat, seed in enumerate(params.repeat_seeds())
                ],
                ignore_index=True,
            )
        seconds = time.monotonic() - started
        write_csv(PATHS.loss_history(name), histories)
        save_figure(loss_figure({name: histories}), PATHS.figure(f"loss_{name}"))
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
        run.log_figure(PATHS.figure(f"loss_{name}"))
        log_best_repeat(run, name, params, histories, windows)


if __name__ == "__main__":
    run_entry_point(main)
