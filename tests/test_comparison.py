"""The statistics over repeats, the verdict tiers and the claims report, by hand and on built
tables."""

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
    PairedComparison,
    hodges_lehmann,
    holm_adjusted,
    mean_interval,
    model_pairs,
    summarise,
)
from lstm_vs_rnn.reporting.claims import (
    DISAGREE,
    NOT_TESTED,
    ONE_REPEAT,
    assess_verdicts,
    claims_report,
    read_verdict,
)

RMSE = np.array([0.61, 0.55, 0.97, 0.56, 0.58, 0.54, 0.57, 0.60, 0.55, 0.59])
ARTICLE_PRIMARY = [["lstm_tuned", "rnn_tuned"], ["lstm", "rnn"]]
READINGS = ("a better", "b better", "no difference detected")


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
    comparison = PairedComparison("lstm", "rnn", np.array([-0.1]))
    assert comparison.p == NOT_AVAILABLE and comparison.interval(0.95) is None
    assert read_verdict(comparison, NOT_AVAILABLE, None, READINGS) == ONE_REPEAT
    assert comparison.wins() == (1.0, 0.0)


def test_identical_values_have_a_point_interval() -> None:
    interval = mean_interval(np.array([2.0, 2.0, 2.0]))
    assert (interval.low, interval.high) == (2.0, 2.0)


def test_pairs_cover_every_pair_once_later_against_earlier() -> None:
    assert model_pairs(["rnn", "lstm"]) == [("lstm", "rnn")]
    assert model_pairs(["rnn", "lstm", "gru"]) == [("lstm", "rnn"), ("gru", "rnn"), ("gru", "lstm")]


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


def test_a_verdict_needs_the_test_and_the_interval_on_the_same_side() -> None:
    """The case the review found: an interval that excludes zero beside a test that does not
    reject is a disagreement, not a verdict; so is a rejection beside an interval across 0."""
    below = PairedComparison("a", "b", np.array([-0.3, -0.1, -0.2]))
    assert read_verdict(below, 0.01, Interval(-0.3, -0.1), READINGS) == "a better"
    assert read_verdict(below, 0.28, Interval(-0.3, -0.1), READINGS) == DISAGREE
    assert read_verdict(below, 0.01, Interval(-0.3, 0.1), READINGS) == DISAGREE
    assert read_verdict(below, 0.28, Interval(-0.3, 0.1), READINGS) == "no difference detected"


def per_repeat_table(models: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"model": name, "repeat": range(len(values["test_rmse"])), **values})
        for name, values in models.items()
    ]
    return pd.concat(frames, ignore_index=True)


def gradient_flow(log_ratios: dict[str, tuple[str, list[float]]], window: int = 20) -> GradientFlow:
    """Claim (e)'s input: per entry its arch and per-repeat log10 lag ratios, the same trained
    and at init, and a table that reaches lag `window` - 1."""
    table = pd.DataFrame({"model": "any", "state": "trained", "lag": range(window)})
    ratios = {
        name: LagRatios(arch, {"trained": np.array(values), "init": np.array(values)})
        for name, (arch, values) in log_ratios.items()
    }
    return GradientFlow(table, ratios)


ARCHS = {"rnn": "rnn", "lstm": "lstm", "rnn_tuned": "rnn", "lstm_tuned": "lstm", "gru": "gru"}
T_STEPS = 120
ACTUAL = np.sin(np.arange(T_STEPS) * 0.2)


def built_run(rmse_shift: dict[str, float], repeats: int = 10, primary=ARTICLE_PRIMARY):
    """A run of the five default architectures: per model its test RMSE (base + shift + a
    distinct small step per repeat, so every difference of two shifted models has one sign),
    its forecasts (the truth plus a model's own fixed error) and gradient ratios."""
    steps = np.arange(repeats) * 0.001
    models = {
        name: {
            "test_rmse": list(0.5 + shift + steps * (i + 1)),
            "epochs_to_converge": [10 + (r % 3) for r in range(repeats)],
            "final_train_loss": list(0.01 + shift / 10 + steps),
            "test_error_std": list(0.49 + shift + steps),
        }
        for i, (name, shift) in enumerate(rmse_shift.items())
    }
    table = per_repeat_table(models)
    rng = np.random.default_rng(7)
    forecasts = {
        name: [ACTUAL + rng.normal(0, 0.3 + shift, T_STEPS) for _ in range(repeats)]
        for name, shift in rmse_shift.items()
    }
    flow = gradient_flow(
        {name: (ARCHS[name], [-3.0 + 0.1 * r for r in range(repeats)]) for name in rmse_shift}
    )
    ar = ACTUAL + rng.normal(0, 0.3, T_STEPS)
    verdicts = assess_verdicts(primary, 0.02, table, forecasts, ACTUAL, ar, flow)
    return table, flow, verdicts


SHIFTS = {"rnn": 0.10, "lstm": 0.05, "rnn_tuned": 0.06, "lstm_tuned": 0.02, "gru": 0.03}


def test_tier_sizes_on_a_built_table() -> None:
    """Five models, the article's two pairs primary: 2 primary, 2 x 2 secondary, and
    exploratory the other 8 pairs, 5 models against AR, 2 x 2 LSTM-RNN gradient pairs."""
    _, _, verdicts = built_run(SHIFTS)
    assert [v.comparison.key for v in verdicts.primary] == [
        "lstm_tuned_vs_rnn_tuned",
        "lstm_vs_rnn",
    ]
    assert len(verdicts.secondary) == 4
    assert (len(verdicts.pairs), len(verdicts.baselines), len(verdicts.gradients)) == (8, 5, 4)
    assert len(verdicts.initial_gradients) == 4
    tiers = verdicts.metrics()["verdict_tiers"]
    assert (tiers["primary"]["size"], tiers["exploratory"]["size"]) == (2, 17)
    # Holm with m = 2: the smaller p's interval at 97.5%, the other at 95%.
    assert sorted(v.level for v in verdicts.primary) == pytest.approx([0.95, 0.975])


def test_ten_agreeing_repeats_give_strong_primary_verdicts_and_open_the_gate() -> None:
    """All 10 differences on one side: sign-flip p = 2/1024, Holm x2 = 0.0039 < 0.05."""
    _, _, verdicts = built_run(SHIFTS)
    for verdict in verdicts.primary:
        assert verdict.comparison.p == pytest.approx(2 / 1024)
        assert verdict.p_adjusted == pytest.approx(4 / 1024)
        assert verdict.interval.high < 0
        assert verdict.reading == f"{verdict.comparison.first} better"
    assert verdicts.gate_open
    readings = {(v.comparison.key, v.hypothesis.column): v.reading for v in verdicts.secondary}
    assert readings[("lstm_vs_rnn", "final_train_loss")] == "supported"
    assert readings[("lstm_vs_rnn", "epochs_to_converge")] == "inconclusive"  # identical


def test_the_secondary_tier_is_not_tested_when_a_primary_test_does_not_reject() -> None:
    """lstm and rnn identical up to alternating signs: the shared-setting primary cannot
    reject, so the gate stays closed even though the tuned pair is clear."""
    table, flow, _ = built_run(SHIFTS)
    rnn = table["model"] == "rnn"
    lstm_rmse = table.loc[table["model"] == "lstm", "test_rmse"].to_numpy()
    table.loc[rnn, "test_rmse"] = lstm_rmse + np.array([0.01, -0.01] * 5)
    forecasts = {name: [ACTUAL] * 10 for name in SHIFTS}
    verdicts = assess_verdicts(ARTICLE_PRIMARY, 0.02, table, forecasts, ACTUAL, ACTUAL, flow)
    assert [v.rejected for v in verdicts.primary] == [True, False]
    assert not verdicts.gate_open
    assert {v.reading for v in verdicts.secondary} == {NOT_TESTED}
    assert {v.p for v in verdicts.secondary} == {NOT_AVAILABLE}
    metrics = verdicts.metrics()
    assert metrics["lstm_vs_rnn"]["final_train_loss"]["verdict"] == f"secondary: {NOT_TESTED}"
    assert metrics["verdict_tiers"]["secondary"]["gate_open"] == 0
    # Identical forecasts: Diebold-Mariano finds no difference from AR.
    assert {v.reading for v in verdicts.baselines} == {"no difference from AR detected"}


def test_equivalence_needs_the_two_one_sided_tests() -> None:
    """gru and lstm_tuned 0.0001 apart in every repeat, far inside 2% of the AR's RMSE: TOST
    rejects and the pair reads "as good as"; lstm and gru, 0.02 apart, do not."""
    shifts = {**SHIFTS, "gru": 0.02}
    table, flow, _ = built_run(shifts)
    tuned = table["model"] == "lstm_tuned"
    table.loc[table["model"] == "gru", "test_rmse"] = table.loc[
        tuned, "test_rmse"
    ].to_numpy() + np.array([1e-4, -1e-4] * 5)
    forecasts = {name: [ACTUAL] * 10 for name in shifts}
    ar = ACTUAL + 0.5
    verdicts = assess_verdicts(ARTICLE_PRIMARY, 0.02, table, forecasts, ACTUAL, ar, flow)
    by_pair = {v.comparison.key: v for v in verdicts.pairs}
    assert by_pair["gru_vs_lstm_tuned"].reading == "as good as each other (within ±0.01)"
    assert by_pair["gru_vs_lstm"].reading != by_pair["gru_vs_lstm_tuned"].reading


def test_the_report_prints_each_tier_and_its_smallest_p() -> None:
    table, flow, verdicts = built_run(SHIFTS)
    text = claims_report(
        table, {"persistence": 0.9, "ar": 0.5}, verdicts, list(range(42, 52)), MODELS, flow
    )
    assert "| primary | test RMSE of each pair in `evaluate.primary` | 2 |" in text
    assert "| 97.5%, then 95% | 0.001953 raw, 0.003906 Holm-adjusted |" in text
    assert (
        "| exploratory | every other pair, each model against AR, claim (e) trained | 17 |" in text
    )
    assert "With 10 repeats a primary verdict can be strong" in text
    assert "| lstm_tuned - rnn_tuned at each model's tuned settings | 0.5" in text
    assert "**lstm better**" in text
    assert "restates (c), no test" in text
    assert "## Does each claim survive tuning?" in text
    assert "descriptive, no test" in text
    assert "**exploratory: inconclusive**" in text  # equal gradient ratios
    assert "a tuned pair also differs in every setting tuning chose" in text


def test_too_few_repeats_say_how_many_a_primary_verdict_needs() -> None:
    table, flow, verdicts = built_run(SHIFTS, repeats=5)
    text = claims_report(
        table, {"persistence": 0.9, "ar": 0.5}, verdicts, list(range(5)), MODELS, flow
    )
    # 2 x 2 / 2^5 = 0.125 > 0.05; 2 x 2 / 2^7 = 0.03125.
    assert "**With 5 repeats no primary verdict can reject**" in text
    assert "= 0.125; 7 repeats (`train.repeats`) make it possible." in text
    assert {v.reading for v in verdicts.secondary} == {NOT_TESTED}


def test_a_primary_pair_with_an_absent_entry_is_said_in_one_line() -> None:
    shifts = {name: SHIFTS[name] for name in ("rnn", "lstm")}
    table, flow, verdicts = built_run(shifts)
    assert verdicts.missing_primary == [("lstm_tuned", "rnn_tuned")]
    text = claims_report(
        table, {"persistence": 0.9, "ar": 0.5}, verdicts, list(range(10)), MODELS, flow
    )
    assert (
        "Primary pair `lstm_tuned` - `rnn_tuned` is not tested: this configuration has no "
        "entries `lstm_tuned` and `rnn_tuned`." in text
    )
    assert "| primary | test RMSE of each pair in `evaluate.primary` | 1 |" in text
    _, _, none = built_run(shifts, primary=[])
    text = claims_report(
        table, {"persistence": 0.9, "ar": 0.5}, none, list(range(10)), MODELS, flow
    )
    assert "No primary pair in this configuration: every comparison is exploratory." in text


def test_metrics_keys_are_flat_and_stable() -> None:
    _, _, verdicts = built_run(SHIFTS)
    metrics = verdicts.metrics()
    pair = metrics["lstm_vs_rnn"]
    assert set(pair["rmse_diff"]) == {"mean", "hodges_lehmann", "ci_low", "ci_high", "ci_level"}
    assert {"p", "p_adjusted", "equivalence_p_adjusted", "lstm_wins", "rnn_wins"} <= set(pair)
    assert pair["verdict"] == "primary: lstm better"
    assert metrics["gru_vs_rnn"]["verdict"].startswith("exploratory: ")
    assert set(metrics["lstm_vs_ar"]["sq_error_diff"]) == {
        "mean",
        "ci_low",
        "ci_high",
        "ci_level",
        "p",
        "p_adjusted",
        "verdict",
    }


MODELS = pd.DataFrame(
    {
        "model": ["rnn", "lstm"],
        "arch": ["rnn", "lstm"],
        "hidden_size": [50, 50],
        "num_layers": [1, 1],
        "n_parameters": [2701, 10651],
    }
)


def gradient_rows(report: str) -> dict[tuple[str, str], str]:
    """Claim (e)'s rows by (pair, weights)."""
    rows = [line.split("|") for line in report.splitlines() if " - " in line and "| " in line]
    return {
        (cells[1].strip(), cells[2].strip()): "|".join(cells)
        for cells in rows
        if len(cells) > 2 and cells[2].strip() in ("trained", "at initialisation")
    }


def gradient_report(flow: GradientFlow, repeats: int) -> str:
    table = per_repeat_table(
        {"rnn": {"test_rmse": [0.6] * repeats}, "gru": {"test_rmse": [0.5] * repeats}}
    )
    forecasts = {name: [ACTUAL] * repeats for name in ("rnn", "gru")}
    verdicts = assess_verdicts([], 0.02, table, forecasts, ACTUAL, ACTUAL, flow)
    return claims_report(
        table, {"persistence": 0.7, "ar": 0.6}, verdicts, list(range(repeats)), MODELS, flow
    )


def test_the_gradient_claim_compares_entries_by_arch_whatever_their_names() -> None:
    flow = gradient_flow(
        {
            "vanilla": ("rnn", [-4.0, -3.5, -4.2, -3.8, -4.1, -3.9, -4.0, -3.7]),
            "cell": ("lstm", [-1.0, -1.2, -0.9, -1.1, -1.0, -0.8, -1.05, -0.95]),
            "cell2": ("lstm", [-4.0, -3.5, -4.2, -3.8, -4.0, -4.0, -3.9, -3.8]),
            "gated": ("gru", [0.0] * 8),
        }
    )
    text = gradient_report(flow, 8)
    assert "at the oldest lag k = 19" in text
    rows = gradient_rows(text)
    assert set(rows) == {
        (pair, weights)
        for pair in ("cell - vanilla", "cell2 - vanilla")
        for weights in ("trained", "at initialisation")
    }
    assert "| 0.0001122 | 0.1 | +2.9 [" in rows[("cell - vanilla", "trained")]
    assert rows[("cell - vanilla", "trained")].endswith("**exploratory: supported** |")
    assert rows[("cell - vanilla", "at initialisation")].endswith("descriptive, no test |")
    assert rows[("cell2 - vanilla", "trained")].endswith("**exploratory: inconclusive** |")


def test_the_gradient_claim_reads_an_rnn_that_keeps_more_as_not_supported() -> None:
    rnn = [-1.0, -1.1, -0.9, -1.05, -0.95, -1.0, -1.02, -0.98]
    flow = gradient_flow({"rnn": ("rnn", rnn), "lstm": ("lstm", [v - 2 for v in rnn])})
    rows = gradient_rows(gradient_report(flow, 8))
    assert rows[("lstm - rnn", "trained")].endswith(
        "**exploratory: not supported (the RNN keeps more)** |"
    )


def test_the_gradient_claim_needs_both_architectures() -> None:
    flow = gradient_flow({"rnn": ("rnn", [-3.0, -2.0]), "gru": ("gru", [-1.0, -1.5])})
    text = gradient_report(flow, 2)
    assert "n/a: the claim needs an entry of arch `lstm` and one of arch `rnn`" in text


def test_each_interval_is_computed_once_per_level() -> None:
    comparison = PairedComparison("lstm", "rnn", RMSE - RMSE[::-1])
    first = comparison.interval(0.975)
    assert comparison.interval(0.975) is first  # the 10,000-resample bootstrap ran once
    assert comparison.interval(0.95) is not first
