"""reports/claims.md: the reference article's claims about LSTM vs RNN, tested on this run.

Every number in it comes from the per-repeat table of the evaluation; nothing is typed in.
A claim is *supported* when the 95% BCa interval of the paired LSTM - RNN difference lies wholly
on the LSTM's side of zero and the Wilcoxon signed-rank test rejects at 5% family-wise (Holm over
every verdict of the run, `statistics.decide`), *not supported* when both say the RNN's side,
*weak* when only the interval excludes zero, and *inconclusive* when it straddles zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lstm_vs_rnn.evaluation.baselines import BASELINE_LABELS
from lstm_vs_rnn.evaluation.gradients import GradientFlow
from lstm_vs_rnn.evaluation.statistics import (
    FAMILY_WISE_ALPHA,
    NOT_AVAILABLE,
    Interval,
    PairedComparison,
    holm_family,
    mean_interval,
)

if TYPE_CHECKING:
    from lstm_vs_rnn.evaluation.tuning_check import FreshSeedCheck

# The two entries the article compares.
LSTM, RNN = "lstm", "rnn"
# The same two architectures, each at its own tuned settings (modeling.tuning).
LSTM_TUNED, RNN_TUNED = "lstm_tuned", "rnn_tuned"
ARTICLE_PAIRS = (
    (LSTM_TUNED, RNN_TUNED, "at each model's tuned settings"),
    (LSTM, RNN, "at the article's shared setting"),
)
# The architectures claim (e) compares, whatever their entries are named.
LSTM_ARCH, RNN_ARCH = "lstm", "rnn"

# Claim (e) per state of the weights: its label, and the reading of an LSTM - RNN interval
# wholly above 0, wholly below, across 0. Trained weights test the claim; initial weights show
# what the architecture does before any training.
GRADIENT_READINGS = {
    "trained": ("trained", "supported", "not supported (the RNN keeps more)", "inconclusive"),
    "init": ("at initialisation", "the LSTM keeps more", "the RNN keeps more", "no difference"),
}


@dataclass(frozen=True)
class Claim:
    """One claim: lower values of `column` for the LSTM than the RNN would support it."""

    label: str
    column: str
    measured_as: str


ARTICLE_CLAIMS = (
    Claim(
        "(a) the LSTM converges faster",
        "epochs_to_converge",
        "epochs until the validation loss is within 5% of its best",
    ),
    Claim(
        "(b) the LSTM reaches a lower training loss",
        "final_train_loss",
        "training MSE at the final epoch (scaled data)",
    ),
    Claim("(c) the LSTM predicts better", "test_rmse", "test RMSE (original units)"),
    Claim(
        "(d) the LSTM's errors are tighter",
        "test_error_std",
        "std of the test errors (original units)",
    ),
)


def claim_key(claim: Claim, lstm: str = LSTM, rnn: str = RNN) -> str:
    if (lstm, rnn) == (LSTM, RNN):
        return f"claim:{claim.column}"
    return f"claim:{lstm}_vs_{rnn}:{claim.column}"


def gradient_key(lstm: str, rnn: str, state: str) -> str:
    return f"gradient:{lstm}_vs_{rnn}:{state}"


def baseline_key(name: str) -> str:
    return f"baseline:{name}_vs_ar"


def claim_tests(
    per_repeat: pd.DataFrame, autoregressive_rmse: float, gradients: GradientFlow
) -> dict[str, PairedComparison]:
    """Every paired difference claims.md gives a verdict on, by key, not yet Holm-corrected.

    The article's claims (LSTM - RNN per column), claim (e) per LSTM entry, RNN entry and state
    of the weights (log10 lag ratios), and each model's test RMSE minus the AR baseline's.
    Together with the pairs of models they are the run's family (`statistics.holm_family`).
    """
    tests: dict[str, PairedComparison] = {}
    models = set(per_repeat["model"])
    for lstm_entry, rnn_entry, _ in ARTICLE_PAIRS:
        if not {lstm_entry, rnn_entry} <= models:
            continue
        for claim in ARTICLE_CLAIMS:
            rnn = _column(per_repeat, rnn_entry, claim.column)
            lstm = _column(per_repeat, lstm_entry, claim.column)
            tests[claim_key(claim, lstm_entry, rnn_entry)] = PairedComparison(
                lstm_entry, rnn_entry, lstm - rnn
            )
    for lstm, rnn in _gradient_pairs(gradients):
        for state in GRADIENT_READINGS:
            differences = (
                gradients.ratios[lstm].per_state[state] - gradients.ratios[rnn].per_state[state]
            )
            tests[gradient_key(lstm, rnn, state)] = PairedComparison(lstm, rnn, differences)
    for name in dict.fromkeys(per_repeat["model"]):
        rmse = _column(per_repeat, name, "test_rmse")
        tests[baseline_key(name)] = PairedComparison(name, "ar", rmse - autoregressive_rmse)
    return tests


def verdict_family(
    pairs: list[PairedComparison],
    per_repeat: pd.DataFrame,
    autoregressive_rmse: float,
    gradients: GradientFlow,
) -> tuple[list[PairedComparison], dict[str, PairedComparison]]:
    """The run's verdicts, Holm-corrected together: the pairs of models, in their order, and
    the claims of `claim_tests` by key."""
    claims = claim_tests(per_repeat, autoregressive_rmse, gradients)
    family = holm_family({**{pair.key: pair for pair in pairs}, **claims})
    return [family[pair.key] for pair in pairs], {key: family[key] for key in claims}


def _gradient_pairs(gradients: GradientFlow) -> list[tuple[str, str]]:
    """Every entry of arch `lstm` with every entry of arch `rnn`."""
    lstms = [name for name, ratio in gradients.ratios.items() if ratio.arch == LSTM_ARCH]
    rnns = [name for name, ratio in gradients.ratios.items() if ratio.arch == RNN_ARCH]
    return [(lstm, rnn) for lstm in lstms for rnn in rnns]


def claims_report(
    per_repeat: pd.DataFrame,
    baselines: dict[str, float],
    comparisons: list[PairedComparison],
    seeds: list[int],
    models: pd.DataFrame,
    gradients: GradientFlow,
    claims: dict[str, PairedComparison],
    tuning: dict[str, dict] | None = None,
    fresh_checks: list[FreshSeedCheck] | None = None,
) -> str:
    """The whole claims.md: the models, the article's claims, the baselines, every pair.

    `comparisons` (the pairs of models) and `claims` (`claim_tests`) are Holm-corrected
    together (`statistics.holm_family`). `fresh_checks` (`evaluation.tuning_check`): each tuned
    entry's choice on fresh seeds, after the tuned settings."""
    lines = [
        "# The reference article's claims, tested",
        "",
        f"{len(seeds)} repeat(s) per model (torch {_seed_range(seeds)}; repeat i of every "
        "model trains on the same batch order, so models are compared repeat by repeat). "
        "Intervals are 95% bootstrap (BCa) intervals of the mean over repeats; with fewer than "
        "about 10 repeats they are rough, with one there are none (n/a).",
        "",
        *_rule_section(len(comparisons) + len(claims), len(seeds)),
        "",
        *_models_section(models),
        "",
        *_tuning_section(tuning or {}),
        *fresh_seed_section(fresh_checks or []),
        *_article_claims_section(per_repeat, claims, *ARTICLE_PAIRS[0]),
        "",
        *_article_claims_section(per_repeat, claims, *ARTICLE_PAIRS[1]),
        "",
        *_survival_section(claims),
        *_gradient_claim_section(gradients, claims),
        "",
        *_baselines_section(per_repeat, baselines, claims),
        "",
        *_pairs_section(comparisons),
        "",
        "Written by the `evaluate` stage from `reports/plots/repeats.csv`; "
        "every figure above comes from that run.",
    ]
    return "\n".join(lines) + "\n"


def _models_section(models: pd.DataFrame) -> list[str]:
    """Sizes first: the LSTM-50 has about 4 times the parameters of the RNN-50."""
    rows = [
        "## The models",
        "",
        "| model | arch | hidden size | layers | parameters |",
        "|---|---|---|---|---|",
    ]
    rows += [
        f"| {row.model} | {row.arch} | {row.hidden_size} | {row.num_layers} "
        f"| {row.n_parameters:,} |"
        for row in models.itertuples()
    ]
    return rows


def _rule_section(family_size: int, repeats: int) -> list[str]:
    return [
        "## How a verdict is reached",
        "",
        "A verdict that one side is better (*supported*, *not supported*, *better*) needs two "
        "methods to agree on the paired differences: the 95% BCa bootstrap interval of their "
        "mean lies wholly on that side of zero, and the two-sided Wilcoxon signed-rank test "
        f"rejects at {FAMILY_WISE_ALPHA:.0%} after Holm's step-down correction over all "
        f"{family_size} verdicts of this run (every claim, every comparison with the AR "
        "baseline, every pair of models). When only the interval excludes zero the verdict "
        "is *weak*; when the interval straddles zero it is *inconclusive* (or *no difference "
        "detected*). Beside each mean is the Hodges-Lehmann median difference (HL: the median "
        "of the pairwise averages of the differences), which one unusual repeat cannot pull.",
        "",
        *_power_note(family_size, repeats),
    ]


def _power_note(family_size: int, repeats: int) -> list[str]:
    """How strong a verdict this run can give at all: with n repeats the smallest two-sided
    exact signed-rank p is 2 / 2^n (every pair on one side), and Holm multiplies the smallest
    of m p-values by m, so no verdict is strong when m · 2 / 2^n >= the family-wise level."""
    smallest = family_size * 2.0 / 2.0**repeats
    if smallest < FAMILY_WISE_ALPHA:
        return [
            f"With {repeats} repeats a strong verdict is possible: every pair on one side gives "
            f"a Holm-adjusted p of at least {smallest:.3g}."
        ]
    needed = next(
        n for n in range(repeats + 1, 64) if family_size * 2.0 / 2.0**n < FAMILY_WISE_ALPHA
    )
    return [
        f"**With {repeats} repeats no verdict of this run can be strong**: even with every pair "
        f"on one side, the smallest Holm-adjusted signed-rank p is {family_size} x 2 / "
        f"2^{repeats} = {smallest:.3g}, above {FAMILY_WISE_ALPHA:.0%}. Here *weak* says the "
        f"interval excludes zero, not that the rank test disagrees; {needed} repeats "
        f"(`train.repeats`) or fewer entries make a strong verdict possible."
    ]


def _tuning_section(tuning: dict[str, dict]) -> list[str]:
    """What tuning chose for each tuned entry, how sure the choice is, and its budget in
    configurations, trainings and compute side by side."""
    tuned = {name: result for name, result in tuning.items() if result["tuned"]}
    if not tuned:
        return []
    keys = sorted({key for result in tuned.values() for key in result["chosen"]})
    first = next(iter(tuned.values()))
    rungs = ", ".join(f"{r['configurations']} x {r['seeds']}" for r in first["rungs"])
    rows = [
        "## Tuned settings",
        "",
        f"Each tuned entry tried the same {first['n_trials']} configurations (the dimensions "
        "all architectures share drawn once for all; the first is the article's shared "
        "setting) by successive halving over seeds: configurations x seeds per rung "
        f"{rungs}, torch {_seed_range(first['seeds'])}, kept apart from the repeats'. "
        f"Score: {first['objective']} on the training part's validation tail; the test part "
        "was not read. Margin: the winner's lead over the runner-up on the final rung, in "
        "standard errors of their paired difference; same winner: the share of bootstrap "
        "resamples of the final rung's seeds that pick it. Entries not listed train at the "
        "settings in params.yaml.",
        "",
        f"| entry | trials | trainings | optimizer steps | multiply-adds | chosen trial "
        f"| best validation MSE | margin (SE) | same winner | {' | '.join(keys)} |",
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(keys),
    ]
    for name, result in tuned.items():
        values = " | ".join(_setting(result["chosen"].get(key, "-")) for key in keys)
        budget = result["budget"]
        chosen = f"{result['best_trial']}" + (" (shared)" if result["best_trial"] == 0 else "")
        rows.append(
            f"| {name} | {result['n_trials']} | {budget['trainings']} "
            f"| {budget['optimizer_steps']:,} | {budget['multiply_adds']:.2e} | {chosen} "
            f"| {_number(result['best_value'])} | {_optional(result['margin_se'], '.2f')} "
            f"| {_optional(result['same_winner_fraction'], '.0%')} | {values} |"
        )
    return [*rows, ""]


def _optional(value: float | None, spec: str) -> str:
    return NOT_AVAILABLE if value is None else format(value, spec)


def fresh_seed_section(checks: list[FreshSeedCheck]) -> list[str]:
    """Each tuned entry's choice on fresh seeds (`evaluation.tuning_check`): its tuning score
    beside its repeats' validation loss, and beside its shared-setting twin's; an entry worse
    than its twin is named in bold."""
    if not checks:
        return []
    rows = [
        "## Does the tuned choice hold on fresh seeds?",
        "",
        "The best of many noisy scores is biased low (the winner's curse). Each repeat trains on "
        "a seed tuning never used, so its final-epoch validation loss (the same validation "
        "tail) re-scores the chosen setting; the shared-setting twin is the untuned entry of "
        "the same architecture, trained at the article's setting.",
        "",
        "| entry | margin (SE) | same winner | tuning score | fresh seeds: mean [min, max] "
        "| repeats at or below the tuning score | twin | twin's mean | tuned better, repeats "
        "| reading |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for check in checks:
        if check.worse_than_twin:
            reading = f"**worse than its shared-setting twin `{check.twin}`**"
        else:
            reading = f"at or better than `{check.twin}`"
        rows.append(
            f"| {check.entry} | {_optional(check.margin_se, '.2f')} "
            f"| {_optional(check.same_winner_fraction, '.0%')} | {_number(check.tuning_score)} "
            f"| {_number(check.fresh_mean)} [{_number(check.fresh_low)}, "
            f"{_number(check.fresh_high)}] "
            f"| {check.repeats_at_or_below_tuning_score} of {check.n_repeats} | {check.twin} "
            f"| {_number(check.twin_mean)} | {check.tuned_better} of {check.n_repeats} "
            f"| {reading} |"
        )
    return [*rows, ""]


def _setting(value: object) -> str:
    if value is None:
        return "null"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _claim_reading(test: PairedComparison) -> str:
    return test.reading("supported", "not supported (the RNN is better)", "inconclusive")


def _survival_section(claims: dict[str, PairedComparison]) -> list[str]:
    """Each claim's verdict at the shared setting beside its verdict after tuning."""
    tuned_key = claim_key(ARTICLE_CLAIMS[0], LSTM_TUNED, RNN_TUNED)
    if tuned_key not in claims or claim_key(ARTICLE_CLAIMS[0]) not in claims:
        return []
    rows = [
        "## Does each claim survive tuning?",
        "",
        f"| claim | shared setting (`{LSTM}` vs `{RNN}`) "
        f"| tuned (`{LSTM_TUNED}` vs `{RNN_TUNED}`) |",
        "|---|---|---|",
    ]
    for claim in ARTICLE_CLAIMS:
        shared = _claim_reading(claims[claim_key(claim)])
        tuned = _claim_reading(claims[claim_key(claim, LSTM_TUNED, RNN_TUNED)])
        rows.append(f"| {claim.label} | {shared} | {tuned} |")
    return [*rows, ""]


def _article_claims_section(
    per_repeat: pd.DataFrame,
    claims: dict[str, PairedComparison],
    lstm_entry: str,
    rnn_entry: str,
    where: str,
) -> list[str]:
    """The article's claims for `lstm_entry` against `rnn_entry`; nothing if the tuned pair is
    absent, a note if the shared pair is."""
    models = set(per_repeat["model"])
    if not {lstm_entry, rnn_entry} <= models:
        if lstm_entry == LSTM_TUNED:
            return []
        return [
            "## The article's claims",
            "",
            f"The claims compare the model entries `{lstm_entry}` and `{rnn_entry}`; this "
            f"configuration has {', '.join(f'`{name}`' for name in sorted(models))}, so none "
            "is tested.",
        ]
    rows = [
        f"## The article's claims {where} (`{lstm_entry}` - `{rnn_entry}`, paired by "
        "repeat; negative favours the LSTM)",
        "",
        "| claim | measured as | RNN mean | LSTM mean | LSTM - RNN mean [95% CI] | HL "
        "| Wilcoxon p | Holm p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for claim in ARTICLE_CLAIMS:
        rnn = _column(per_repeat, rnn_entry, claim.column)
        lstm = _column(per_repeat, lstm_entry, claim.column)
        test = claims[claim_key(claim, lstm_entry, rnn_entry)]
        rows.append(
            f"| {claim.label} | {claim.measured_as} | {_number(rnn.mean())} "
            f"| {_number(lstm.mean())} | {_test_columns(test)} | **{_claim_reading(test)}** |"
        )
    return rows


def _test_columns(test: PairedComparison) -> str:
    """Mean [CI] | HL | Wilcoxon p | Holm p, as table cells."""
    return (
        f"{_with_interval(test.mean, test.interval, signed=True)} "
        f"| {_number(test.hodges_lehmann, signed=True)} | {_number(test.wilcoxon_p)} "
        f"| {_number(test.p_holm)}"
    )


def _gradient_claim_section(
    gradients: GradientFlow, claims: dict[str, PairedComparison]
) -> list[str]:
    """(e), read off the paired log10 lag ratios of every entry of arch `lstm` against every
    entry of arch `rnn`: trained for the claim, at initialisation for what the training did."""
    oldest = gradients.oldest_lag
    rows = [
        "## (e) the RNN's gradients vanish over long lags, the LSTM's keep them",
        "",
        f"Measured as the sensitivity of the forecast to its input k steps back, |dŷ/dx(t-k)| "
        f"(`reports/plots/grad_sensitivity.csv`, `figures/gradient_flow.png`): per repeat, the "
        f"median over test windows at the oldest lag k = {oldest} divided by the median at "
        f"k = 0. Compared as LSTM - RNN of its log10, paired by repeat: above 0 the LSTM "
        f"keeps more of its oldest input; the claim is supported when the interval lies "
        f"wholly above 0 and the signed-rank test agrees (see above).",
        "",
    ]
    pairs = _gradient_pairs(gradients)
    if not pairs:
        entries = ", ".join(f"`{name}` ({r.arch})" for name, r in gradients.ratios.items())
        return [
            *rows,
            f"n/a: the claim needs an entry of arch `{LSTM_ARCH}` and one of arch `{RNN_ARCH}`; "
            f"this configuration has {entries}.",
        ]
    rows += [
        f"| LSTM entry - RNN entry | weights | RNN ratio k={oldest} / k=0, median of repeats "
        "| LSTM ratio | LSTM - RNN, log10 ratio mean [95% CI] | HL | Wilcoxon p | Holm p "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lstm, rnn in pairs:
        rows += [
            _gradient_row(gradients, lstm, rnn, state, claims[gradient_key(lstm, rnn, state)])
            for state in GRADIENT_READINGS
        ]
    return rows


def _gradient_row(
    gradients: GradientFlow, lstm: str, rnn: str, state: str, test: PairedComparison
) -> str:
    rnn_log = gradients.ratios[rnn].per_state[state]
    lstm_log = gradients.ratios[lstm].per_state[state]
    label, above, below, straddling = GRADIENT_READINGS[state]
    verdict = test.reading(below, above, straddling)
    return (
        f"| {lstm} - {rnn} | {label} | {_number(10 ** np.median(rnn_log))} "
        f"| {_number(10 ** np.median(lstm_log))} | {_test_columns(test)} | **{verdict}** |"
    )


def _baselines_section(
    per_repeat: pd.DataFrame, baselines: dict[str, float], claims: dict[str, PairedComparison]
) -> list[str]:
    """Where each model stands against the baselines, the AR one above all."""
    persistence, autoregressive = baselines["persistence"], baselines["ar"]
    rows = [
        "## Against the baselines (test RMSE, original units)",
        "",
        "| forecaster | test RMSE mean [95% CI] | minus AR, HL | Holm p "
        "| repeats better than persistence | repeats better than AR | against the AR baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(per_repeat["model"]):
        rmse = _column(per_repeat, name, "test_rmse")
        test = claims[baseline_key(name)]
        standing = test.reading("better than AR", "worse than AR", "no difference from AR detected")
        rows.append(
            f"| {name} | {_with_interval(rmse.mean(), mean_interval(rmse))} "
            f"| {_number(test.hodges_lehmann, signed=True)} | {_number(test.p_holm)} "
            f"| {int(np.sum(rmse < persistence))} of {len(rmse)} "
            f"| {int(np.sum(rmse < autoregressive))} of {len(rmse)} | **{standing}** |"
        )
    rows += [
        f"| {BASELINE_LABELS[key]} | {_number(value)} | | | | | |"
        for key, value in baselines.items()
    ]
    return rows


def _pairs_section(comparisons: list[PairedComparison]) -> list[str]:
    rows = [
        "## Every pair of models (test RMSE, first - second, paired by repeat)",
        "",
        "| pair | mean difference [95% CI] | HL | Wilcoxon p | Holm p | first wins "
        "| second wins | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for comparison in comparisons:
        summary = comparison.summary()
        rows.append(
            f"| {comparison.first} - {comparison.second} | {_test_columns(comparison)} "
            f"| {summary[f'{comparison.first}_wins']:.0%} "
            f"| {summary[f'{comparison.second}_wins']:.0%} | **{comparison.verdict}** |"
        )
    return rows


def _column(per_repeat: pd.DataFrame, model: str, column: str) -> np.ndarray:
    rows = per_repeat[per_repeat["model"] == model].sort_values("repeat")
    return rows[column].to_numpy(dtype=np.float64)


def _number(value: float | str, signed: bool = False) -> str:
    if isinstance(value, str):
        return value
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _with_interval(mean: float, interval: Interval | None, signed: bool = False) -> str:
    if interval is None:
        return f"{_number(mean, signed)} [{NOT_AVAILABLE}]"
    return (
        f"{_number(mean, signed)} [{_number(interval.low, signed)}, "
        f"{_number(interval.high, signed)}]"
    )


def _seed_range(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
