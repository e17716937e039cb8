"""The reference article's job done with darts (Unit8): `BlockRNNModel` or `RNNModel`.

Each model: `model="RNN"` then `"LSTM"`, one layer of `hidden_size`, MSE (darts' default),
Adam at `learning_rate`, the article's batch and epochs, the series min-max scaled on its
training part (darts' `Scaler`). `BlockRNNModel` maps a window of `window` values to the next
one, as the article's models; `RNNModel` is darts' recurrent model proper, trained on
sequences of `window` + 1 values. `historical_forecasts(retrain=False)` forecasts each test
point from its own previous values. Runs in the peers' environment (benchmarks/peers.py).

Usage: python darts_job.py JOB_JSON block|rnn; prints one JSON line, the test RMSE per model.
"""

import json
import logging
import sys

import torch
from darts import TimeSeries
from darts.dataprocessing.transformers import Scaler
from darts.models import BlockRNNModel, RNNModel
from series import article_series, rmse

TRAINER = {
    "accelerator": "cpu",
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "logger": False,
}


def build(flavor: str, cell: str, job: dict) -> BlockRNNModel | RNNModel:
    shared = {
        "model": cell,
        "input_chunk_length": job["window"],
        "hidden_dim": job["hidden_size"],
        "n_rnn_layers": 1,
        "batch_size": job["batch_size"],
        "n_epochs": job["epochs"],
        "optimizer_kwargs": {"lr": job["learning_rate"]},
        "random_state": job["seed"],
        "pl_trainer_kwargs": TRAINER,
    }
    if flavor == "block":
        return BlockRNNModel(output_chunk_length=1, **shared)
    return RNNModel(training_length=job["window"] + 1, **shared)


def main() -> None:
    job, flavor = json.loads(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("darts").setLevel(logging.ERROR)
    values, split = article_series(job)
    series = TimeSeries.from_values(values.astype("float32"))
    scaler = Scaler().fit(series[:split])
    scaled = scaler.transform(series)
    scores = {}
    for name, cell in (("rnn", "RNN"), ("lstm", "LSTM")):
        model = build(flavor, cell, job)
        model.fit(scaled[:split], verbose=False)
        forecast = model.historical_forecasts(
            scaled, start=split, forecast_horizon=1, retrain=False, verbose=False
        )
        predicted = scaler.inverse_transform(forecast).values().ravel()
        scores[name] = rmse(predicted, values[split:])
    print(json.dumps({"test_rmse": scores}))


if __name__ == "__main__":
    main()
