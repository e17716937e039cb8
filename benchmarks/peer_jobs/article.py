"""The reference article's job as one plain PyTorch script: the cost a user pays without us.

Noisy sine (NumPy's legacy seed 42), min-max scaled on the training part, windows of `window`
values; trains the article's RNN and then its LSTM (one layer, Adam, MSE, shuffled batches,
no validation, no tracking) and predicts every test point from its previous window. Imports
only NumPy and torch, so it runs in the project's environment and in the peers' one.

Usage: python article.py JOB_JSON (see benchmarks/peers.py); prints one JSON line: the test
RMSE of each model in the series' units.
"""

import json
import sys

import numpy as np
import torch
from series import article_series, rmse
from torch import nn


class Forecaster(nn.Module):
    """One recurrent layer and a linear head on its last hidden state: (batch, window, 1) ->
    (batch, 1)."""

    def __init__(self, cell: type[nn.RNNBase], hidden: int) -> None:
        super().__init__()
        self.rnn = cell(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def windows(values: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = np.stack([values[i : i + window] for i in range(len(values) - window)])
    return (
        torch.tensor(inputs, dtype=torch.float32).unsqueeze(-1),
        torch.tensor(values[window:], dtype=torch.float32).unsqueeze(-1),
    )


def main() -> None:
    job = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    y, split = article_series(job)
    low, high = y[:split].min(), y[:split].max()
    scaled = (y - low) / (high - low)
    x_train, y_train = windows(scaled[:split], job["window"])
    x_test, _ = windows(scaled[split - job["window"] :], job["window"])
    scores = {}
    for name, cell in (("rnn", nn.RNN), ("lstm", nn.LSTM)):
        torch.manual_seed(job["seed"])
        model = Forecaster(cell, job["hidden_size"])
        optimizer = torch.optim.Adam(model.parameters(), lr=job["learning_rate"])
        loss_fn = nn.MSELoss()
        for _ in range(job["epochs"]):
            for rows in torch.randperm(len(x_train)).split(job["batch_size"]):
                optimizer.zero_grad()
                loss_fn(model(x_train[rows]), y_train[rows]).backward()
                optimizer.step()
        with torch.no_grad():
            predicted = model(x_test).squeeze(-1).numpy() * (high - low) + low
        scores[name] = rmse(predicted, y[split:])
    print(json.dumps({"test_rmse": scores}))


if __name__ == "__main__":
    main()
