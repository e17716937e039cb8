"""The recurrent forecasters: one recurrent layer stack and a linear head on its last state."""

import torch
from torch import nn

from lstm_vs_rnn.params import MODEL_ARCHITECTURES, ModelParams


class RecurrentForecaster(nn.Module):
    """Predicts the next value of a series from a window of its previous values.

    `architecture` names the torch.nn recurrent layer (RNN with tanh, LSTM, ...); everything
    around it is shared, so the comparison isolates the recurrent cell.
    """

    def __init__(self, architecture: str, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        layer = getattr(nn, MODEL_ARCHITECTURES[architecture])
        self.recurrent = layer(
            input_size=1, hidden_size=hidden_size, num_layers=num_layers, batch_first=True
        )
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(batch, window, 1) -> (batch, 1)."""
        outputs, _ = self.recurrent(windows)
        return self.head(outputs[:, -1, :])


def build_model(settings: ModelParams, seed: int | None = None) -> RecurrentForecaster:
    """The untrained network; with `seed`, its initial weights are those of that repeat."""
    if seed is not None:
        torch.manual_seed(seed)
    model = RecurrentForecaster(settings.arch, settings.hidden_size, settings.num_layers)
    if settings.forget_bias is not None:
        set_forget_bias(model.recurrent, settings.forget_bias)
    return model


def set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Start every layer's forget gate at `value` (its two biases sum to it): with 1, the cell
    keeps most of its memory from the first step, so gradients from far back can arrive.

    Set after the random initialisation and drawing nothing, so the other weights are those of
    the same seed without it. PyTorch orders the gates input, forget, cell, output."""
    size = lstm.hidden_size
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{layer}")[size : 2 * size] = value
            getattr(lstm, f"bias_hh_l{layer}")[size : 2 * size] = 0.0


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
