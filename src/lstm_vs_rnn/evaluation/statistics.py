"""Repeated trainings summarised as intervals, and every pair of models compared repeat by repeat.

One training per model is one draw from a distribution over seeds: the order of two models can
flip from one seed to the next. So each model is trained `train.repeats` times (seeds
`train.seed + i`, repeat i of every model on the same batch order) and judged by the mean over
repeats with a 95% bootstrap interval; two models are judged by their paired per-repeat
differences, whose interval decides the verdict. With one repeat there is no interval: every
statistic that needs more than one value is "n/a".
"""

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
# Fixed, so the same per-repeat values give the same interval on every run.
BOOTSTRAP_SEED = 20_240_101
NOT_AVAILABLE = "n/a"

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


def verdict_from_interval(
    interval: Interval | None, if_negative: str, if_positive: str, if_straddling: str
) -> str:
    """The reading of a difference's interval: which side of zero it lies on, if either."""
    if interval is None:
        return f"{NOT_AVAILABLE} (one repeat: no interval)"
    if interval.high < 0:
        return if_negative
    if interval.low > 0:
        return if_positive
    return if_straddling


@dataclass(frozen=True)
class PairedComparison:
    """Model `first` against model `second`, on differences `first - second` per repeat."""

    first: str
    second: str
    differences: np.ndarray

    @property
    def key(self) -> str:
        return f"{self.first}_vs_{self.second}"

    @property
    def interval(self) -> Interval | None:
        return mean_interval(self.differences)

    @property
    def verdict(self) -> str:
        return verdict_from_interval(
            self.interval,
            if_negative=f"{self.first} better",
            if_positive=f"{self.second} better",
            if_straddling="no difference detected",
        )

    def summary(self) -> dict[str, Number | dict[str, Number]]:
        """For metrics.json: the RMSE difference's mean and interval, the test, the win shares."""
        interval = self.interval
        n = len(self.differences)
        return {
            "rmse_diff": {
                "mean": float(np.mean(self.differences)),
                "ci95_low": interval.low if interval else NOT_AVAILABLE,
                "ci95_high": interval.high if interval else NOT_AVAILABLE,
            },
            "wilcoxon_p": wilcoxon_p(self.differences),
            f"{self.first}_wins": float(np.sum(self.differences < 0) / n),
            f"{self.second}_wins": float(np.sum(self.differences > 0) / n),
            "verdict": self.verdict,
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
