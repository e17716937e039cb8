"""The settings an entry trains at: its listed ones, with what its tuning chose in place.

The tune stage writes them to tuning/<entry>.json (`tuning_result`); training and evaluation
read them back (`load_tuning_result`). Kept apart from the tuning study (`modeling.tuning`) so
that a stage which only needs the settings, or an entry that does not tune, loads neither
Optuna nor torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import ModelParams, Params, TrainParams

# Hyperparameters a search space may name: the section they belong to, and whether null is a
# value (grad_clip_norm: no clipping; forget_bias: PyTorch's initialisation).
TUNABLE: dict[str, tuple[str, bool]] = {
    "learning_rate": ("train", False),
    "batch_size": ("train", False),
    "epochs": ("train", False),
    "grad_clip_norm": ("train", True),
    "hidden_size": ("models", False),
    "num_layers": ("models", False),
    "forget_bias": ("models", True),
}
LSTM_ONLY = frozenset({"forget_bias"})


def settings_of(
    model: ModelParams, train: TrainParams, chosen: dict[str, Any]
) -> tuple[ModelParams, TrainParams]:
    """The entry's model and training settings with the tuned values of `chosen` in place."""
    model_keys = {key: value for key, value in chosen.items() if TUNABLE[key][0] == "models"}
    train_keys = {key: value for key, value in chosen.items() if TUNABLE[key][0] == "train"}
    return model.model_copy(update=model_keys), train.model_copy(update=train_keys)


def tuning_result(
    params: Params, name: str, halving: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The content of tuning/<name>.json: the chosen settings, and for a tuned entry the
    successive-halving result (`modeling.halving.halving_result`: rungs, winner, margin,
    same-winner fraction, budget, every configuration as `trials`).

    Without tuning (`models.<name>.tune: false` or `tune.n_trials: 0`, `halving` None) the
    chosen settings are the listed ones and there are no trials."""
    best = halving["trials"][halving["best_trial"]]["params"] if halving else {}
    model, train = settings_of(params.models[name], params.train, best)
    chosen = {
        key: getattr(model if TUNABLE[key][0] == "models" else train, key)
        for key in sorted(TUNABLE)
        if not (key in LSTM_ONLY and model.arch != "lstm")
    }
    untuned = {"seeds": [], "n_trials": 0, "best_trial": None, "best_value": None, "trials": []}
    return {
        "entry": name,
        "arch": model.arch,
        "tuned": halving is not None,
        "objective": "mean over seeds of the final-epoch validation MSE (scaled data)",
        **(halving or untuned),
        "chosen": chosen,
    }


def read_tuning_result(path: Path) -> dict[str, Any]:
    """A tuning result file written by the tune stage (see `tuning_result`)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run `dvc repro` (its tune stage)") from None


def load_tuning_result(params: Params, name: str, path: Path) -> dict[str, Any]:
    """Entry `name`'s tuning result: read from `path` (tuning/<name>.json) when the entry tunes;
    for an entry that does not, the result its tune stage writes, its listed settings, made here
    so that training and evaluating it never wait on a file that says nothing more.

    Raises:
        UserError: the entry tunes and `path` does not exist.
    """
    if name not in params.tuned_entries():
        return tuning_result(params, name)
    return read_tuning_result(path)


def at_chosen_settings(
    params: Params, name: str, tuning_path: Path
) -> tuple[Params, dict[str, Any]]:
    """`params` with entry `name`'s model and training settings as its tune stage chose them,
    and its tuning result (see `tuning_result`): the one place that resolves the settings an
    entry trains and is evaluated at.

    Raises UserError when the entry tunes and `tuning_path` (tuning/<name>.json) is missing.
    """
    result = load_tuning_result(params, name, tuning_path)
    model, train = settings_of(params.models[name], params.train, result["chosen"])
    update = {"models": {**params.models, name: model}, "train": train}
    return params.model_copy(update=update), result
