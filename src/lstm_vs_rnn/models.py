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
    return RecurrentForecaster(settings.arch, settings.hidden_size, settings.num_layers)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
