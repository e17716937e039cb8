"""Repeated trainings summarised as intervals, and models compared repeat by repeat and over time.

One training per model is one draw from a distribution over seeds: the order of two models can
flip from one seed to the next. So each model is trained `train.repeats` times (seeds
`train.seed + i`, repeat i of every model on the same batch order) and two models are compared
on their paired per-repeat differences.

A test and its interval are on the same statistic, the mean paired difference:

- `sign_flip_p`: the exact paired permutation test of that mean (every one of the 2^n sign
  patterns of the n differences; Fisher 1935, Pitman 1937; the p-values of
  `scipy.stats.permutation_test` with `permutation_type="samples"`). Chosen over the
  Wilcoxon signed-rank test because its statistic is the mean, the number the report and the
  bootstrap interval give; Wilcoxon's estimate would be the Hodges-Lehmann median, a
  different number.
- `mean_interval`: the bootstrap (BCa, Efron 1987) interval of the mean, at the confidence level
  the tier's multiplicity correction gives that test (`holm_levels`, `fdr_level`).
- `equivalence_p`: two one-sided tests (TOST; Schuirmann 1987, Lakens 2017) with the same
  permutation test, so "as good as" rests on a rejection, not on a failure to reject.
- `diebold_mariano`: two forecasts of the same series on their per-time-step losses, with a
  Newey-West (HAC) variance and the Harvey-Leybourne-Newbold small-sample correction.
- `block_bootstrap_interval`: a moving-block bootstrap interval over time blocks (and seeds).
- `variance_split`: how much of the spread of a (fold, repeat) table is due to folds, to seeds,
  and to their interaction.

Corrections: Holm's step-down (`holm_adjusted`) keeps the family-wise error rate;
Benjamini-Hochberg (`scipy.stats.false_discovery_control`) the false discovery rate of an
exploratory family. With one repeat there is no interval: every statistic that needs more than
one value is "n/a".
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
# Fixed, so the same values give the same interval on every run.
BOOTSTRAP_SEED = 20_240_101
NOT_AVAILABLE = "n/a"
# Up to 2^EXACT_MAX_REPEATS sign patterns are enumerated (an exact p-value); beyond, this many
# random patterns from BOOTSTRAP_SEED (a Monte Carlo p-value, exact in expectation).
EXACT_MAX_REPEATS = 16
RANDOM_SIGN_PATTERNS = 9_999  # SciPy's default n_resamples: the smallest p is 1 / 10,000
# Sign patterns evaluated at once: bounds memory at batch x repeats x 8 bytes (32 MB at the
# largest train.repeats, 1000).
PERMUTATION_BATCH = 4096

Number = float | str  # a statistic, or NOT_AVAILABLE when there are too few values


@dataclass(frozen=True)
class Interval:
    """A confidence interval of a mean; `None` stands for "n/a" (fewer than 2 values)."""

    low: float
    high: float

    def side(self) -> int:
        """-1 wholly below zero, +1 wholly above, 0 when it holds zero."""
        return -1 if self.high < 0 else 1 if self.low > 0 else 0


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> Interval | None:
    """BCa bootstrap interval of the mean at `confidence` (percentile where BCa is undefined).

    BCa (Efron, "Better bootstrap confidence intervals", JASA 82, 1987) corrects the
    percentile interval's bias and skew, but like every bootstrap interval it under-covers
    with few values (about 89% for a nominal 95% at n = 10 on normal data, simulated here;
    Colas et al., "How Many Random Seeds?", 2018). It is undefined when every resample has the
    same mean and can come out NaN for very few distinct values; the percentile interval is the
    fallback then. `values` shape (n,); None for n < 2.
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
            confidence_level=confidence,
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


def sign_flip_p(differences: np.ndarray, alternative: str = "two-sided") -> Number:
    """The paired permutation (sign-flip) test of "the mean difference is zero".

    Under the null the differences are symmetric about zero, so each of the 2^n patterns of
    their signs is equally likely; the one-sided p-value is the share of patterns whose mean
    is at least as extreme as the observed one, the two-sided one twice the smaller one-sided
    p, at most 1 (Pitman, "Significance tests which may be applied to samples from any
    populations", JRSS Suppl. 4, 1937). Exact (every pattern enumerated) for
    n <= EXACT_MAX_REPEATS; beyond, RANDOM_SIGN_PATTERNS random patterns from BOOTSTRAP_SEED
    with the p-value (count + 1) / (patterns + 1) (Phipson & Smyth, "Permutation p-values
    should never be zero", SAGMB 9, 2010). The same p-values as `scipy.stats.permutation_test`
    with `permutation_type="samples"` on one sample (tests/test_statistics.py), in NumPy
    directly: SciPy's took 1.1 s at n = 16 and 14 s at n = 1000 here.
    `alternative`: "two-sided", "less" (mean below 0) or "greater".
    Shape (n,) -> p in (0, 1]; "n/a" for n < 2 or when every difference is 0.
    """
    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) < 2 or not np.any(differences):
        return NOT_AVAILABLE
    observed = float(np.mean(differences))
    # Patterns that equal the observed mean must count despite float rounding.
    tolerance = 1e-12 * float(np.mean(np.abs(differences)))
    at_least = at_most = total = 0
    for means in _sign_flip_means(differences):
        at_least += int(np.sum(means >= observed - tolerance))
        at_most += int(np.sum(means <= observed + tolerance))
        total += len(means)
    if len(differences) > EXACT_MAX_REPEATS:
        greater, less = (at_least + 1) / (total + 1), (at_most + 1) / (total + 1)
    else:
        greater, less = at_least / total, at_most / total
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(1.0, 2 * min(greater, less))


def _sign_flip_means(differences: np.ndarray) -> Iterator[np.ndarray]:
    """The mean of the differences under sign patterns, PERMUTATION_BATCH at a time: every
    pattern for n <= EXACT_MAX_REPEATS, else RANDOM_SIGN_PATTERNS random ones."""
    n = len(differences)
    if n <= EXACT_MAX_REPEATS:
        for start in range(0, 2**n, PERMUTATION_BATCH):
            codes = np.arange(start, min(start + PERMUTATION_BATCH, 2**n))
            signs = 1.0 - 2.0 * ((codes[:, None] >> np.arange(n)) & 1)
            yield signs @ differences / n
        return
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    for start in range(0, RANDOM_SIGN_PATTERNS, PERMUTATION_BATCH):
        size = min(PERMUTATION_BATCH, RANDOM_SIGN_PATTERNS - start)
        signs = np.where(rng.random((size, n)) < 0.5, -1.0, 1.0)
        yield signs @ differences / n


def smallest_sign_flip_p(repeats: int) -> float:
    """The smallest two-sided p `sign_flip_p` can give with `repeats` non-zero differences:
    the observed pattern and its mirror image are the only ones as extreme, 2 of 2^n."""
    return min(1.0, 2.0 / 2.0**repeats)


def equivalence_p(differences: np.ndarray, margin: float) -> Number:
    """Two one-sided tests (TOST) of "the mean difference lies outside [-margin, +margin]".

    Both one-sided sign-flip tests must reject: d + margin has a mean above zero, and
    d - margin one below zero; the TOST p-value is the larger of the two (Schuirmann, J.
    Pharmacokin. Biopharm. 15, 1987; Lakens, "Equivalence Tests", Soc. Psychol. Personal. Sci.
    8, 2017). A rejection says the difference is within the margin: "as good as". `margin` > 0,
    in the units of `differences`. Shape (n,) -> p; "n/a" for n < 2.
    """
    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) < 2:
        return NOT_AVAILABLE
    above = sign_flip_p(differences + margin, alternative="greater")
    below = sign_flip_p(differences - margin, alternative="less")
    return max(1.0 if isinstance(p, str) else p for p in (above, below))


def hodges_lehmann(differences: np.ndarray) -> float:
    """The one-sample Hodges-Lehmann estimate: the median of the Walsh averages.

    The Walsh averages are (d_i + d_j) / 2 over every i <= j (n(n+1)/2 of them, each value
    with itself included); their median is a location estimate one unusual value cannot pull
    (Hodges & Lehmann, "Estimates of location based on rank tests", Ann. Math. Statist. 34,
    1963). Same units as `differences`, shape (n,) -> scalar; n >= 1.
    """
    values = np.asarray(differences, dtype=np.float64)
    first, second = np.triu_indices(len(values))
    return float(np.median((values[first] + values[second]) / 2))


def holm_adjusted(p_values: list[Number]) -> list[Number]:
    """Holm's step-down adjusted p-values, in the order given; "n/a" stays "n/a".

    With the m available p-values sorted p_(1) <= ... <= p_(m), the adjusted p_(k) is
    max over j <= k of min(1, (m - j + 1) p_(j)): rejecting where it is at most alpha keeps the
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


def holm_levels(p_values: list[Number], alpha: float) -> list[float]:
    """The confidence level of each test's interval under Holm: 1 - alpha / (m - k + 1) for
    the test of rank k (by raw p, ties in the order given), the level at which Holm's step k
    compares its p-value; with m = 2, 97.5% for the first and 95% for the second. These are
    per-test intervals that match their tests, not simultaneous ones (Strassburger & Bretz,
    "Compatible simultaneous lower confidence bounds for the Holm procedure", Stat. Med. 27,
    2008, show simultaneous ones are wider). A test without a p-value gets the first level."""
    available = sorted((p, index) for index, p in enumerate(p_values) if not isinstance(p, str))
    m = len(available)
    levels = [1 - alpha / max(m, 1)] * len(p_values)
    for rank, (_, index) in enumerate(available):
        levels[index] = 1 - alpha / (m - rank)
    return levels


def fdr_adjusted(p_values: list[Number]) -> list[Number]:
    """Benjamini-Hochberg adjusted p-values (`scipy.stats.false_discovery_control`, method
    "bh"): rejecting where they are at most q keeps the expected share of false discoveries
    at q for independent or positively dependent tests (Benjamini & Hochberg, JRSS B 57,
    1995). "n/a" stays "n/a" and does not count."""
    available = [index for index, p in enumerate(p_values) if not isinstance(p, str)]
    adjusted: list[Number] = list(p_values)
    if available:
        values = stats.false_discovery_control([p_values[i] for i in available], method="bh")
        for index, value in zip(available, values, strict=True):
            adjusted[index] = float(value)
    return adjusted


def fdr_level(rejected: int, m: int, q: float) -> float:
    """The false-coverage-rate adjusted confidence level 1 - R q / m of an interval of a
    family where Benjamini-Hochberg rejected R of m tests at level q (at least one R counted),
    Benjamini & Yekutieli, "False discovery rate-adjusted multiple confidence intervals for
    selected parameters", JASA 100, 2005."""
    return 1 - max(rejected, 1) * q / max(m, 1)


def newey_west_variance(series: np.ndarray, lags: int) -> float:
    """Long-run variance of a series with Bartlett weights 1 - k/(lags+1) on its first `lags`
    autocovariances (Newey & West, "A simple, positive semi-definite, heteroskedasticity and
    autocorrelation consistent covariance matrix", Econometrica 55, 1987). Shape (T,);
    autocovariances divide by T. Non-negative by construction."""
    centred = np.asarray(series, dtype=np.float64) - np.mean(series)
    n = len(centred)
    variance = float(centred @ centred) / n
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1 - lag / (lags + 1)
        variance += 2 * weight * float(centred[lag:] @ centred[:-lag]) / n
    return max(variance, 0.0)


def newey_west_lags(n_times: int) -> int:
    """The common rule-of-thumb bandwidth floor(4 (T/100)^(2/9)) (Newey & West, "Automatic lag
    selection in covariance matrix estimation", Rev. Econ. Stud. 61, 1994)."""
    return int(np.floor(4 * (n_times / 100) ** (2 / 9)))


@dataclass(frozen=True)
class DieboldMariano:
    """The Diebold-Mariano test of equal expected loss of two forecasts of one series.

    `mean` is the mean loss differential (first - second; below 0 the first forecasts
    better), `p` the two-sided p-value of the HLN-corrected statistic against Student's t
    with T - 1 degrees of freedom, and `interval(level)` the interval of the mean with the
    same standard error and distribution, so it excludes 0 exactly when p < 1 - level.
    """

    mean: float
    standard_error: float
    n_times: int
    statistic: float
    p: float

    def interval(self, level: float) -> Interval:
        half = stats.t.ppf(0.5 + level / 2, self.n_times - 1) * self.standard_error
        return Interval(self.mean - half, self.mean + half)


def diebold_mariano(
    loss_first: np.ndarray, loss_second: np.ndarray, horizon: int = 1, lags: int | None = None
) -> DieboldMariano:
    """Test whether two forecasts of the same T time steps have the same expected loss.

    d_t = loss_first[t] - loss_second[t]; the statistic is mean(d) / sqrt(V / T) with V the
    Newey-West long-run variance of d (`lags` default `newey_west_lags(T)`, at least
    `horizon` - 1), multiplied by the Harvey-Leybourne-Newbold factor
    sqrt((T + 1 - 2h + h(h - 1)/T) / T) and compared with Student's t on T - 1 degrees of
    freedom (Diebold & Mariano, "Comparing predictive accuracy", JBES 13, 1995; Harvey,
    Leybourne & Newbold, "Testing the equality of prediction mean squared errors", IJF 13,
    1997). Shapes (T,), T >= 3; losses are typically squared errors. Identical losses give
    p = 1 and a zero-width interval.
    """
    differential = np.asarray(loss_first, dtype=np.float64) - np.asarray(
        loss_second, dtype=np.float64
    )
    n = len(differential)
    if n < 3:
        raise ValueError(f"Diebold-Mariano needs at least 3 time steps, got {n}")
    lags = max(newey_west_lags(n) if lags is None else lags, horizon - 1)
    mean = float(np.mean(differential))
    correction = np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    standard_error = float(np.sqrt(newey_west_variance(differential, lags) / n) / correction)
    if standard_error == 0:
        statistic, p = (0.0, 1.0) if mean == 0 else (float(np.copysign(np.inf, mean)), 0.0)
    else:
        statistic = mean / standard_error
        p = float(2 * stats.t.sf(abs(statistic), n - 1))
    return DieboldMariano(mean, standard_error, n, statistic, p)


def block_length(n_times: int) -> int:
    """A default moving-block length, ceil(T^(1/3)): the rate that minimises the error of a
    block-bootstrap variance (Hall, Horowitz & Jing, Biometrika 82, 1995; Lahiri, "Resampling
    Methods for Dependent Data", 2003, ch. 7)."""
    return max(1, int(np.ceil(n_times ** (1 / 3))))


def moving_block_indices(n_times: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """One moving-block bootstrap resample of the time indices 0..T-1: ceil(T/length) blocks
    of `length` consecutive indices, each starting uniformly in [0, T - length], laid end to
    end and cut to T (Künsch, "The jackknife and the bootstrap for general stationary
    observations", Ann. Statist. 17, 1989). Shape (T,)."""
    length = min(length, n_times)
    starts = rng.integers(0, n_times - length + 1, size=-(-n_times // length))
    return (starts[:, None] + np.arange(length)).ravel()[:n_times]


def block_bootstrap_interval(
    values: np.ndarray,
    confidence: float = CONFIDENCE,
    length: int | None = None,
    statistic: Callable[[np.ndarray], float] | None = None,
    n_resamples: int = 2_000,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """Percentile interval of `statistic` over a moving-block bootstrap of the time axis.

    `values` shape (T,) or (R, T, ...): one series, or one row per repeat (seed) on the same
    time steps, with optional trailing axes (e.g. two forecasts' squared errors). For (T,)
    each resample is `moving_block_indices` of the time axis; for (R, T, ...) also R rows
    drawn with replacement, the same time blocks for every row (the repeats forecast the same
    steps), so the interval holds the seeds' and the time blocks' variation together.
    `statistic` maps a resample of the same shape to a number (default: the mean of every
    value); `length` defaults to `block_length(T)`. Percentile intervals (Efron & Tibshirani,
    "An Introduction to the Bootstrap", 1993, ch. 13); the seed is fixed, so the same values
    give the same interval.
    """
    values = np.asarray(values, dtype=np.float64)
    statistic = statistic or (lambda resample: float(np.mean(resample)))
    n_times = values.shape[0] if values.ndim == 1 else values.shape[1]
    length = length or block_length(n_times)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for index in range(n_resamples):
        times = moving_block_indices(n_times, length, rng)
        if values.ndim == 1:
            draws[index] = statistic(values[times])
        else:
            rows = rng.integers(0, values.shape[0], size=values.shape[0])
            draws[index] = statistic(values[rows][:, times])
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class VarianceSplit:
    """Variance components of a (fold, repeat) table, in squared units of its values.

    `fold`: between folds (what the test block and training length change); `seed`: a
    repeat's own effect shared across folds (its initial weights and batch order);
    `interaction`: what is left, seed x fold and noise. A seed-to-seed spread within one
    fold is `seed + interaction`."""

    fold: float
    seed: float
    interaction: float

    @property
    def total(self) -> float:
        return self.fold + self.seed + self.interaction

    def shares(self) -> dict[str, float]:
        """Each component over the total (0 each when the table is constant)."""
        total = self.total or 1.0
        return {
            "fold": self.fold / total,
            "seed": self.seed / total,
            "interaction": self.interaction / total,
        }


def variance_split(table: np.ndarray) -> VarianceSplit:
    """Split the spread of a statistic over F folds x R repeats between folds and seeds.

    The two-way crossed random-effects model without replication, y_fr = mu + a_f + b_r + e_fr,
    fitted by the ANOVA (method of moments) estimators: sigma2_fold = (MS_fold - MS_res) / R,
    sigma2_seed = (MS_seed - MS_res) / F, sigma2_interaction = MS_res, negative estimates set to
    0 (Searle, Casella & McCulloch, "Variance Components", 1992, section 4.7; Montgomery,
    "Design and Analysis of Experiments", the two-factor design with one observation per
    cell). `table` shape (F, R), F, R >= 2.
    """
    table = np.asarray(table, dtype=np.float64)
    folds, repeats = table.shape
    if folds < 2 or repeats < 2:
        raise ValueError(
            f"a variance split needs at least 2 folds and 2 repeats, got {table.shape}"
        )
    grand = table.mean()
    fold_means, repeat_means = table.mean(axis=1), table.mean(axis=0)
    ms_fold = repeats * np.sum((fold_means - grand) ** 2) / (folds - 1)
    ms_seed = folds * np.sum((repeat_means - grand) ** 2) / (repeats - 1)
    residual = table - fold_means[:, None] - repeat_means[None, :] + grand
    ms_residual = np.sum(residual**2) / ((folds - 1) * (repeats - 1))
    return VarianceSplit(
        fold=float(max(ms_fold - ms_residual, 0.0) / repeats),
        seed=float(max(ms_seed - ms_residual, 0.0) / folds),
        interaction=float(ms_residual),
    )


@dataclass(frozen=True)
class PairedComparison:
    """`first` against `second`, on their differences `first - second` per repeat.

    Each statistic is computed once, on first use; `interval(level)` once per level.
    """

    first: str
    second: str
    differences: np.ndarray

    @property
    def key(self) -> str:
        return f"{self.first}_vs_{self.second}"

    @property
    def mean(self) -> float:
        return float(np.mean(self.differences))

    @cached_property
    def p(self) -> Number:
        return sign_flip_p(self.differences)

    @cached_property
    def hodges_lehmann(self) -> float:
        return hodges_lehmann(self.differences)

    @cached_property
    def _intervals(self) -> dict[float, Interval | None]:
        return {}

    def interval(self, level: float) -> Interval | None:
        """The bootstrap interval of the mean difference at confidence `level`."""
        if level not in self._intervals:
            self._intervals[level] = mean_interval(self.differences, level)
        return self._intervals[level]

    def wins(self) -> tuple[float, float]:
        """The share of repeats where `first` is lower, and where `second` is."""
        n = len(self.differences)
        return float(np.sum(self.differences < 0) / n), float(np.sum(self.differences > 0) / n)


def model_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every pair once, each later entry against each earlier one (`lstm` vs `rnn`)."""
    return [(later, earlier) for earlier, later in combinations(names, 2)]
