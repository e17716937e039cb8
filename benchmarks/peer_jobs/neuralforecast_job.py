"""The reference article's job done with NeuralForecast (Nixtla): its `RNN` and `LSTM`.

Each model: one recurrent layer of `hidden_size`, a one-layer decoder, MSE, Adam at
`learning_rate`, `windows_batch_size` = the article's batch, `max_steps` = the article's
optimizer steps, min-max scaling of each window (NeuralForecast scales windows, not the
series); `recurrent=False` (one-step forecasts from the encoder's last state, as the article's).
`cross_validation(refit=False)` fits once on the training part and forecasts each of the test
points from its own previous window. Runs in the peers' environment (benchmarks/peers.py).

Usage: python neuralforecast_job.py JOB_JSON; prints one JSON line, the test RMSE per model.
"""

import json
import logging
import math
import sys

import pandas as pd
import torch
from neuralforecast import NeuralForecast
from neuralforecast.losses.pytorch import MSE
from neuralforecast.models import LSTM, RNN
from series import article_series, rmse


def main() -> None:
    job = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)
    values, split = article_series(job)
    frame = pd.DataFrame({"unique_id": "sine", "ds": range(len(values)), "y": values})
    windows = split - job["window"]
    steps = job["epochs"] * math.ceil(windows / job["batch_size"])
    models = [
        model(
            h=1,
            input_size=job["window"],
            encoder_n_layers=1,
            encoder_hidden_size=job["hidden_size"],
            decoder_layers=1,
            loss=MSE(),
            learning_rate=job["learning_rate"],
            max_steps=steps,
            windows_batch_size=job["batch_size"],
            scaler_type="minmax",
            random_seed=job["seed"],
            alias=name,
            recurrent=False,
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
        )
        for name, model in (("rnn", RNN), ("lstm", LSTM))
    ]
    forecast = NeuralForecast(models=models, freq=1).cross_validation(
        frame, n_windows=len(values) - split, step_size=1, refit=False
    )
    actual = values[split:]
    scores = {name: rmse(forecast[name].to_numpy(), actual) for name in ("rnn", "lstm")}
    print(json.dumps({"test_rmse": scores, "optimizer_steps": steps}))


if __name__ == "__main__":
    main()
