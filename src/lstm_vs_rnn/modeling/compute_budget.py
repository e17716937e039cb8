"""What one training costs, counted by hand: optimizer steps and recurrent multiply-adds.

A tuning budget equal in trials is not equal in compute: an LSTM layer does four times the
recurrent work of a tanh RNN layer of the same width, a GRU three times, and a smaller batch
takes more optimizer steps. Both counts depend only on the settings and the data's size, so
they are deterministic and may go into DVC outputs (CPU seconds, which are not, go to MLflow
only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lstm_vs_rnn.params import ModelParams, TrainParams

# Gate blocks per recurrent layer, each an (input + hidden) x hidden matrix product per time step:
# tanh RNN 1; GRU 3 (reset, update, candidate); LSTM 4 (input, forget, cell, output).
GATE_BLOCKS = {"rnn": 1, "gru": 3, "lstm": 4}
# The networks read one value per time step (`networks.RecurrentForecaster`).
INPUT_SIZE = 1


@dataclass(frozen=True)
class TrainingCost:
    """The counted cost of one training (one seed of one configuration)."""

    optimizer_steps: int
    multiply_adds: int


def optimizer_steps(n_fit: int, batch_size: int, epochs: int) -> int:
    """Adam steps of `training.train_model`: ceil(n_fit / batch_size) mini-batches per epoch
    (the last one may be short), times `epochs`. `n_fit`: training windows (validation tail
    excluded)."""
    return epochs * math.ceil(n_fit / batch_size)


def recurrent_multiply_adds(
    arch: str, hidden_size: int, num_layers: int, window: int, n_fit: int, epochs: int
) -> int:
    """Multiply-adds of the recurrent layers' forward passes over the training windows.

    Per time step, layer l does g * h * (i_l + h) multiply-adds, with h = `hidden_size`,
    i_0 = 1 (one value per step), i_l = h above the first layer, and g = `GATE_BLOCKS[arch]`
    (RNN 1, GRU 3, LSTM 4). So the total is

        g * h * [(1 + h) + (num_layers - 1) * 2h] * window * n_fit * epochs.

    Counted: the forward pass of every training window (`n_fit`, each `window` steps) in every
    epoch. Not counted: biases, the element-wise gate products, the linear head, the backward
    pass (about twice the forward) and the validation passes; the count compares architectures
    and budgets, it is not a FLOP meter (Collins et al. 2017 and Greff et al. 2017 count
    parameters the same way).
    """
    gates = GATE_BLOCKS[arch]
    per_step = sum(
        gates * hidden_size * ((INPUT_SIZE if layer == 0 else hidden_size) + hidden_size)
        for layer in range(num_layers)
    )
    return per_step * window * n_fit * epochs


def training_cost(model: ModelParams, train: TrainParams, window: int, n_fit: int) -> TrainingCost:
    """Steps and multiply-adds of one training of `model` at `train` on `n_fit` windows of
    `window` steps."""
    return TrainingCost(
        optimizer_steps(n_fit, train.batch_size, train.epochs),
        recurrent_multiply_adds(
            model.arch, model.hidden_size, model.num_layers, window, n_fit, train.epochs
        ),
    )
