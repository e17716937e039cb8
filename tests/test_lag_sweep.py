"""The lag sweep's experiments and how their metrics become the table behind the figure."""

import math

import pandas as pd
import pytest

from lstm_vs_rnn.commands.lag_sweep import (
    SWEEP_LAGS,
    latest_sweep,
    pairs_table,
    sensitivity_ratio,
    sweep_overrides,
    sweep_table,
)
from lstm_vs_rnn.errors import UserError


def experiment_row(lag: int, rnn: float, lstm: float) -> dict[str, object]:
    """One row as `dvc.api.exp_show` returns it: params and metrics flattened by dots."""
    row: dict[str, object] = {
        "Experiment": f"lag-{lag}",
        "data.lag": lag,
        "models.rnn.arch": "rnn",
        "models.rnn.hidden_size": 50,
        "models.lstm.arch": "lstm",
        "models.lstm.forget_bias": 1.0,
        "noise_floor.test_rmse": 1.0,
        "persistence.test_rmse": 3.3,
        "ar.test_rmse": 1.01,
    }
    for model, mean in (("rnn", rnn), ("lstm", lstm)):
        row |= {
            f"{model}.test_rmse.mean": mean,
            f"{model}.test_rmse.ci95_low": mean - 0.1,
            f"{model}.test_rmse.ci95_high": mean + 0.1,
        }
    return row


def test_each_experiment_sets_the_lagged_source_its_lag_and_a_window_just_past_it() -> None:
    overrides = sweep_overrides(25)
    flags, pairs = set(overrides[::2]), set(overrides[1::2])
    assert flags == {"-S"}
    assert {"data.source=lagged", "data.lag=25", "data.window=26"} <= pairs
    assert "~models.gru" in pairs  # entries left out of the sweep are removed


def test_the_table_has_every_model_and_baseline_at_every_lag() -> None:
    rows = [experiment_row(lag, 1.0 + lag / 100, 1.0 + lag / 200) for lag in SWEEP_LAGS]
    absent = {"models.gru.arch": "None", "gru.test_rmse.mean": "None"}  # as exp_show gives
    table = sweep_table(
        latest_sweep([{"Experiment": "workspace"}, *[r | absent for r in rows]]), {}
    )
    assert list(table["lag"].unique()) == list(SWEEP_LAGS)
    assert set(table["forecaster"]) == {"rnn", "lstm", "noise_floor", "persistence", "ar"}
    lstm_25 = table[(table["lag"] == 25) & (table["forecaster"] == "lstm")].iloc[0]
    assert (lstm_25["mean"], lstm_25["ci95_low"], lstm_25["ci95_high"]) == pytest.approx(
        (1.125, 1.025, 1.225)
    )
    floor = table[table["forecaster"] == "noise_floor"]
    assert (floor["ci95_low"] == floor["mean"]).all()


def test_the_newest_experiment_of_a_name_wins() -> None:
    rows = [experiment_row(lag, 1.5, 1.2) for lag in SWEEP_LAGS]
    older = experiment_row(25, 9.0, 9.0)
    table = sweep_table(latest_sweep([*rows, older]), {})
    assert table[(table["lag"] == 25) & (table["forecaster"] == "rnn")]["mean"].item() == 1.5


def test_a_missing_experiment_is_named() -> None:
    rows = [experiment_row(lag, 1.5, 1.2) for lag in SWEEP_LAGS if lag != 50]
    with pytest.raises(UserError, match="no finished experiment lag-50: run 'make lag-sweep'"):
        latest_sweep(rows)


def test_the_sensitivity_ratio_reads_the_lag_that_matters_over_the_newest() -> None:
    frame = pd.DataFrame(
        {
            "model": ["lstm"] * 4 + ["rnn"] * 4,
            "state": "trained",
            "lag": [0, 1, 2, 3] * 2,
            "median": [0.2, 0.1, 0.5, 0.01, 0.4, 0.1, 0.001, 0.0001],
            "p10": 0.0,
            "p90": 1.0,
        }
    )
    # lag 3: the value 3 steps before the forecast one is the input k = 2
    assert sensitivity_ratio(frame, "lstm", "trained", 3) == pytest.approx(2.5)
    assert sensitivity_ratio(frame, "rnn", "trained", 3) == pytest.approx(0.0025)
    assert math.isnan(sensitivity_ratio(None, "rnn", "trained", 3))
    assert math.isnan(sensitivity_ratio(frame, "rnn", "init", 3))
    rows = [experiment_row(lag, 1.5, 1.2) for lag in SWEEP_LAGS]
    table = sweep_table(latest_sweep(rows), {5: frame})
    lstm_5 = table[(table["lag"] == 5) & (table["forecaster"] == "lstm")].iloc[0]
    assert math.isnan(lstm_5["grad_ratio_trained"])  # lag 5 needs k = 4, not in this frame


def test_the_pairs_table_holds_each_lags_paired_difference_and_its_verdict() -> None:
    rows = [experiment_row(lag, 1.0 + lag / 100, 1.0 + lag / 200) for lag in SWEEP_LAGS]
    rows[0] |= {
        "lstm_vs_rnn.rmse_diff.mean": -0.03,
        "lstm_vs_rnn.rmse_diff.hodges_lehmann": -0.02,
        "lstm_vs_rnn.rmse_diff.ci_low": -0.05,
        "lstm_vs_rnn.rmse_diff.ci_high": -0.01,
        "lstm_vs_rnn.rmse_diff.ci_level": 0.975,
        "lstm_vs_rnn.p": 0.0625,
        "lstm_vs_rnn.p_adjusted": 0.125,
        "lstm_vs_rnn.verdict": "primary: inconclusive: the test and the interval disagree",
    }
    rows[1] |= {"lstm_vs_rnn.rmse_diff.mean": -0.01, "lstm_vs_rnn.verdict": "lstm better"}
    table = pairs_table(latest_sweep(rows)).set_index("lag")
    assert list(table.index) == list(SWEEP_LAGS)
    assert set(table["pair"]) == {"lstm - rnn"}
    first = table.loc[SWEEP_LAGS[0]]
    assert (first["mean"], first["hodges_lehmann"], first["ci_low"], first["ci_high"]) == (
        -0.03,
        -0.02,
        -0.05,
        -0.01,
    )
    assert (first["ci_level"], first["p_adjusted"]) == (0.975, 0.125)
    assert first["verdict"] == "primary: inconclusive: the test and the interval disagree"
    older = table.loc[SWEEP_LAGS[1]]  # recorded before the verdict tiers: no verdict to trust
    assert older["mean"] == -0.01 and math.isnan(older["p_adjusted"]) and older["verdict"] == ""
