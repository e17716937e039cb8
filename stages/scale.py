"""Stage `scale`: chronological split and min-max scaling fitted on the training part only.

Writes data/processed/{train,test}.npy and the scaler's parameters as JSON (no pickle).
"""

import lstm_vs_rnn.pin_kernels  # noqa: F401  (first: torch reads the pins as it loads)

# isort: split
from lstm_vs_rnn.cli import run_entry_point
from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import check_learnable, read_series
from lstm_vs_rnn.files import write_array, write_text
from lstm_vs_rnn.params import load_params, split_point
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.reporting.figures import save_figure, scaling_figure
from lstm_vs_rnn.tracking.runs import stage_run


def main() -> None:
    params = load_params(PATHS.params)
    series = read_series(PATHS.series_csv)["y"].to_numpy()
    check_learnable(series, params, "data/raw/series.csv", "y")
    with stage_run("scale", params, param_prefixes=("data.train_fraction",)) as run:
        split = split_point(len(series), params.data.train_fraction)
        train, test = series[:split], series[split:]
        scaler = MinMaxScaling.fit(train)
        scaled_train, scaled_test = scaler.transform(train), scaler.transform(test)
        write_array(PATHS.train_array, scaled_train)
        write_array(PATHS.test_array, scaled_test)
        write_text(PATHS.scaler_json, scaler.to_json())
        save_figure(scaling_figure(train, test, scaled_train, scaled_test), PATHS.figure("scaling"))
        run.log_metrics(
            {
                "data_min": scaler.data_min,
                "data_max": scaler.data_max,
                "n_train": len(train),
                "n_test": len(test),
                "test_scaled_min": float(scaled_test.min()),
                "test_scaled_max": float(scaled_test.max()),
            }
        )
        run.log_figure(PATHS.figure("scaling"))
        run.log_artifact(PATHS.scaler_json, "scaler")


if __name__ == "__main__":
    run_entry_point(main)
