"""Prediction with a trained forecaster: every window through the network, in batches.

Ships with the logged MLflow model (checkpoints.FORECASTER_MODULES), so it imports only torch:
the training loop, with its progress display, stays out of the shipped code.
"""

import torch
from torch import nn

# Rows per forward pass when only predicting; results do not depend on it, memory does: it keeps
# evaluate at 10^6 points with a window of 100 under 1 GiB (0.81 GB, against 1.2 GB at 8192, no
# slower). Measure before lowering it: below 2048 glibc heap fragmentation raised the peak.
PREDICTION_BATCH_SIZE = 2048


def predict(model: nn.Module, windows: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Predictions for every window, (n, window) -> (n,), in batches, on the CPU.

    Puts `model` in eval mode and runs without autograd; units are the model's (scaled).
    """
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(windows), PREDICTION_BATCH_SIZE):
            batch = windows[start : start + PREDICTION_BATCH_SIZE].unsqueeze(-1).to(device)
            parts.append(model(batch).squeeze(-1).cpu())
    return torch.cat(parts)
