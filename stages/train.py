"""Stage `train@<model>`: fit one forecaster on the scaled training windows.

Writes models/<model>/model.pt (a state_dict), reports/plots/losses/<model>.csv (train and
validation loss per epoch) and reports/figures/loss_<model>.png.
Run by `dvc repro`; directly: `PYTHONPATH=src python stages/train.py lstm`.
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
import argparse
import time

import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.checkpoints import save_weights
from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.files import read_array, write_csv
from lstm_vs_rnn.models import build_model, count_parameters
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.plots import loss_figure, save_figure
from lstm_vs_rnn.tracking import MODEL_HASH_TAG, file_sha256, stage_run
from lstm_vs_rnn.training import EpochLosses, configure_torch, train_model
from lstm_vs_rnn.windows import make_windows


def parse_model_name() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    return parser.parse_args().model


def main() -> None:
    name = parse_model_name()
    params = load_params(PATHS.params)
    if name not in params.models:
        raise UserError(
            f"params.yaml: no model '{name}' under models (configured: {', '.join(params.models)})"
        )
    series = torch.from_numpy(read_array(PATHS.train_array, "scale").astype(np.float32))
    windows, targets = make_windows(series, params.data.window)
    device = configure_torch(params.train)
    prefixes = ("data.window", "train.", f"models.{name}.")
    with stage_run(f"train@{name}", params, param_prefixes=prefixes) as run:
        model = build_model(name, params.models[name])
        started = time.monotonic()
        history = train_model(
            model,
            windows,
            targets,
            params.n_val_windows,
            params.train,
            device,
            on_epoch=lambda losses: run.log_metrics(
                {"train_loss": losses.train_loss, "val_loss": losses.val_loss}, step=losses.epoch
            ),
        )
        seconds = time.monotonic() - started
        model.cpu().eval()
        save_weights(model, PATHS.model_weights(name))
        frame = history_frame(history)
        write_csv(PATHS.loss_history(name), frame)
        save_figure(loss_figure({name: frame}), PATHS.figure(f"loss_{name}"))
        run.set_tags({MODEL_HASH_TAG: file_sha256(PATHS.model_weights(name))})
        n_fit = len(windows) - params.n_val_windows
        run.log_metrics(
            {
                "final_train_loss": history[-1].train_loss,
                "final_val_loss": history[-1].val_loss,
                "best_val_loss": min(epoch.val_loss for epoch in history),
                "n_parameters": count_parameters(model),
                "train_seconds": seconds,
                "windows_per_second": n_fit * len(history) / seconds,
            }
        )
        run.log_figure(PATHS.figure(f"loss_{name}"))
        run.log_torch_model(model, windows[:2].unsqueeze(-1).numpy().copy())


def history_frame(history: list[EpochLosses]) -> pd.DataFrame:
    return pd.DataFrame([vars(epoch) for epoch in history])


if __name__ == "__main__":
    run_entry_point(main)
