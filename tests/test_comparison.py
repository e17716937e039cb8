"""The statistics over repeats and the claims report, against SciPy directly and by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lstm_vs_rnn.evaluation.gradients import GradientFlow, LagRatios
from lstm_vs_rnn.evaluation.statistics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    NOT_AVAILABLE,
    Interval,
    decide,
    hodges_lehmann,
    holm_adjusted,
    holm_family,
    mean_interval,
    model_pairs,
    paired_comparisons,
    summarise,
    wilcoxon_p,
)
from lstm_vs_rnn.reporting.claims import claims_report, verdict_family

RMSE = np.array([0.61, 0.55, 0.97, 0.56, 0.58, 0.54, 0.57, 0.60, 0.55, 0.59])


def test_summary_against_numpy_and_scipy() -> None:
    summary = summarise(RMSE)
    assert summary["mean"] == pytest.approx(RMSE.mean())
    assert summary["median"] == pytest.approx(0.575)
    assert summary["std"] == pytest.approx(np.std(RMSE, ddof=1))  # the sample std
    assert (summary["min"], summary["max"]) == (0.54, 0.97)
    expected = stats.bootstrap(
        (RMSE,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="BCa",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    ).confidence_interval
    assert (summary["ci95_low"], summary["ci95_high"]) == (expected.low, expected.high)
    assert summary["ci95_low"] < RMSE.mean() < summary["ci95_high"]


def test_the_interval_is_the_same_on_every_run() -> None:
    assert mean_interval(RMSE) == mean_interval(RMSE.copy())


def test_one_repeat_degrades_to_not_available() -> None:
    summary = summarise(np.array([0.5]))
    assert summary["mean"] == summary["median"] == summary["min"] == summary["max"] == 0.5
    assert summary["std"] == summary["ci95_low"] == summary["ci95_high"] == NOT_AVAILABLE
    (comparison,) = paired_comparisons({"rnn": np.array([0.6]), "lstm": np.array([0.5])})
    summary = comparison.summary()
    assert summary["rmse_diff"]["ci95_low"] == NOT_AVAILABLE
    assert summary["wilcoxon_p"] == NOT_AVAILABLE
    assert summary["verdict"].startswith(NOT_AVAILABLE)
    assert summary["lstm_wins"] == 1.0


def test_identical_values_have_a_point_interval() -> None:
    interval = mean_interval(np.array([2.0, 2.0, 2.0]))
    assert (interval.low, interval.high) == (2.0, 2.0)


def test_wilcoxon_against_the_exact_distribution() -> None:
    """Five negative differences: 1 of the 2^5 sign patterns is as extreme on each side."""
    assert wilcoxon_p(np.array([-1.0, -2.0, -3.0, -4.0, -5.0])) == pytest.approx(2 / 32)
    assert wilcoxon_p(np.zeros(4)) == NOT_AVAILABLE


def test_pairs_cover_every_pair_once_later_against_earlier() -> None:
    assert model_pairs(["rnn", "lstm"]) == [("lstm", "rnn")]
    assert model_pairs(["rnn", "lstm", "gru"]) == [("lstm", "rnn"), ("gru", "rnn"), ("gru", "lstm")]


def test_paired_comparison_by_hand() -> None:
    rnn = np.array([0.60, 0.70, 0.65, 0.62, 0.90, 0.61])
    lstm = rnn - np.array([0.05, 0.06, 0.04, 0.05, 0.30, -0.01])
    (comparison,) = paired_comparisons({"rnn": rnn, "lstm": lstm})
    summary = comparison.summary()
    assert comparison.key == "lstm_vs_rnn"
    np.testing.assert_allclose(comparison.differences, lstm - rnn)
    assert summary["rmse_diff"]["mean"] == pytest.approx(-0.49 / 6)
    assert summary["lstm_wins"] == pytest.approx(5 / 6)
    assert summary["rnn_wins"] == pytest.approx(1 / 6)
    assert summary["wilcoxon_p"] == pytest.approx(stats.wilcoxon(lstm - rnn).pvalue)
    assert summary["rmse_diff"]["ci95_high"] < 0
    assert summary["p_holm"] == NOT_AVAILABLE  # not yet corrected: the interval alone
    assert summary["verdict"] == "weak: lstm better"
    # Walsh averages of the differences: their median by hand (21 of them; the 11th).
    d = lstm - rnn
    walsh = sorted((d[i] + d[j]) / 2 for i in range(6) for j in range(i, 6))
    assert summary["rmse_diff"]["hodges_lehmann"] == pytest.approx(walsh[10])


def test_overlapping_models_give_no_difference_detected() -> None:
    rng = np.random.default_rng(0)
    rnn = rng.normal(0.6, 0.02, 10)
    (comparison,) = paired_comparisons({"rnn": rnn, "lstm": rnn + rng.normal(0, 0.02, 10)})
    interval = comparison.interval
    assert interval.low < 0 < interval.high
    assert comparison.verdict == "no difference detected"


def per_repeat_table(rnn: dict[str, list[float]], lstm: dict[str, list[float]]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"model": name, "repeat": range(len(values["test_rmse"])), **values})
        for name, values in (("rnn", rnn), ("lstm", lstm))
    ]
    return pd.concat(frames, ignore_index=True)


MODELS = pd.DataFrame(
    {
        "model": ["rnn", "lstm"],
        "arch": ["rnn", "lstm"],
        "hidden_size": [50, 50],
        "num_layers": [1, 1],
        "n_parameters": [2701, 10651],
    }
)


def report(
    table: pd.DataFrame,
    baselines: dict[str, float],
    seeds: list[int],
    models: pd.DataFrame,
    flow: GradientFlow,
) -> str:
    """claims.md as evaluate writes it: the pairs of models and the claims in one family."""
    rmse = {
        name: rows.sort_values("repeat")["test_rmse"].to_numpy()
        for name, rows in table.groupby("model", sort=False)
    }
    pairs, claims = verdict_family(paired_comparisons(rmse), table, baselines["ar"], flow)
    return claims_report(table, baselines, pairs, seeds, models, flow, claims)


def test_claims_report_reads_every_verdict_off_the_intervals() -> None:
    rnn = {
        "test_rmse": [0.60, 0.62, 0.61, 0.63, 0.60],
        "test_error_std": [0.50, 0.50, 0.52, 0.51, 0.50],
        "final_train_loss": [0.010, 0.011, 0.012, 0.010, 0.011],
        "epochs_to_converge": [10, 12, 11, 10, 13],
    }
    lstm = {
        "test_rmse": [0.55, 0.56, 0.55, 0.57, 0.54],  # better in every repeat
        "test_error_std": [0.51, 0.49, 0.53, 0.50, 0.50],  # mixed
        "final_train_loss": [0.020, 0.021, 0.022, 0.020, 0.021],  # worse in every repeat
        "epochs_to_converge": [10, 12, 11, 10, 13],  # identical
    }
    text = report(
        per_repeat_table(rnn, lstm),
        {"persistence": 0.70, "ar": 0.58, "noise_floor": 0.48},
        [42, 43, 44, 45, 46],
        MODELS,
        gradient_flow({"rnn": ("rnn", [-3.0] * 5), "lstm": ("lstm", [-1.0] * 5)}),
    )
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if "| (" in line}
    # Five repeats: the smallest two-sided signed-rank p is 2/32 > 0.05, so no verdict can be
    # more than weak however clear the interval.
    assert rows["(a) the LSTM converges faster"].endswith("**inconclusive** |")
    assert (
        "**weak: not supported (the RNN is better)**"
        in rows["(b) the LSTM reaches a lower training loss"]
    )
    assert "**weak: supported**" in rows["(c) the LSTM predicts better"]
    assert "| 0.612 | 0.554 | -0.058 [" in rows["(c) the LSTM predicts better"]
    assert "| 0.0625 | 0.5 |" in rows["(c) the LSTM predicts better"]  # 2/32; Holm x8, capped
    assert rows["(d) the LSTM's errors are tighter"].endswith("**inconclusive** |")
    assert "| lstm | 0.554 [" in text and "5 of 5 | 5 of 5 | **weak: better than AR** |" in text
    assert "| rnn | 0.612 [" in text and "5 of 5 | 0 of 5 | **weak: worse than AR** |" in text
    assert "| lstm - rnn | -0.058 [" in text and "**weak: lstm better**" in text
    assert "seeds 42-46" in text
    assert "| lstm | lstm | 50 | 1 | 10,651 |" in text
    assert "Holm's step-down correction over all 9 verdicts" in text


def test_ten_agreeing_repeats_give_a_verdict_that_survives_holm() -> None:
    """All 10 differences one side, distinct sizes: exact signed-rank p = 2/2^10, times at most
    the 9 verdicts of the family stays below 0.05 (Holm), so the verdict is not weak."""
    rnn_rmse = [0.60 + 0.01 * i for i in range(10)]
    lstm_rmse = [value - 0.001 * (i + 1) for i, value in enumerate(rnn_rmse)]
    columns = {"test_error_std": [0.5] * 10, "final_train_loss": [0.01] * 10}
    text = report(
        per_repeat_table(
            {"test_rmse": rnn_rmse, **columns, "epochs_to_converge": [10] * 10},
            {"test_rmse": lstm_rmse, **columns, "epochs_to_converge": [10] * 10},
        ),
        {"persistence": 0.9, "ar": 0.5},
        list(range(10)),
        MODELS,
        gradient_flow({"rnn": ("rnn", [-3.0] * 10), "lstm": ("lstm", [-3.0] * 10)}),
    )
    (row,) = [line for line in text.splitlines() if line.startswith("| (c)")]
    cells = [cell.strip() for cell in row.split("|")]
    assert float(cells[7]) == pytest.approx(2 / 1024, rel=1e-3)  # printed to 4 figures
    assert float(cells[8]) <= 9 * 2 / 1024
    assert cells[9] == "**supported**"


def test_hodges_lehmann_by_hand() -> None:
    # Walsh averages of (1, 2, 10): 1, 1.5, 5.5, 2, 6, 10; their median is (2 + 5.5) / 2.
    assert hodges_lehmann(np.array([1.0, 2.0, 10.0])) == 3.75
    assert hodges_lehmann(np.array([-0.5])) == -0.5


def test_holm_step_down_by_hand() -> None:
    # Sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> max so far 0.06.
    adjusted = holm_adjusted([0.01, 0.04, 0.03, 0.005, NOT_AVAILABLE])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjusted[4] == NOT_AVAILABLE
    assert holm_adjusted([0.5, 0.9]) == [1.0, 1.0]


def test_the_interval_alone_gives_a_weak_verdict() -> None:
    """Claim (b) as the review found it: the BCa interval excludes zero, the rank test does not
    reject (p 0.28): "weak", not "supported"."""
    below = Interval(-0.00644, -0.00007)
    assert decide(below, 0.28, "supported", "not supported", "inconclusive") == "weak: supported"
    assert decide(below, 0.01, "supported", "not supported", "inconclusive") == "supported"
    across = Interval(-0.004, 0.0001)
    assert decide(across, 0.001, "supported", "not supported", "inconclusive") == "inconclusive"


def test_holm_family_corrects_every_comparison_together() -> None:
    pairs = paired_comparisons(
        {"a": np.arange(10.0), "b": np.arange(10.0) + 1 + np.arange(10) / 100}
    )
    family = holm_family({f"copy{i}": pairs[0] for i in range(30)})
    (p,) = {test.p_holm for test in family.values()}
    assert p == pytest.approx(min(1.0, 30 * 2 / 1024))  # 0.0586: over 0.05
    assert family["copy0"].verdict == "weak: a better"
    assert holm_family({"one": pairs[0]})["one"].verdict == "a better"


def test_claims_need_both_article_models() -> None:
    table = per_repeat_table({"test_rmse": [0.6, 0.7]}, {"test_rmse": [0.5, 0.6]}).replace(
        {"model": {"lstm": "gru"}}
    )
    text = report(
        table,
        {"persistence": 0.7, "ar": 0.6},
        [1, 2],
        MODELS,
        gradient_flow({"rnn": ("rnn", [-3.0, -2.0]), "gru": ("gru", [-1.0, -1.5])}),
    )
    assert "none is tested" in text
    assert "n/a: the claim needs an entry of arch `lstm` and one of arch `rnn`" in text


def gradient_flow(log_ratios: dict[str, tuple[str, list[float]]], window: int = 20) -> GradientFlow:
    """Claim (e)'s input: per entry its arch and per-repeat log10 lag ratios, the same trained
    and at init, and a table that reaches lag `window` - 1."""
    table = pd.DataFrame({"model": "any", "state": "trained", "lag": range(window)})
    ratios = {
        name: LagRatios(arch, {"trained": np.array(values), "init": np.array(values)})
        for name, (arch, values) in log_ratios.items()
    }
    return GradientFlow(table, ratios)


def rmse_only_table(repeats: int) -> pd.DataFrame:
    """A per-repeat table that leaves claims (a)-(d) untested (no `lstm` entry)."""
    table = per_repeat_table({"test_rmse": [0.6] * repeats}, {"test_rmse": [0.5] * repeats})
    return table.replace({"model": {"lstm": "gru"}})


def gradient_rows(report: str) -> dict[tuple[str, str], str]:
    """Claim (e)'s rows by (pair, weights)."""
    rows = [line.split("|") for line in report.splitlines() if " - " in line and "| **" in line]
    return {
        (cells[1].strip(), cells[2].strip()): "|".join(cells)
        for cells in rows
        if cells[2].strip() in ("trained", "at initialisation")
    }


def test_the_gradient_claim_compares_entries_by_arch_whatever_their_names() -> None:
    flow = gradient_flow(
        {
            "vanilla": ("rnn", [-4.0, -3.5, -4.2, -3.8, -4.1]),
            "cell": ("lstm", [-1.0, -1.2, -0.9, -1.1, -1.0]),  # keeps ~3 decades more
            "cell2": ("lstm", [-4.0, -3.5, -4.2, -3.8, -4.0]),  # all but the same
            "gated": ("gru", [0.0] * 5),
        }
    )
    text = report(rmse_only_table(5), {"persistence": 0.7, "ar": 0.6}, list(range(5)), MODELS, flow)
    assert "at the oldest lag k = 19" in text
    rows = gradient_rows(text)
    assert set(rows) == {
        (pair, weights)
        for pair in ("cell - vanilla", "cell2 - vanilla")
        for weights in ("trained", "at initialisation")
    }
    assert "| 0.0001 | 0.1 | +2.88 [" in rows[("cell - vanilla", "trained")]
    assert rows[("cell - vanilla", "trained")].endswith("**weak: supported** |")
    assert rows[("cell - vanilla", "at initialisation")].endswith("**weak: the LSTM keeps more** |")
    assert rows[("cell2 - vanilla", "trained")].endswith("**inconclusive** |")


def test_the_gradient_claim_reads_an_rnn_that_keeps_more_as_not_supported() -> None:
    flow = gradient_flow({"rnn": ("rnn", [-1.0, -1.1, -0.9]), "lstm": ("lstm", [-3.0, -3.1, -2.9])})
    rows = gradient_rows(
        report(rmse_only_table(3), {"persistence": 0.7, "ar": 0.6}, [1, 2, 3], MODELS, flow)
    )
    assert rows[("lstm - rnn", "trained")].endswith(
        "**weak: not supported (the RNN keeps more)** |"
    )
    assert rows[("lstm - rnn", "at initialisation")].endswith("**weak: the RNN keeps more** |")


def test_each_pair_statistic_is_computed_once() -> None:
    (comparison,) = paired_comparisons({"rnn": RMSE, "lstm": RMSE[::-1].copy()})
    first = comparison.interval
    assert comparison.interval is first  # the 10,000-resample bootstrap ran once
    comparison.summary()
    assert comparison.interval is first
