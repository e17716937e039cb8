"""Repeated trainings summarised as intervals, and every pair of models compared repeat by repeat.

One training per model is one draw from a distribution over seeds: the order of two models can
flip from one seed to the next. So each model is trained `train.repeats` times (seeds
`train.seed + i`, repeat i of every model on the same batch order) and judged by the mean over
repeats with a 95% bootstrap interval; two models are judged by their paired per-repeat
differences. A verdict on a difference needs two methods to agree (`decide`): its BCa interval
(Efron 1987) must exclude zero and the Wilcoxon signed-rank test (Wilcoxon 1945) of the same
differences must reject at 5% after Holm's step-down correction (Holm 1979) over every verdict
of the run (`holm_family`). The interval alone gives a "weak" verdict. Beside the mean, the
Hodges-Lehmann estimate (Hodges & Lehmann 1963), the median of the Walsh averages, is the
difference one unusual repeat cannot pull. With one repeat there is no interval: every
statistic that needs more than one value is "n/a".
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import combinations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
# Fixed, so the same per-repeat values give the same interval on every run.
BOOTSTRAP_SEED = 20_240_101
NOT_AVAILABLE = "n/a"
# The family-wise error rate of the verdicts of one run (Holm-adjusted p-values below it reject).
FAMILY_WISE_ALPHA = 0.05
WEAK = "weak"

Number = float | str  # a statistic, or NOT_AVAILABLE when there are too few repeats


@dataclass(frozen=True)
class Interval:
    """A 95% confidence interval of a mean; `None` stands for "n/a" (fewer than 2 values)."""

    low: float
    high: float


def mean_interval(values: np.ndarray) -> Interval | None:
    """BCa bootstrap interval of the mean (percentile where BCa is undefined).

    BCa corrects the percentile interval's bias and skew, which matter with ~10 repeats, but it
    is undefined when every resample has the same mean (identical values) and can come out NaN
    for very few distinct values; the percentile interval is the fallback then.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    if np.ptp(values) == 0:
        return Interval(float(values[0]), float(values[0]))
    for method in ("BCa", "percentile"):
        result = stats.bootstrap(
            (values,),
            np.mean,
            confidence_level=CONFIDENCE,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method=method,
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        )
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return Interval(float(low), float(high))
    raise AssertionError("the percentile bootstrap interval of finite values is finite")


def summarise(values: np.ndarray) -> dict[str, Number]:
    """Mean, median, sample std, min, max and the mean's 95% interval of per-repeat values."""
    values = np.asarray(values, dtype=np.float64)
    interval = mean_interval(values)
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else NOT_AVAILABLE,
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "ci95_low": interval.low if interval else NOT_AVAILABLE,
        "ci95_high": interval.high if interval else NOT_AVAILABLE,
    }


def wilcoxon_p(differences: np.ndarray) -> Number:
    """Two-sided Wilcoxon signed-rank p-value; n/a below 2 repeats or with no non-zero pair."""
    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) < 2 or not np.any(differences):
        return NOT_AVAILABLE
    return float(stats.wilcoxon(differences).pvalue)


def hodges_lehmann(differences: np.ndarray) -> float:
    """The one-sample Hodges-Lehmann estimate: the median of the Walsh averages.

    The Walsh averages are (d_i + d_j) / 2 over every i <= j (n(n+1)/2 of them, each value
    with itself included); their median is the location estimate that goes with the signed-rank
    test (Hodges & Lehmann, "Estimates of location based on rank tests", Ann. Math. Statist. 34,
    1963; Hollander & Wolfe, "Nonparametric Statistical Methods", section 3.2). Same units as
    `differences`, shape (n,) -> scalar; n >= 1.
    """
    values = np.asarray(differences, dtype=np.float64)
    first, second = np.triu_indices(len(values))
    return float(np.median((values[first] + values[second]) / 2))


def holm_adjusted(p_values: list[Number]) -> list[Number]:
    """Holm's step-down adjusted p-values, in the order given; "n/a" stays "n/a".

    With the m available p-values sorted p_(1) <= ... <= p_(m), the adjusted p_(k) is
    max over j <= k of min(1, (m - j + 1) p_(j)): rejecting where it is below alpha keeps the
    family-wise error rate at alpha under any dependence (Holm, "A simple sequentially
    rejective multiple test procedure", Scand. J. Statist. 6, 1979; statsmodels'
    `multipletests(method="holm")` computes the same). A test with no p-value cannot reject
    and does not count in m.
    """
    available = [(p, index) for index, p in enumerate(p_values) if not isinstance(p, str)]
    adjusted: list[Number] = list(p_values)
    running, m = 0.0, len(available)
    for rank, (p, index) in enumerate(sorted(available)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def decide(
    interval: Interval | None,
    p_holm: Number,
    if_negative: str,
    if_positive: str,
    if_straddling: str,
) -> str:
    """The verdict on a difference: the side of zero it lies on, if two methods agree.

    `if_negative` / `if_positive` when the interval lies wholly on that side of zero and the
    Holm-adjusted signed-rank p-value is below FAMILY_WISE_ALPHA; "weak: ..." when only the
    interval excludes zero; `if_straddling` when it does not; "n/a" without an interval.
    """
    if interval is None:
        return f"{NOT_AVAILABLE} (one repeat: no interval)"
    if interval.high < 0:
        reading = if_negative
    elif interval.low > 0:
        reading = if_positive
    else:
        return if_straddling
    if isinstance(p_holm, str) or p_holm >= FAMILY_WISE_ALPHA:
        return f"{WEAK}: {reading}"
    return reading


@dataclass(frozen=True)
class PairedComparison:
    """`first` against `second`, on their differences `first - second` per repeat.

    Each statistic is computed once, on first use (the interval is 10,000 bootstrap
    resamples). `p_holm` is the signed-rank p-value adjusted over the run's family of verdicts;
    "n/a" until `holm_family` sets it, so an uncorrected comparison can only be "weak".
    """

    first: str
    second: str
    differences: np.ndarray
    p_holm: Number = NOT_AVAILABLE

    @property
    def key(self) -> str:
        return f"{self.first}_vs_{self.second}"

    @cached_property
    def interval(self) -> Interval | None:
        return mean_interval(self.differences)

    @cached_property
    def wilcoxon_p(self) -> Number:
        return wilcoxon_p(self.differences)

    @cached_property
    def hodges_lehmann(self) -> float:
        return hodges_lehmann(self.differences)

    @property
    def mean(self) -> float:
        return float(np.mean(self.differences))

    def reading(self, if_negative: str, if_positive: str, if_straddling: str) -> str:
        """The verdict (`decide`) with the readings of each side of zero given."""
        return decide(self.interval, self.p_holm, if_negative, if_positive, if_straddling)

    @property
    def verdict(self) -> str:
        return self.reading(
            if_negative=f"{self.first} better",
            if_positive=f"{self.second} better",
            if_straddling="no difference detected",
        )

    def summary(self) -> dict[str, Number | dict[str, Number]]:
        """For metrics.json: the RMSE difference's mean, Hodges-Lehmann estimate and interval,
        the raw and Holm-adjusted signed-rank p-values, the win shares and the verdict."""
        interval = self.interval
        n = len(self.differences)
        return {
            "rmse_diff": {
                "mean": self.mean,
                "hodges_lehmann": self.hodges_lehmann,
                "ci95_low": interval.low if interval else NOT_AVAILABLE,
                "ci95_high": interval.high if interval else NOT_AVAILABLE,
            },
            "wilcoxon_p": self.wilcoxon_p,
            "p_holm": self.p_holm,
            f"{self.first}_wins": float(np.sum(self.differences < 0) / n),
            f"{self.second}_wins": float(np.sum(self.differences > 0) / n),
            "verdict": self.verdict,
        }


def holm_family(tests: Mapping[str, PairedComparison]) -> dict[str, PairedComparison]:
    """The same comparisons with `p_holm` set, Holm-adjusted over all of them (one run's
    verdicts: every pair of models and every claim)."""
    adjusted = holm_adjusted([test.wilcoxon_p for test in tests.values()])
    return {
        key: replace(test, p_holm=p) for (key, test), p in zip(tests.items(), adjusted, strict=True)
    }


def model_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every pair once, each later entry against each earlier one (`lstm` vs `rnn`)."""
    return [(later, earlier) for earlier, later in combinations(names, 2)]


def paired_comparisons(per_repeat: dict[str, np.ndarray]) -> list[PairedComparison]:
    """Each pair of models compared on their per-repeat values (repeat i against repeat i)."""
    return [
        PairedComparison(first, second, per_repeat[first] - per_repeat[second])
        for first, second in model_pairs(list(per_repeat))
    ]
