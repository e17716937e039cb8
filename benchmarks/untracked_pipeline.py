"""The whole pipeline's work in one process, without DVC or MLflow: the reference cost.

Same library functions, files and figures as the stages, in the same order (tune, then train at
the chosen settings), reading back
what the previous step wrote, as the stages do; only the tracking, the per-stage interpreters
and DVC's bookkeeping are missing. Usage: `python untracked_pipeline.py PARAMS_YAML OUT_DIR`
with PYTHONPATH pointing at the project's src.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import load_series, read_series, series_labels
from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.files import read_array, write_array, write_csv, write_json, write_text
from lstm_vs_rnn.modeling.checkpoints import save_weights
from lstm_vs_rnn.modeling.chosen_settings import load_tuning_result, settings_of, tuning_result
from lstm_vs_rnn.modeling.halving import halving_result
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.modeling.training import configure_torch, history_frame, train_model
from lstm_vs_rnn.modeling.tuning import (
    candidate_list,
    run_in_process,
    training_data,
    tuning_plan,
    tuning_seeds,
)
from lstm_vs_rnn.params import Params, load_params, split_point, validation_windows
from lstm_vs_rnn.paths import ProjectPaths
from lstm_vs_rnn.reporting.assessment import Assessment
from lstm_vs_rnn.reporting.figures import loss_figure, save_figure, scaling_figure, series_figure


def generate(params: Params, paths: ProjectPaths) -> None:
    frame = load_series(params, paths.root)
    write_csv(paths.series_csv, frame)
    split = split_point(len(frame), params.data.train_fraction)
    save_figure(series_figure(frame, split, series_labels(params.data)), paths.figure("series"))


def scale(params: Params, paths: ProjectPaths) -> None:
    series = read_series(paths.series_csv)["y"].to_numpy()
    split = split_point(len(series), params.data.train_fraction)
    train, test = series[:split], series[split:]
    scaler = MinMaxScaling.fit(train)
    scaled_train, scaled_test = scaler.transform(train), scaler.transform(test)
    write_array(paths.train_array, scaled_train)
    write_array(paths.test_array, scaled_test)
    write_text(paths.scaler_json, scaler.to_json())
    save_figure(scaling_figure(train, test, scaled_train, scaled_test), paths.figure("scaling"))


def tune(name: str, params: Params, paths: ProjectPaths) -> None:
    """tune@<name>'s work: the same candidates, rungs and scores, run here one after the other
    in an in-memory study (the stage's storage and worker processes are coordination, left
    out)."""
    halving = None
    if name in params.tuned_entries():
        data = training_data(params, paths.train_array)
        halving = halving_result(
            candidate_list(params, name),
            tuning_plan(params.tune),
            tuning_seeds(params.tune),
            run_in_process(params, name, data),
        )
    write_json(paths.tuning_result(name), tuning_result(params, name, halving))


def train(name: str, params: Params, paths: ProjectPaths, device: torch.device) -> None:
    model, settings = settings_of(
        params.models[name],
        params.train,
        load_tuning_result(params, name, paths.tuning_result(name))["chosen"],
    )
    params = params.model_copy(update={"models": {**params.models, name: model}, "train": settings})
    series = torch.from_numpy(read_array(paths.train_array, "scale").astype(np.float32))
    windows, targets = make_windows(series, params.data.window)
    n_val = validation_windows(len(windows), params.train.val_fraction)
    histories = []
    for repeat, seed in enumerate(params.repeat_seeds()):
        model = build_model(params.models[name], seed)
        history = train_model(model, windows, targets, n_val, params.train, device, seed)
        save_weights(model.cpu().eval(), paths.model_weights(name, repeat))
        histories.append(history_frame(repeat, seed, history))
    frame = pd.concat(histories, ignore_index=True)
    write_csv(paths.loss_history(name), frame)
    save_figure(loss_figure({name: frame}), paths.figure(f"loss_{name}"))


def evaluate(params: Params, paths: ProjectPaths, device: torch.device) -> None:
    assessment = Assessment(params, paths, device)
    assessment.write_reports(assessment.metrics())


def main(params_file: Path, out: Path) -> None:
    params = load_params(params_file)
    paths = ProjectPaths(out)
    generate(params, paths)
    scale(params, paths)
    for name in params.models:
        tune(name, params, paths)
    device = configure_torch(params.train)
    for name in params.models:
        train(name, params, paths, device)
    evaluate(params, paths, device)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
