"""reports/claims.md: the reference article's claims about LSTM vs RNN, tested in tiers.

The tiers are fixed before the run (ICH E9; Dmitrienko, Tamhane & Bretz, "Multiple Testing
Problems in Pharmaceutical Statistics", 2009), so a verdict's strength does not depend on how
many other things the report also shows:

- primary: the question the project exists for, test RMSE of each pair in `evaluate.primary`
  (default `lstm_tuned` - `rnn_tuned` and `lstm` - `rnn`), Holm over those m tests;
- secondary: the article's other claims, (a) convergence and (b) training loss, for each
  primary pair, Holm over them, tested only if every primary test rejects (serial
  gatekeeping: with Holm in the primary tier no error rate is left to pass on otherwise);
  claim (d), the std of the errors, is not a test of its own: it restates (c);
- exploratory: every other pair of models, each model against the linear AR baseline
  (Diebold-Mariano over the test time steps) and claim (e) on trained weights, under
  Benjamini-Hochberg, labelled exploratory;
- descriptive: the gradients at initialisation, which describe starting weights, not a claim.

Every verdict reads a test and an interval on the same statistic at the level the tier's
correction gives that test (`statistics`); when they disagree on the side of zero the verdict
says so. Every number comes from the per-repeat table and the forecasts; nothing is typed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from lstm_vs_rnn.evaluation.baselines import BASELINE_LABELS
from lstm_vs_rnn.evaluation.gradients import GradientFlow
from lstm_vs_rnn.evaluation.statistics import (
    NOT_AVAILABLE,
    DieboldMariano,
    Interval,
    Number,
    PairedComparison,
    VarianceSplit,
    block_bootstrap_interval,
    diebold_mariano,
    equivalence_p,
    fdr_adjusted,
    fdr_level,
    holm_adjusted,
    holm_levels,
    mean_interval,
    model_pairs,
    smallest_sign_flip_p,
    variance_split,
)

if TYPE_CHECKING:
    from lstm_vs_rnn.evaluation.tuning_check import FreshSeedCheck

# The error rate of each tier: family-wise (Holm) for primary and secondary, the false
# discovery rate (Benjamini-Hochberg) for exploratory.
ALPHA = 0.05
PRIMARY, SECONDARY, EXPLORATORY, DESCRIPTIVE = "primary", "secondary", "exploratory", "descriptive"
# How the article's two comparisons are described where a primary pair is one of them.
ARTICLE_PAIRS = {
    ("lstm_tuned", "rnn_tuned"): "at each model's tuned settings",
    ("lstm", "rnn"): "at the article's shared setting",
}

# The architectures claim (e) compares, whatever their entries are named.
LSTM_ARCH, RNN_ARCH = "lstm", "rnn"
ONE_REPEAT = f"{NOT_AVAILABLE} (one repeat: no interval)"
DISAGREE = "inconclusive: the test and the interval disagree"
NOT_TESTED = "not tested (gate closed)"
# Diebold-Mariano needs a few time steps to estimate a variance over time.
MIN_TEST_STEPS = 3


@dataclass(frozen=True)
class Claim:
    """One claim: lower values of `column` for the first entry than the second support it."""

    label: str
    column: str
    measured_as: str


PRIMARY_CLAIM = Claim("(c) predicts better", "test_rmse", "test RMSE (original units)")
SECONDARY_CLAIMS = (
    Claim(
        "(a) converges faster",
        "epochs_to_converge",
        "epochs until the validation loss is within 5% of its best",
    ),
    Claim(
        "(b) reaches a lower training loss",
        "final_train_loss",
        "training MSE at the final epoch (scaled data)",
    ),
)
RESTATED_CLAIM = Claim(
    "(d) its errors are tighter", "test_error_std", "std of the test errors (original units)"
)


class Comparison(Protocol):
    """A test and an interval on one statistic: `mean` (first - second), its two-sided `p`,
    and `interval(level)`."""

    first: str
    second: str

    @property
    def mean(self) -> float: ...

    @property
    def p(self) -> Number: ...

    def interval(self, level: float) -> Interval | None: ...


@dataclass(frozen=True)
class ForecastComparison:
    """A model's forecasts against a baseline's over the test time steps (Diebold-Mariano on
    squared errors; `mean` in squared original units, below 0 the model is better)."""

    first: str
    second: str
    mean: float
    test: DieboldMariano | None  # None: too few test steps for the test
    # 95% moving-block bootstrap interval of `mean` over repeats and time blocks together
    # (statistics.block_bootstrap_interval); None with fewer than MIN_TEST_STEPS steps.
    bootstrap: Interval | None = None

    @property
    def p(self) -> Number:
        return NOT_AVAILABLE if self.test is None else self.test.p

    def interval(self, level: float) -> Interval | None:
        return None if self.test is None else self.test.interval(level)


@dataclass(frozen=True)
class Hypothesis:
    """What one test decides: its metrics key, its comparison and the readings of a result
    below zero, above zero and of no difference."""

    key: str
    comparison: Comparison
    readings: tuple[str, str, str]
    column: str = PRIMARY_CLAIM.column
    without_interval: str = ONE_REPEAT


@dataclass(frozen=True)
class Verdict:
    """A hypothesis after its tier's correction: adjusted p, the interval at the level the
    correction gives it, and the reading."""

    hypothesis: Hypothesis
    tier: str
    p_adjusted: Number
    level: float
    interval: Interval | None
    reading: str
    equivalence_p_adjusted: Number = NOT_AVAILABLE

    @property
    def comparison(self) -> Comparison:
        return self.hypothesis.comparison

    @property
    def rejected(self) -> bool:
        return not isinstance(self.p_adjusted, str) and self.p_adjusted <= ALPHA

    @property
    def p(self) -> Number:
        """The raw p-value; "n/a" for a test the gate kept from running."""
        return NOT_AVAILABLE if self.reading == NOT_TESTED else self.comparison.p

    def summary(self) -> dict[str, Number]:
        """For metrics.json: the mean, the interval and its level, the raw and adjusted p,
        the verdict (labelled with its tier)."""
        interval = self.interval
        return {
            "mean": self.comparison.mean,
            "ci_low": interval.low if interval else NOT_AVAILABLE,
            "ci_high": interval.high if interval else NOT_AVAILABLE,
            "ci_level": self.level,
            "p": self.p,
            "p_adjusted": self.p_adjusted,
            "verdict": f"{self.tier}: {self.reading}",
        }


def read_verdict(
    comparison: Comparison,
    p_adjusted: Number,
    interval: Interval | None,
    readings: tuple[str, str, str],
    without_interval: str = ONE_REPEAT,
) -> str:
    """The reading of one test: a side of zero where the test rejects at ALPHA and the
    interval lies on the side of the mean; `DISAGREE` where only one of them excludes zero;
    the no-difference reading where neither does; `without_interval` without an interval."""
    below, above, neither = readings
    if interval is None:
        return without_interval
    rejected = not isinstance(p_adjusted, str) and p_adjusted <= ALPHA
    side = interval.side()
    if rejected and side == np.sign(comparison.mean) != 0:
        return below if side < 0 else above
    if rejected or side != 0:
        return DISAGREE
    return neither


def holm_tier(
    tier: str, hypotheses: Sequence[Hypothesis], margin: float | None = None
) -> list[Verdict]:
    """Holm over the tier at ALPHA; each interval at `statistics.holm_levels`. With a
    `margin`, "no difference" becomes "as good as" where TOST rejects (Holm over the tier's
    TOST p-values too)."""
    raw = [hypothesis.comparison.p for hypothesis in hypotheses]
    levels = holm_levels(raw, ALPHA)
    return _decided(tier, hypotheses, holm_adjusted(raw), levels, margin, holm_adjusted)


def fdr_tier(
    tier: str, hypotheses: Sequence[Hypothesis], margin: float | None = None
) -> list[Verdict]:
    """Benjamini-Hochberg over the tier at ALPHA; every interval at the false-coverage-rate
    level 1 - R ALPHA / m (`statistics.fdr_level`)."""
    raw = [hypothesis.comparison.p for hypothesis in hypotheses]
    adjusted = fdr_adjusted(raw)
    rejected = sum(1 for p in adjusted if not isinstance(p, str) and p <= ALPHA)
    level = fdr_level(rejected, len(hypotheses), ALPHA)
    levels = [level] * len(hypotheses)
    return _decided(tier, hypotheses, adjusted, levels, margin, fdr_adjusted)


def _decided(
    tier: str,
    hypotheses: Sequence[Hypothesis],
    adjusted: list[Number],
    levels: list[float],
    margin: float | None,
    correct: Callable[[list[Number]], list[Number]],
) -> list[Verdict]:
    equivalence = correct(
        [
            _equivalence_p(hypothesis, margin) if margin else NOT_AVAILABLE
            for hypothesis in hypotheses
        ]
    )
    verdicts = []
    for hypothesis, p, level, p_equivalent in zip(
        hypotheses, adjusted, levels, equivalence, strict=True
    ):
        interval = hypothesis.comparison.interval(level)
        reading = read_verdict(
            hypothesis.comparison, p, interval, hypothesis.readings, hypothesis.without_interval
        )
        if (
            reading == hypothesis.readings[2]
            and not isinstance(p_equivalent, str)
            and p_equivalent <= ALPHA
        ):
            reading = f"as good as each other (within ±{margin:.3g})"
        verdicts.append(Verdict(hypothesis, tier, p, level, interval, reading, p_equivalent))
    return verdicts


def _equivalence_p(hypothesis: Hypothesis, margin: float) -> Number:
    """TOST of a paired test-RMSE difference (the margin is in test RMSE); "n/a" otherwise."""
    comparison = hypothesis.comparison
    if hypothesis.column == PRIMARY_CLAIM.column and isinstance(comparison, PairedComparison):
        return equivalence_p(comparison.differences, margin)
    return NOT_AVAILABLE


def untested(tier: str, hypotheses: Sequence[Hypothesis]) -> list[Verdict]:
    """The tier's hypotheses with no test run (a closed gate): the mean only."""
    return [Verdict(h, tier, NOT_AVAILABLE, 1 - ALPHA, None, NOT_TESTED) for h in hypotheses]


@dataclass(frozen=True)
class Verdicts:
    """Every verdict of the run, by tier, and what claims.md needs to explain them."""

    repeats: int
    primary: list[Verdict]
    missing_primary: list[tuple[str, str]]
    secondary: list[Verdict]
    gate_open: bool
    pairs: list[Verdict]
    baselines: list[Verdict]
    gradients: list[Verdict]
    initial_gradients: list[PairedComparison]
    margin: float
    restated: dict[tuple[str, str], PairedComparison] = field(default_factory=dict)

    @property
    def exploratory(self) -> list[Verdict]:
        return [*self.pairs, *self.baselines, *self.gradients]

    def pair_verdicts(self) -> list[Verdict]:
        """Every pair of models compared on test RMSE: the primary ones first."""
        return [*self.primary, *self.pairs]

    def metrics(self) -> dict[str, object]:
        """metrics.json entries, flat and stable whatever the tier (`dvc metrics diff` keys):
        `<first>_vs_<second>` per pair of models (test RMSE difference, wins, verdict; the
        secondary claims and claim (e) under the same key), `<model>_vs_ar` per model (the
        Diebold-Mariano squared-error difference), and `verdict_tiers.<tier>.size`."""
        metrics: dict[str, dict] = {}
        for verdict in self.pair_verdicts():
            comparison = verdict.comparison
            first_wins, second_wins = comparison.wins()
            summary = verdict.summary()
            metrics[comparison.key] = {
                "rmse_diff": {
                    "mean": comparison.mean,
                    "hodges_lehmann": comparison.hodges_lehmann,
                    "ci_low": summary["ci_low"],
                    "ci_high": summary["ci_high"],
                    "ci_level": summary["ci_level"],
                },
                "p": summary["p"],
                "p_adjusted": summary["p_adjusted"],
                "equivalence_p_adjusted": verdict.equivalence_p_adjusted,
                f"{comparison.first}_wins": first_wins,
                f"{comparison.second}_wins": second_wins,
                "verdict": summary["verdict"],
            }
        for verdict in [*self.secondary, *self.gradients]:
            key = f"{verdict.comparison.first}_vs_{verdict.comparison.second}"
            metrics.setdefault(key, {})[verdict.hypothesis.column] = verdict.summary()
        for verdict in self.baselines:
            metrics[verdict.hypothesis.key] = {"sq_error_diff": verdict.summary()}
        metrics["verdict_tiers"] = {
            PRIMARY: {"size": len(self.primary)},
            SECONDARY: {"size": len(self.secondary), "gate_open": int(self.gate_open)},
            EXPLORATORY: {"size": len(self.exploratory)},
        }
        return metrics


def assess_verdicts(
    primary: Sequence[Sequence[str]],
    equivalence_margin: float,
    per_repeat: pd.DataFrame,
    forecasts: dict[str, list[np.ndarray]],
    actual: np.ndarray,
    ar_forecast: np.ndarray,
    gradients: GradientFlow,
) -> Verdicts:
    """Every verdict of the run, tier by tier.

    `primary`: the pairs of `evaluate.primary`; a pair with an entry this configuration lacks
    is left out and listed. `equivalence_margin`: the TOST margin as a share of the AR
    baseline's test RMSE. `per_repeat`: one row per model and repeat (`test_rmse`,
    `epochs_to_converge`, `final_train_loss`, `test_error_std`); `forecasts`: each model's
    one-step test predictions per repeat, shape (T,) each, aligned with `actual` and
    `ar_forecast` (original units).
    """
    models = list(dict.fromkeys(per_repeat["model"]))
    present = [(a, b) for a, b in primary if a in models and b in models]
    missing = [(a, b) for a, b in primary if (a, b) not in present]
    ar_rmse = float(np.sqrt(np.mean((ar_forecast - actual) ** 2)))
    margin = equivalence_margin * ar_rmse
    primary_verdicts = holm_tier(
        PRIMARY, [_pair_hypothesis(per_repeat, a, b) for a, b in present], margin
    )
    gate_open = bool(primary_verdicts) and all(v.rejected for v in primary_verdicts)
    secondary = [
        _claim_hypothesis(per_repeat, a, b, claim) for a, b in present for claim in SECONDARY_CLAIMS
    ]
    chosen = {frozenset(pair) for pair in present}
    others = [pair for pair in model_pairs(models) if frozenset(pair) not in chosen]
    exploratory = fdr_tier(
        EXPLORATORY,
        [
            *(_pair_hypothesis(per_repeat, a, b) for a, b in others),
            *(_baseline_hypothesis(name, forecasts[name], actual, ar_forecast) for name in models),
            *(
                _gradient_hypothesis(gradients, a, b, "trained")
                for a, b in gradient_pairs(gradients)
            ),
        ],
        margin,
    )
    n_pairs, n_models = len(others), len(models)
    return Verdicts(
        repeats=int(per_repeat.groupby("model").size().min()),
        primary=primary_verdicts,
        missing_primary=missing,
        secondary=holm_tier(SECONDARY, secondary) if gate_open else untested(SECONDARY, secondary),
        gate_open=gate_open,
        pairs=exploratory[:n_pairs],
        baselines=exploratory[n_pairs : n_pairs + n_models],
        gradients=exploratory[n_pairs + n_models :],
        initial_gradients=[
            _gradient_hypothesis(gradients, a, b, "init").comparison
            for a, b in gradient_pairs(gradients)
        ],
        margin=margin,
        restated={
            (a, b): _paired(per_repeat, a, b, RESTATED_CLAIM.column)
            for a, b in present
            if RESTATED_CLAIM.column in per_repeat
        },
    )


def _paired(per_repeat: pd.DataFrame, first: str, second: str, column: str) -> PairedComparison:
    return PairedComparison(
        first, second, _column(per_repeat, first, column) - _column(per_repeat, second, column)
    )


def _pair_hypothesis(per_repeat: pd.DataFrame, first: str, second: str) -> Hypothesis:
    comparison = _paired(per_repeat, first, second, PRIMARY_CLAIM.column)
    readings = (f"{first} better", f"{second} better", "no difference detected")
    return Hypothesis(comparison.key, comparison, readings)


def _claim_hypothesis(
    per_repeat: pd.DataFrame, first: str, second: str, claim: Claim
) -> Hypothesis:
    comparison = _paired(per_repeat, first, second, claim.column)
    readings = ("supported", f"not supported ({second} is better)", "inconclusive")
    return Hypothesis(f"{comparison.key}:{claim.column}", comparison, readings, claim.column)


def _baseline_hypothesis(
    name: str, forecasts: list[np.ndarray], actual: np.ndarray, ar_forecast: np.ndarray
) -> Hypothesis:
    """Diebold-Mariano on the mean-over-repeats squared error per time step against the AR's:
    the model's expected loss over seeds at each step, one series the test runs over time."""
    ar_loss = (ar_forecast - actual) ** 2
    differences = np.stack([(forecast - actual) ** 2 - ar_loss for forecast in forecasts])
    loss = ar_loss + np.mean(differences, axis=0)
    enough = len(actual) >= MIN_TEST_STEPS
    test = diebold_mariano(loss, ar_loss) if enough else None
    bootstrap = block_bootstrap_interval(differences) if enough else None
    comparison = ForecastComparison(name, "ar", float(np.mean(loss - ar_loss)), test, bootstrap)
    readings = ("better than AR", "worse than AR", "no difference from AR detected")
    unavailable = f"{NOT_AVAILABLE} (fewer than {MIN_TEST_STEPS} test steps)"
    return Hypothesis(f"{name}_vs_ar", comparison, readings, "sq_error", unavailable)


def _gradient_hypothesis(gradients: GradientFlow, lstm: str, rnn: str, state: str) -> Hypothesis:
    """Claim (e): LSTM - RNN of the per-repeat log10 lag ratio; above 0 the LSTM keeps more."""
    ratios = gradients.ratios
    comparison = PairedComparison(
        lstm, rnn, ratios[lstm].per_state[state] - ratios[rnn].per_state[state]
    )
    readings = ("not supported (the RNN keeps more)", "supported", "inconclusive")
    return Hypothesis(f"{comparison.key}:grad_{state}", comparison, readings, f"grad_log10_{state}")


def gradient_pairs(gradients: GradientFlow) -> list[tuple[str, str]]:
    """Every entry of arch `lstm` with every entry of arch `rnn`."""
    lstms = [name for name, ratio in gradients.ratios.items() if ratio.arch == LSTM_ARCH]
    rnns = [name for name, ratio in gradients.ratios.items() if ratio.arch == RNN_ARCH]
    return [(lstm, rnn) for lstm in lstms for rnn in rnns]


def claims_report(
    per_repeat: pd.DataFrame,
    baselines: dict[str, float],
    verdicts: Verdicts,
    seeds: list[int],
    models: pd.DataFrame,
    gradients: GradientFlow,
    tuning: dict[str, dict] | None = None,
    fresh_checks: list[FreshSeedCheck] | None = None,
    folds: list[str] | None = None,
) -> str:
    """The whole claims.md: how verdicts are reached, the models, the tuned settings and how
    sure each choice is on fresh seeds (`fresh_checks`, `evaluation.tuning_check`), then tier
    by tier; `folds` is the `folds_section`, placed before the primary tier."""
    lines = [
        "# The reference article's claims, tested",
        "",
        f"{len(seeds)} repeat(s) per model (torch {_seed_range(seeds)}; repeat i of every "
        "model starts from that seed and trains on the same batch order, so models are "
        "compared repeat by repeat). Within a pair at the shared setting only the architecture "
        "and the initial weights differ; a tuned pair also differs in every setting tuning "
        "chose for each entry (see Tuned settings).",
        "",
        *_rule_section(verdicts),
        "",
        *_models_section(models),
        "",
        *_tuning_section(tuning or {}),
        *fresh_seed_section(fresh_checks or []),
        *(folds or []),
        *_primary_section(per_repeat, verdicts),
        "",
        *_secondary_section(per_repeat, verdicts),
        *_survival_section(verdicts),
        *_baselines_section(per_repeat, baselines, verdicts),
        "",
        *_pairs_section(verdicts.pairs),
        "",
        *_gradient_section(gradients, verdicts),
        "",
        "Written by the `evaluate` stage from `reports/plots/repeats.csv` and the test "
        "forecasts; every figure above comes from that run.",
    ]
    return "\n".join(lines) + "\n"


def _rule_section(verdicts: Verdicts) -> list[str]:
    n = verdicts.repeats
    floor = smallest_sign_flip_p(n)
    m_primary, m_secondary = len(verdicts.primary), len(verdicts.secondary)
    m_exploratory = len(verdicts.exploratory)
    return [
        "## How a verdict is reached",
        "",
        "Tiers are fixed before the run; each has its own error rate, so a verdict does not "
        "weaken because the report shows more comparisons. Each test and its interval are on "
        "the same statistic: for paired repeats the mean difference, tested by the exact "
        f"sign-flip permutation test (all 2^{n} sign patterns) with a BCa bootstrap interval "
        "of the mean; against the AR baseline the mean squared-error difference per test "
        "time step, tested by Diebold-Mariano (Newey-West variance, Harvey-Leybourne-Newbold "
        "correction, Student t) with the interval of the same statistic. Each interval is "
        "at the level the tier's correction compares its test to. A side of zero is a "
        "verdict when the test rejects and the interval lies on that side; when only one of "
        "them excludes zero the verdict says they disagree. *As good as* needs two one-sided "
        f"tests (TOST) to reject at a margin of ±{verdicts.margin:.3g} test RMSE "
        "(`evaluate.equivalence_margin` times the AR baseline's test RMSE); *no difference "
        "detected* is not *as good as*.",
        "",
        "| tier | what | tests | correction | interval level | smallest p its "
        f"{n} repeats can reach |",
        "|---|---|---|---|---|---|",
        f"| primary | test RMSE of each pair in `evaluate.primary` | {m_primary} "
        f"| Holm, family-wise {ALPHA:.0%} | {_holm_levels_text(m_primary)} "
        f"| {_number(floor)} raw, {_number(min(1.0, m_primary * floor))} Holm-adjusted |",
        f"| secondary | claims (a) and (b) of each primary pair, tested only if every primary "
        f"test rejects | {m_secondary} | Holm, family-wise {ALPHA:.0%} "
        f"| {_holm_levels_text(m_secondary)} "
        f"| {_number(min(1.0, max(m_secondary, 1) * floor))} Holm-adjusted |",
        f"| exploratory | every other pair, each model against AR, claim (e) trained "
        f"| {m_exploratory} | Benjamini-Hochberg, false discovery rate {ALPHA:.0%} "
        f"| 1 - R x {ALPHA:.0%} / m (R rejected of m) | paired tests: "
        f"{_number(floor)} to {_number(min(1.0, max(m_exploratory, 1) * floor))} "
        "BH-adjusted; Diebold-Mariano: no floor (it counts time steps) |",
        f"| descriptive | claim (e) at initialisation | {len(verdicts.initial_gradients)} "
        "| no test | none | - |",
        "",
        *_strength_note(m_primary, n, floor),
    ]


def _holm_levels_text(m: int) -> str:
    if m == 0:
        return "-"
    return ", then ".join(_percent(1 - ALPHA / k) for k in range(m, 0, -1))


def _percent(level: float) -> str:
    return f"{100 * level:.4g}%"


def _strength_note(m_primary: int, repeats: int, floor: float) -> list[str]:
    """Whether a primary verdict can be strong at all: with n repeats Holm's smallest
    adjusted p is m x 2 / 2^n."""
    if m_primary == 0:
        return ["No primary pair in this configuration: every comparison is exploratory."]
    smallest = m_primary * floor
    if smallest <= ALPHA:
        return [
            f"With {repeats} repeats a primary verdict can be strong: every repeat on one side "
            f"gives a Holm-adjusted p of {_number(smallest)}."
        ]
    needed = next(n for n in range(repeats + 1, 64) if m_primary * smallest_sign_flip_p(n) <= ALPHA)
    return [
        f"**With {repeats} repeats no primary verdict can reject**: even with every repeat on "
        f"one side the Holm-adjusted p is {m_primary} x 2 / 2^{repeats} = {_number(smallest)}; "
        f"{needed} repeats (`train.repeats`) make it possible."
    ]


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
        "settings in params.yaml. Shown: fold 0's choice; each fold tunes on its own "
        "training part (`tuning/fold_<k>/<entry>.json`).",
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


def _where(first: str, second: str) -> str:
    where = ARTICLE_PAIRS.get((first, second))
    return f" {where}" if where else ""


def _primary_section(per_repeat: pd.DataFrame, verdicts: Verdicts) -> list[str]:
    """The primary tier: claim (c), test RMSE, for each pair of `evaluate.primary`."""
    rows = [
        "## Primary: (c) the first predicts better (test RMSE, first - second, paired by "
        "repeat; negative favours the first)",
        "",
    ]
    models = set(per_repeat["model"])
    rows += [
        f"Primary pair `{a}` - `{b}` is not tested: this configuration has "
        f"{_no_entries([name for name in (a, b) if name not in models])}."
        for a, b in verdicts.missing_primary
    ]
    if not verdicts.primary:
        return [*rows, "No primary pair (`evaluate.primary`) is in this configuration."]
    rows += [
        *([""] if verdicts.missing_primary else []),
        "| pair | first mean | second mean | mean difference [interval] | level | HL "
        "| sign-flip p | Holm p | TOST p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for verdict in verdicts.primary:
        first, second = verdict.comparison.first, verdict.comparison.second
        rows.append(
            f"| {first} - {second}{_where(first, second)} "
            f"| {_number(_column(per_repeat, first, 'test_rmse').mean())} "
            f"| {_number(_column(per_repeat, second, 'test_rmse').mean())} "
            f"| {_test_columns(verdict)} | {_number(verdict.equivalence_p_adjusted)} "
            f"| **{verdict.reading}** |"
        )
    return rows


def _no_entries(names: list[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    return f"no entry {quoted[0]}" if len(quoted) == 1 else f"no entries {' and '.join(quoted)}"


def _secondary_section(per_repeat: pd.DataFrame, verdicts: Verdicts) -> list[str]:
    """Claims (a) and (b) of each primary pair, behind the gate; (d) as a restatement of (c)."""
    if not verdicts.primary:
        return []
    gate = (
        "every primary test rejected, so the gate is open"
        if verdicts.gate_open
        else "not every primary test rejected, so these claims are not tested (the means are "
        "shown for reference)"
    )
    rows = [
        "## Secondary: the article's other claims (first - second, paired by repeat; "
        "negative favours the first)",
        "",
        f"Tested only if every primary test rejects: {gate}.",
        "",
        "| pair | claim | measured as | first mean | second mean | mean difference [interval] "
        "| level | HL | sign-flip p | Holm p | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for verdict in verdicts.secondary:
        first, second = verdict.comparison.first, verdict.comparison.second
        claim = next(c for c in SECONDARY_CLAIMS if c.column == verdict.hypothesis.column)
        rows.append(
            f"| {first} - {second} | {claim.label} | {claim.measured_as} "
            f"| {_number(_column(per_repeat, first, claim.column).mean())} "
            f"| {_number(_column(per_repeat, second, claim.column).mean())} "
            f"| {_test_columns(verdict)} | **{verdict.reading}** |"
        )
    for (first, second), restated in verdicts.restated.items():
        rows.append(
            f"| {first} - {second} | {RESTATED_CLAIM.label} | {RESTATED_CLAIM.measured_as} "
            f"| {_number(_column(per_repeat, first, RESTATED_CLAIM.column).mean())} "
            f"| {_number(_column(per_repeat, second, RESTATED_CLAIM.column).mean())} "
            f"| {_number(restated.mean, signed=True)} | | | | | restates (c), no test |"
        )
    return [
        *rows,
        "",
        "(d) is not a test of its own: RMSE² = (mean error)² + (std of the errors)² "
        "(up to n / (n - 1)), so with a small mean error a lower std is a lower RMSE, which "
        "the primary tier tests.",
        "",
    ]


def _survival_section(verdicts: Verdicts) -> list[str]:
    """Each claim's verdict at the shared setting beside its verdict after tuning."""
    by_pair = {(v.comparison.first, v.comparison.second): v for v in verdicts.primary}
    if not all(pair in by_pair for pair in ARTICLE_PAIRS):
        return []
    (tuned, shared) = ARTICLE_PAIRS
    secondary = {(v.comparison.key, v.hypothesis.column): v for v in verdicts.secondary}
    rows = [
        "## Does each claim survive tuning?",
        "",
        f"| claim | shared setting (`{shared[0]}` vs `{shared[1]}`) "
        f"| tuned (`{tuned[0]}` vs `{tuned[1]}`) |",
        "|---|---|---|",
    ]
    for claim in SECONDARY_CLAIMS:
        cells = [secondary[(f"{a}_vs_{b}", claim.column)].reading for a, b in (shared, tuned)]
        rows.append(f"| {claim.label} | {cells[0]} | {cells[1]} |")
    rows.append(f"| {PRIMARY_CLAIM.label} | {by_pair[shared].reading} | {by_pair[tuned].reading} |")
    return [*rows, ""]


def _test_columns(verdict: Verdict) -> str:
    """Mean [interval] | level | HL | p | adjusted p, as table cells."""
    comparison = verdict.comparison
    hodges_lehmann = getattr(comparison, "hodges_lehmann", NOT_AVAILABLE)
    return (
        f"{_with_interval(comparison.mean, verdict.interval, signed=True)} "
        f"| {'-' if verdict.reading == NOT_TESTED else _percent(verdict.level)} "
        f"| {_number(hodges_lehmann, signed=True)} "
        f"| {_number(verdict.p)} | {_number(verdict.p_adjusted)}"
    )


def _baselines_section(
    per_repeat: pd.DataFrame, baselines: dict[str, float], verdicts: Verdicts
) -> list[str]:
    """Where each model stands against the baselines, the AR one above all (exploratory)."""
    persistence, autoregressive = baselines["persistence"], baselines["ar"]
    rows = [
        "## Exploratory: against the baselines",
        "",
        "Each model's squared error per test time step, averaged over its repeats, minus the "
        "linear AR's at the same step: its mean is the difference of mean squared errors "
        "(squared original units; negative favours the model), tested over time by "
        "Diebold-Mariano over every fold's scored block in time order; the interval uses the "
        "same standard error. The block-bootstrap interval resamples repeats and blocks of "
        "time steps together (moving blocks of ceil(T^(1/3)) steps), so it holds the seeds' "
        "and the test period's variation at once.",
        "",
        "| forecaster | test RMSE mean [95% CI] | MSE minus AR's [interval] | level "
        "| block bootstrap 95% | DM p | BH p | repeats better than persistence "
        "| repeats better than AR | against the AR baseline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for verdict in verdicts.baselines:
        name = verdict.comparison.first
        rmse = _column(per_repeat, name, "test_rmse")
        rows.append(
            f"| {name} | {_with_interval(rmse.mean(), mean_interval(rmse))} "
            f"| {_with_interval(verdict.comparison.mean, verdict.interval, signed=True)} "
            f"| {_percent(verdict.level)} | {_bootstrap_text(verdict.comparison)} "
            f"| {_number(verdict.comparison.p)} "
            f"| {_number(verdict.p_adjusted)} "
            f"| {int(np.sum(rmse < persistence))} of {len(rmse)} "
            f"| {int(np.sum(rmse < autoregressive))} of {len(rmse)} | **{verdict.reading}** |"
        )
    rows += [
        f"| {BASELINE_LABELS[key]} | {_number(value)} | | | | | | | | |"
        for key, value in baselines.items()
    ]
    return rows


def _bootstrap_text(comparison: Comparison) -> str:
    bootstrap = getattr(comparison, "bootstrap", None)
    if bootstrap is None:
        return NOT_AVAILABLE
    return f"[{_number(bootstrap.low, signed=True)}, {_number(bootstrap.high, signed=True)}]"


@dataclass(frozen=True)
class FoldBlock:
    """Where fold `fold` trains and what it scores: values [0, origin) and [origin, end)."""

    fold: int
    origin: int
    end: int


def fold_differences(per_fold_repeat: pd.DataFrame, first: str, second: str) -> np.ndarray:
    """Test RMSE of `first` minus `second` per fold (rows, fold order) and repeat (columns):
    shape (F, R), from a table with one row per fold, model and repeat."""
    folds = sorted(per_fold_repeat["fold"].unique())
    by_fold = [per_fold_repeat[per_fold_repeat["fold"] == fold] for fold in folds]
    return np.stack(
        [_column(rows, first, "test_rmse") - _column(rows, second, "test_rmse") for rows in by_fold]
    )


def fold_variance_splits(
    per_fold_repeat: pd.DataFrame, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], VarianceSplit]:
    """Each pair's test-RMSE difference split between folds and seeds (`variance_split`);
    empty with one fold or one repeat, where there is nothing to split."""
    if per_fold_repeat["fold"].nunique() < 2 or per_fold_repeat["repeat"].nunique() < 2:
        return {}
    return {
        (first, second): variance_split(fold_differences(per_fold_repeat, first, second))
        for first, second in pairs
    }


def folds_section(
    blocks: list[FoldBlock], per_fold_repeat: pd.DataFrame, pairs: Sequence[tuple[str, str]]
) -> list[str]:
    """The folds: where each trains and scores, each primary pair's difference per fold and
    how its spread splits between folds and seeds."""
    rows = [
        "## Folds (rolling origin)",
        "",
        "| fold | trains on values | scores values |",
        "|---|---|---|",
        *(f"| {b.fold} | 1-{b.origin:,} | {b.origin + 1:,}-{b.end:,} |" for b in blocks),
        "",
        "Each fold's scaler, tuning and training see only its training part. A repeat's "
        "statistic in every table below is its mean over the folds; the paired tests take the "
        "repeats as their units, since a seed starts the same repeat in every fold. Figures "
        "of single forecasts, the multi-step horizon, the gradient flow and the fresh-seed "
        "check are fold 0's.",
    ]
    splits = fold_variance_splits(per_fold_repeat, pairs)
    if not splits:
        return [*rows, ""]
    folds = [b.fold for b in blocks]
    rows += [
        "",
        "Test RMSE difference of each primary pair (first - second), mean over repeats per "
        "fold, and its variance split between folds (the test period and training length), "
        "seeds (a repeat's own effect in every fold) and what is left (seed x fold):",
        "",
        "| pair | " + " | ".join(f"fold {fold}" for fold in folds) + " | pooled "
        "| folds | seeds | seed x fold |",
        "|---|" + "---|" * len(folds) + "---|---|---|---|",
    ]
    for (first, second), split in splits.items():
        table = fold_differences(per_fold_repeat, first, second)
        shares = split.shares()
        rows.append(
            f"| {first} - {second} | "
            + " | ".join(_number(value, signed=True) for value in table.mean(axis=1))
            + f" | {_number(float(table.mean()), signed=True)} "
            f"| {shares['fold']:.0%} | {shares['seed']:.0%} | {shares['interaction']:.0%} |"
        )
    return [*rows, ""]


def _pairs_section(pairs: list[Verdict]) -> list[str]:
    rows = [
        "## Exploratory: every other pair of models (test RMSE, first - second, paired by repeat)",
        "",
    ]
    if not pairs:
        return [*rows, "No other pair."]
    rows += [
        "| pair | mean difference [interval] | level | HL | sign-flip p | BH p | TOST p (BH) "
        "| first wins | second wins | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for verdict in pairs:
        comparison = verdict.comparison
        first_wins, second_wins = comparison.wins()
        rows.append(
            f"| {comparison.first} - {comparison.second} | {_test_columns(verdict)} "
            f"| {_number(verdict.equivalence_p_adjusted)} | {first_wins:.0%} "
            f"| {second_wins:.0%} | **{verdict.reading}** |"
        )
    return rows


def _gradient_section(gradients: GradientFlow, verdicts: Verdicts) -> list[str]:
    """(e), read off the paired log10 lag ratios of every entry of arch `lstm` against every
    entry of arch `rnn`: trained (exploratory) and at initialisation (descriptive)."""
    oldest = gradients.oldest_lag
    rows = [
        "## (e) the RNN's gradients vanish over long lags, the LSTM's keep them",
        "",
        f"Measured as the sensitivity of the forecast to its input k steps back, |dŷ/dx(t-k)| "
        f"(`reports/plots/grad_sensitivity.csv`, `figures/gradient_flow.png`): per repeat, the "
        f"median over test windows at the oldest lag k = {oldest} divided by the median at "
        f"k = 0. Compared as LSTM - RNN of its log10, paired by repeat: above 0 the LSTM "
        f"keeps more of its oldest input. Trained weights are exploratory (Benjamini-Hochberg "
        f"with the other exploratory tests); the weights at initialisation are descriptive: "
        f"they describe where training starts, and are not tested.",
        "",
    ]
    pairs = gradient_pairs(gradients)
    if not pairs:
        entries = ", ".join(f"`{name}` ({r.arch})" for name, r in gradients.ratios.items())
        return [
            *rows,
            f"n/a: the claim needs an entry of arch `{LSTM_ARCH}` and one of arch `{RNN_ARCH}`; "
            f"this configuration has {entries}.",
        ]
    rows += [
        f"| LSTM entry - RNN entry | weights | RNN ratio k={oldest} / k=0, median of repeats "
        "| LSTM ratio | LSTM - RNN, log10 ratio mean [interval] | level | HL | sign-flip p "
        "| BH p | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (lstm, rnn), trained, initial in zip(
        pairs, verdicts.gradients, verdicts.initial_gradients, strict=True
    ):
        rows.append(
            f"| {lstm} - {rnn} | trained | {_median_ratio(gradients, rnn, 'trained')} "
            f"| {_median_ratio(gradients, lstm, 'trained')} | {_test_columns(trained)} "
            f"| **exploratory: {trained.reading}** |"
        )
        rows.append(
            f"| {lstm} - {rnn} | at initialisation | {_median_ratio(gradients, rnn, 'init')} "
            f"| {_median_ratio(gradients, lstm, 'init')} "
            f"| {_number(initial.mean, signed=True)} | | "
            f"{_number(initial.hodges_lehmann, signed=True)} | | | descriptive, no test |"
        )
    return rows


def _median_ratio(gradients: GradientFlow, name: str, state: str) -> str:
    return _number(10 ** np.median(gradients.ratios[name].per_state[state]))


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
