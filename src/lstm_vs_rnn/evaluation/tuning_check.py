"""Does a tuned entry's choice hold on fresh seeds? The winner's curse, and the shared-setting twin.

The best of many noisy scores is biased low (the winner's curse): the setting tuning chose
scored well partly because its seeds were lucky. The train stage trains each entry's repeats on
seeds tuning never used (`train.seed + i`; params validation keeps `tune.seed` apart), so the
repeats' final-epoch validation loss, on the same validation tail as tuning's, is an unbiased
score of the chosen setting (Dodge et al., EMNLP 2019; Bouthillier et al., MLSys 2021).

Against the shared-setting twin (the untuned entry of the same architecture with the same
listed model settings, which trains at the article's setting, tuning's first candidate): a
tuned entry whose fresh-seed score is worse than its twin's is named as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lstm_vs_rnn.params import Params

# The listed model settings a twin shares with its tuned entry.
TWIN_KEYS = ("arch", "hidden_size", "num_layers", "forget_bias")


@dataclass(frozen=True)
class FreshSeedCheck:
    """One tuned entry's choice re-scored on fresh seeds (validation MSE, scaled data).

    `tuning_score`: the chosen setting's mean over the final rung's seeds (as chosen);
    `fresh_*`: the entry's training repeats (final-epoch validation loss); `twin_mean`: the
    shared-setting twin's repeats; `tuned_better`: repeats (paired by repeat index, the same
    torch seed) where the tuned entry's loss is below the twin's."""

    entry: str
    twin: str
    chosen_trial: int
    tuning_score: float
    margin_se: float | None
    same_winner_fraction: float | None
    fresh_mean: float
    fresh_low: float
    fresh_high: float
    repeats_at_or_below_tuning_score: int
    twin_mean: float
    tuned_better: int
    n_repeats: int

    @property
    def optimism(self) -> float:
        """Fresh-seed mean minus tuning score: above 0, tuning's score was lucky."""
        return self.fresh_mean - self.tuning_score

    @property
    def worse_than_twin(self) -> bool:
        """The tuned entry's fresh-seed mean is above its shared-setting twin's."""
        return self.fresh_mean > self.twin_mean


def shared_setting_twin(params: Params, name: str) -> str | None:
    """The first entry that does not tune, has `name`'s architecture and its listed model
    settings (`TWIN_KEYS`): it trains at the shared setting `name`'s tuning started from.
    None when the configuration has no such entry."""
    listed = params.models[name]
    tuned = set(params.tuned_entries())
    for other, model in params.models.items():
        if other == name or other in tuned:
            continue
        if all(getattr(model, key) == getattr(listed, key) for key in TWIN_KEYS):
            return other
    return None


def final_validation_losses(history: pd.DataFrame) -> np.ndarray:
    """Each repeat's last-epoch validation loss, in repeat order, from a loss-history table
    (columns repeat, epoch, val_loss: the train stage's `loss_history_<entry>.csv`)."""
    last = history.sort_values(["repeat", "epoch"]).groupby("repeat")["val_loss"].last()
    return last.to_numpy(dtype=np.float64)


def fresh_seed_check(
    result: dict[str, Any], history: pd.DataFrame, twin: str, twin_history: pd.DataFrame
) -> FreshSeedCheck:
    """The fresh-seed row of the tuned entry of `result` (tuning/<entry>.json).

    `history`, `twin_history`: the loss histories of the entry and of its twin `twin` (see
    `final_validation_losses`); both must hold the same repeats. Raises ValueError if `result`
    is not a tuned entry's or the repeat counts differ."""
    if not result["tuned"]:
        raise ValueError(f"{result['entry']}: not a tuned entry; nothing to check")
    fresh = final_validation_losses(history)
    twins = final_validation_losses(twin_history)
    if len(fresh) != len(twins):
        raise ValueError(
            f"{result['entry']} has {len(fresh)} repeats, its twin {twin} {len(twins)}; "
            "re-run their train stages with the same train.repeats"
        )
    return FreshSeedCheck(
        entry=result["entry"],
        twin=twin,
        chosen_trial=result["best_trial"],
        tuning_score=result["best_value"],
        margin_se=result["margin_se"],
        same_winner_fraction=result["same_winner_fraction"],
        fresh_mean=float(fresh.mean()),
        fresh_low=float(fresh.min()),
        fresh_high=float(fresh.max()),
        repeats_at_or_below_tuning_score=int(np.sum(fresh <= result["best_value"])),
        twin_mean=float(twins.mean()),
        tuned_better=int(np.sum(fresh < twins)),
        n_repeats=len(fresh),
    )
