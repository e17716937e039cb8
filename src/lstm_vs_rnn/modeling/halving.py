"""Successive halving over seeds, and how sure its choice is: pure functions, no Optuna, no torch.

Every configuration of the candidate list is trained on the first rung's seeds; the best
1/`halving` of them (by mean validation loss, ties to the earlier position, never a diverged
one, at least 2 while 2 are left) move up a rung and get `halving` times the seeds, up to
`final_seeds`; the rung that reaches `final_seeds` chooses the winner. The budget is seeds, the
unit of noise of a recurrent network's validation loss (Jamieson & Talwalkar, AISTATS 2016;
Li et al., Hyperband, JMLR 2018). A rung is decided only once all of its evaluations are in, and
only by their scores and positions, so the choice does not depend on who ran them, or when.

How sure the choice is, from the final rung (every configuration on the same seeds, so paired):
the winner's margin over the runner-up in standard errors of their paired difference, and how
often a bootstrap resample of those seeds picks the same winner (Bouthillier et al., MLSys
2021: report how often a conclusion holds when the seeds change).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstm_vs_rnn.errors import UserError

# Resamples and RNG seed of the same-winner bootstrap: fixed, so the tuning result is the same
# bytes on every run; 10,000 resamples put its Monte Carlo error below 0.005.
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Rung:
    """One rung: at most `configurations` configurations, each on the first `seeds` seeds (the
    seeds of earlier rungs included: an evaluation is never repeated)."""

    configurations: int
    seeds: int


def rung_plan(
    n_configurations: int, first_seeds: int, halving: int, final_seeds: int
) -> list[Rung]:
    """The rungs: `n_configurations` on `first_seeds` seeds, then each rung keeps
    ceil(1/`halving`) of the previous one's configurations (at least 2 while 2 are left) on
    `halving` times its seeds, capped at `final_seeds`; the last rung has `final_seeds`.

    Example: 24 configurations, 2 seeds, halving 3, final 8: 24 x 2, 8 x 6, 3 x 8 (86
    trainings; without halving, 24 x 8 = 192)."""
    rungs = [Rung(n_configurations, first_seeds)]
    while rungs[-1].seeds < final_seeds:
        previous = rungs[-1]
        kept = max(min(2, previous.configurations), math.ceil(previous.configurations / halving))
        rungs.append(Rung(kept, min(previous.seeds * halving, final_seeds)))
    return rungs


def score(losses: Sequence[float]) -> float:
    """A configuration's score: the mean of its final-epoch validation losses over seeds; inf
    when any seed diverged."""
    return math.inf if not all(map(math.isfinite, losses)) else sum(losses) / len(losses)


def ranking(scores: Mapping[int, float]) -> list[int]:
    """Positions (in the candidate list) best first: lowest score, ties to the lower position."""
    return sorted(scores, key=lambda position: (scores[position], position))


def promote(scores: Mapping[int, float], keep: int) -> list[int]:
    """The `keep` best positions by (score, position), diverged ones (inf) never, in position
    order."""
    finite = [position for position in ranking(scores) if math.isfinite(scores[position])]
    return sorted(finite[:keep])


def rung_scores(
    members: Sequence[int], seeds: Sequence[int], losses: Mapping[tuple[int, int], float]
) -> dict[int, float]:
    """Each member's score over `seeds` from `losses[(position, seed)]`."""
    return {position: score([losses[position, seed] for seed in seeds]) for position in members}


def rung_members(
    plan: Sequence[Rung], seeds: Sequence[int], losses: Mapping[tuple[int, int], float]
) -> list[list[int]]:
    """The positions evaluated in each rung, rebuilt from complete `losses` (every evaluation
    of every rung); the same promotions as the tune stage made rung by rung."""
    members = [list(range(plan[0].configurations))]
    for index in range(1, len(plan)):
        scores = rung_scores(members[-1], seeds[: plan[index - 1].seeds], losses)
        members.append(promote(scores, plan[index].configurations))
    return members


@dataclass(frozen=True)
class Confidence:
    """How sure the final rung's choice is (None where it cannot be measured, see `confidence`)."""

    winner: int
    runner_up: int | None
    margin_se: float | None
    same_winner_fraction: float | None


def confidence(final_losses: Mapping[int, Sequence[float]]) -> Confidence:
    """The winner of the final rung, its runner-up, the margin and the same-winner fraction.

    `final_losses[position]` are one configuration's final-epoch validation losses on the final
    rung's seeds, in the same seed order for every configuration (inf: diverged).

    - margin_se: d_s = runner-up loss - winner loss on seed s; mean(d) / (sd(d) / sqrt(n)),
      sd with n - 1. None with one seed, no runner-up, a diverged runner-up, or d without spread.
    - same_winner_fraction: the share of `BOOTSTRAP_RESAMPLES` resamples of the n seeds (with
      replacement, the same seeds for every configuration; numpy RNG seeded
      `BOOTSTRAP_SEED`) whose lowest mean (ties to the lower position) is the winner's. None
      without a runner-up.

    Raises UserError when every configuration of the final rung diverged.
    """
    scores = {position: score(values) for position, values in final_losses.items()}
    order = ranking(scores)
    if not math.isfinite(scores[order[0]]):
        raise UserError(
            "tuning: every configuration of the final rung diverged on some seed; lower the "
            "learning_rate range in tune.space or add grad_clip_norm choices"
        )
    winner = order[0]
    if len(order) == 1:
        return Confidence(winner, None, None, None)
    runner_up = order[1]
    table = np.array([final_losses[position] for position in sorted(final_losses)])
    return Confidence(
        winner,
        runner_up,
        _margin_se(np.asarray(final_losses[runner_up]) - np.asarray(final_losses[winner])),
        _same_winner_fraction(table, sorted(final_losses).index(winner)),
    )


def _margin_se(differences: np.ndarray) -> float | None:
    if len(differences) < 2 or not np.all(np.isfinite(differences)):
        return None
    spread = float(np.std(differences, ddof=1))
    if spread == 0.0:
        return None
    return float(np.mean(differences)) / (spread / math.sqrt(len(differences)))


def _same_winner_fraction(table: np.ndarray, winner_row: int) -> float:
    """`table`: (configurations in position order, seeds)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n_seeds = table.shape[1]
    picks = rng.integers(0, n_seeds, size=(BOOTSTRAP_RESAMPLES, n_seeds))
    means = table[:, picks].mean(axis=2)  # (configurations, resamples); inf stays inf
    return float(np.mean(np.argmin(means, axis=0) == winner_row))


@dataclass(frozen=True)
class Evaluation:
    """One training of one configuration on one seed, as the tune stage records it.

    `loss`: final-epoch validation MSE, inf if it diverged; `val_loss_per_epoch` empty then.
    Steps and multiply-adds are counted (`compute_budget`), CPU seconds measured (not
    deterministic: MLflow only)."""

    loss: float
    val_loss_per_epoch: list[float]
    optimizer_steps: int
    multiply_adds: int
    cpu_seconds: float


def halving_result(
    candidates: Sequence[dict[str, Any]],
    plan: Sequence[Rung],
    seeds: Sequence[int],
    evaluations: Mapping[tuple[int, int], Evaluation],
) -> dict[str, Any]:
    """The tuned part of tuning/<entry>.json: rungs, winner, confidence, budget, every
    configuration (`trials`, in position order). Deterministic: no CPU seconds.

    `evaluations[(position, seed)]` must hold every evaluation of every rung.
    Raises UserError when every configuration diverged on the first rung's seeds."""
    losses = {key: evaluation.loss for key, evaluation in evaluations.items()}
    first = rung_scores(range(len(candidates)), seeds[: plan[0].seeds], losses)
    if not any(map(math.isfinite, first.values())):
        raise UserError(
            f"tuning: every one of the {len(candidates)} configurations diverged; lower the "
            f"learning_rate range in tune.space or add grad_clip_norm choices"
        )
    members = rung_members(plan, seeds, losses)
    final_seeds = seeds[: plan[-1].seeds]
    choice = confidence(
        {position: [losses[position, seed] for seed in final_seeds] for position in members[-1]}
    )
    trials = [
        _configuration_record(position, settings, plan, members, seeds, evaluations)
        for position, settings in enumerate(candidates)
    ]
    final_scores = rung_scores(members[-1], final_seeds, losses)
    return {
        "method": "successive halving over seeds",
        "rungs": [
            {"configurations": len(positions), "seeds": rung.seeds, "trials": positions}
            for rung, positions in zip(plan, members, strict=True)
        ],
        "seeds": list(final_seeds),
        "n_trials": len(candidates),
        "best_trial": choice.winner,
        "best_value": final_scores[choice.winner],
        "runner_up_trial": choice.runner_up,
        "runner_up_value": _finite(final_scores[choice.runner_up])
        if choice.runner_up is not None
        else None,
        "margin_se": choice.margin_se,
        "same_winner_fraction": choice.same_winner_fraction,
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "rng_seed": BOOTSTRAP_SEED},
        "budget": {
            "configurations": len(candidates),
            "trainings": len(evaluations),
            "optimizer_steps": sum(e.optimizer_steps for e in evaluations.values()),
            "multiply_adds": sum(e.multiply_adds for e in evaluations.values()),
        },
        "trials": trials,
    }


def _configuration_record(
    position: int,
    settings: dict[str, Any],
    plan: Sequence[Rung],
    members: Sequence[Sequence[int]],
    seeds: Sequence[int],
    evaluations: Mapping[tuple[int, int], Evaluation],
) -> dict[str, Any]:
    """One configuration: its settings, the rungs it reached with its score on each, its
    per-seed losses and its counted cost. `value` is its first-rung score, which every
    configuration has on the same seeds (None if it diverged)."""
    reached = [index for index, positions in enumerate(members) if position in positions]
    own = [evaluations[position, seed] for seed in seeds[: plan[reached[-1]].seeds]]
    scores = [score([e.loss for e in own[: plan[index].seeds]]) for index in reached]
    curves = [e.val_loss_per_epoch for e in own if math.isfinite(e.loss)]
    diverged = len(curves) < len(own)
    return {
        "trial": position,
        "shared_setting": position == 0,
        "params": dict(sorted(settings.items())),
        "rung": reached[-1],
        "value": _finite(scores[0]),
        "rung_scores": [_finite(value) for value in scores],
        "diverged": diverged,
        "seed_losses": [_finite(e.loss) for e in own],
        "val_loss_per_epoch": [] if diverged else np.mean(curves, axis=0).tolist(),
        "optimizer_steps": sum(e.optimizer_steps for e in own),
        "multiply_adds": sum(e.multiply_adds for e in own),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
