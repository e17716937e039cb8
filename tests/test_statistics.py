"""The tests and intervals of evaluation.statistics on inputs with a known answer."""

from itertools import product

import numpy as np
import pytest
from scipy import stats

from lstm_vs_rnn.evaluation.statistics import (
    NOT_AVAILABLE,
    block_bootstrap_interval,
    diebold_mariano,
    equivalence_p,
    fdr_adjusted,
    fdr_level,
    holm_levels,
    mean_interval,
    moving_block_indices,
    newey_west_variance,
    sign_flip_p,
    smallest_sign_flip_p,
    variance_split,
)


def test_sign_flip_p_enumerates_every_sign_pattern() -> None:
    differences = np.array([0.3, -0.1, 0.25, 0.05, -0.02, 0.4, 0.12, -0.2])
    means = [
        np.mean(np.array(signs) * np.abs(differences))
        for signs in product((-1, 1), repeat=len(differences))
    ]
    observed = differences.mean()
    greater = np.mean([m >= observed - 1e-12 for m in means])
    less = np.mean([m <= observed + 1e-12 for m in means])
    assert sign_flip_p(differences) == pytest.approx(min(1.0, 2 * min(greater, less)))


@pytest.mark.parametrize("n", [3, 10, 16])
def test_sign_flip_p_is_scipys_exact_permutation_test(n: int) -> None:
    differences = np.random.default_rng(n).normal(0.2, 1.0, n)
    for alternative in ("two-sided", "less", "greater"):
        expected = stats.permutation_test(
            (differences,),
            lambda x, axis: np.mean(x, axis=axis),
            permutation_type="samples",
            vectorized=True,
            n_resamples=np.inf,
            alternative=alternative,
        ).pvalue
        assert sign_flip_p(differences, alternative) == pytest.approx(expected)


def test_many_repeats_draw_random_sign_patterns() -> None:
    """Beyond 16 repeats: a Monte Carlo p, never 0, close to the normal approximation."""
    differences = np.random.default_rng(0).normal(0.1, 1.0, 400)
    p = sign_flip_p(differences)
    z = differences.mean() / (np.sqrt(np.mean(differences**2)) / 20)
    assert p == pytest.approx(2 * stats.norm.sf(abs(z)), abs=0.01)
    assert sign_flip_p(np.full(400, -1.0)) == pytest.approx(2 / 10_000)


def test_sign_flip_p_by_hand() -> None:
    # (1, -2, 3): mean 2/3; 3 of the 8 patterns have a mean >= 2/3, so two-sided 6/8.
    assert sign_flip_p(np.array([1.0, -2.0, 3.0])) == pytest.approx(0.75)
    # Every difference on one side: only it and its mirror image are as extreme.
    assert sign_flip_p(-np.arange(1.0, 11.0)) == pytest.approx(2 / 1024)
    assert smallest_sign_flip_p(10) == 2 / 1024
    assert smallest_sign_flip_p(1) == 1.0
    assert sign_flip_p(np.zeros(5)) == NOT_AVAILABLE
    assert sign_flip_p(np.array([0.1])) == NOT_AVAILABLE


def test_the_interval_widens_with_its_level_and_agrees_with_the_test() -> None:
    differences = np.array([-0.05, -0.04, -0.06, -0.03, -0.05, -0.07, -0.02, -0.04, -0.05, -0.06])
    narrow, wide = mean_interval(differences, 0.95), mean_interval(differences, 0.975)
    assert wide.low <= narrow.low < narrow.high <= wide.high
    assert sign_flip_p(differences) < 0.05 and wide.side() == -1  # both: below zero
    mixed = np.array([0.3, -0.2, 0.1, -0.4, 0.2, -0.1, 0.05, -0.15])
    assert sign_flip_p(mixed) > 0.5 and mean_interval(mixed, 0.95).side() == 0


def test_equivalence_by_hand() -> None:
    """Five differences within +-0.02: shifted by a margin of 1 all lie on one side, so each
    one-sided test gives 1/32 and TOST takes the larger; a margin inside the spread cannot."""
    differences = np.array([0.01, -0.01, 0.02, -0.02, 0.0])
    assert equivalence_p(differences, 1.0) == pytest.approx(1 / 32)
    assert equivalence_p(differences, 0.001) > 0.05
    assert equivalence_p(np.array([0.5]), 1.0) == NOT_AVAILABLE
    # A clear difference is not equivalent, however many repeats.
    assert equivalence_p(np.full(10, 0.3) + np.linspace(0, 0.01, 10), 0.1) == pytest.approx(1.0)


def test_holm_levels_and_benjamini_hochberg_by_hand() -> None:
    assert holm_levels([0.04, 0.01], 0.05) == pytest.approx([0.95, 0.975])
    assert holm_levels([0.3, NOT_AVAILABLE, 0.2, 0.1], 0.05) == pytest.approx(
        [0.95, 1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 3]
    )
    # Sorted 0.01, 0.02, 0.5 (m = 3): 0.01 x 3 / 1 = 0.03, 0.02 x 3 / 2 = 0.03, 0.5.
    assert fdr_adjusted([0.5, 0.01, NOT_AVAILABLE, 0.02]) == pytest.approx(
        [0.5, 0.03, NOT_AVAILABLE, 0.03]
    )
    assert fdr_level(2, 20, 0.05) == pytest.approx(0.995)
    assert fdr_level(0, 20, 0.05) == pytest.approx(0.9975)


def test_newey_west_by_hand() -> None:
    x = np.array([1.0, -1.0, 2.0, 0.0])  # mean 0.5: centred 0.5, -1.5, 1.5, -0.5
    gamma0 = (0.25 + 2.25 + 2.25 + 0.25) / 4
    gamma1 = (0.5 * -1.5 + -1.5 * 1.5 + 1.5 * -0.5) / 4
    assert newey_west_variance(x, 0) == pytest.approx(gamma0)
    assert newey_west_variance(x, 1) == pytest.approx(max(gamma0 + 2 * 0.5 * gamma1, 0))


def test_diebold_mariano_by_hand() -> None:
    rng = np.random.default_rng(3)
    first, second = rng.normal(1.0, 0.3, 50) ** 2, rng.normal(1.0, 0.3, 50) ** 2
    result = diebold_mariano(first, second, lags=0)
    d = first - second
    plain = d.mean() / np.sqrt(np.var(d) / 50)
    statistic = plain * np.sqrt((50 + 1 - 2) / 50)  # HLN at h = 1: sqrt((T - 1) / T)
    assert result.statistic == pytest.approx(statistic)
    assert result.p == pytest.approx(2 * stats.t.sf(abs(statistic), 49))
    interval = result.interval(0.95)
    assert interval.side() == 0 if result.p > 0.05 else interval.side() != 0


def test_diebold_mariano_on_series_with_a_known_answer() -> None:
    rng = np.random.default_rng(0)
    actual = np.sin(np.arange(300) * 0.1) + rng.normal(0, 0.5, 300)
    forecast = np.sin(np.arange(300) * 0.1)
    same = diebold_mariano((forecast - actual) ** 2, (forecast - actual) ** 2)
    assert (same.mean, same.p) == (0.0, 1.0)
    assert same.interval(0.95) == same.interval(0.99)  # zero width at 0
    worse = forecast + 0.5 * np.sin(np.arange(300) * 0.37)
    clear = diebold_mariano((forecast - actual) ** 2, (worse - actual) ** 2)
    assert clear.mean < 0 and clear.p < 1e-6 and clear.interval(0.999).high < 0
    noisy = forecast + rng.normal(0, 0.01, 300)
    close = diebold_mariano((forecast - actual) ** 2, (noisy - actual) ** 2)
    assert close.p > 0.05 and close.interval(0.95).side() == 0


def test_moving_blocks_are_runs_of_consecutive_steps() -> None:
    indices = moving_block_indices(10, 4, np.random.default_rng(1))
    assert indices.shape == (10,) and indices.min() >= 0 and indices.max() <= 9
    for block in (indices[:4], indices[4:8], indices[8:]):
        assert np.all(np.diff(block) == 1)


def _ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0, 1, n)
    series = np.empty(n)
    series[0] = noise[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        series[t] = phi * series[t - 1] + noise[t]
    return series


def test_block_bootstrap_covers_the_mean_of_an_autocorrelated_series() -> None:
    """AR(1), phi 0.5, 400 steps, true mean 0: the moving-block 90% interval covers it close
    to as often as it says (0.87 measured: block bootstraps under-cover a little at this
    length); resampling single steps (blocks of 1) ignores the autocorrelation and covers far
    less (0.66: its variance is about (1 - phi) / (1 + phi) = 1/3 of the truth)."""
    rng = np.random.default_rng(2024)
    covered = {"blocks": 0, "steps": 0}
    simulations = 120
    for index in range(simulations):
        series = _ar1(400, 0.5, rng)
        for name, length in (("blocks", 16), ("steps", 1)):
            interval = block_bootstrap_interval(
                series, 0.90, length=length, n_resamples=400, seed=index
            )
            covered[name] += interval.low <= 0 <= interval.high
    assert 0.82 <= covered["blocks"] / simulations <= 0.96
    assert covered["steps"] / simulations < 0.75


def test_block_bootstrap_over_seeds_and_time_holds_both_spreads() -> None:
    """Rows are seeds sharing the same time steps: a seed offset widens the interval beyond a
    time-only bootstrap of the row means; a statistic of two stacked losses works too."""
    rng = np.random.default_rng(5)
    shared = _ar1(100, 0.5, rng)
    rows = shared[None, :] + rng.normal(0, 1.0, (8, 1))  # each seed shifted as a whole
    over_both = block_bootstrap_interval(rows, 0.95)
    over_time = block_bootstrap_interval(rows.mean(axis=0), 0.95)
    assert over_both.high - over_both.low > over_time.high - over_time.low
    losses = np.stack([rows**2, rows**2 + 1], axis=-1)  # (seeds, time, forecast)
    interval = block_bootstrap_interval(
        losses, 0.95, statistic=lambda x: np.sqrt(x[..., 0].mean()) - np.sqrt(x[..., 1].mean())
    )
    assert interval.high < 0
    assert block_bootstrap_interval(rows, 0.95) == over_both  # fixed seed: same interval


def test_variance_split_recovers_known_components() -> None:
    folds = np.array([0.0, 0.3, -0.3, 0.6])[:, None]  # fold effects
    seeds = np.array([0.05, -0.05, 0.1, -0.1, 0.0])[None, :]  # seed effects, shared by folds
    split = variance_split(0.5 + folds + seeds)
    assert split.fold == pytest.approx(np.var(folds, ddof=1))
    assert split.seed == pytest.approx(np.var(seeds, ddof=1))
    assert split.interaction == pytest.approx(0.0, abs=1e-12)
    assert sum(split.shares().values()) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise_only = variance_split(rng.normal(0, 0.1, (6, 10)))
    assert noise_only.interaction == pytest.approx(0.01, rel=0.35)
    assert noise_only.fold < noise_only.interaction and noise_only.seed < noise_only.interaction
    with pytest.raises(ValueError, match="at least 2 folds"):
        variance_split(np.ones((1, 5)))
