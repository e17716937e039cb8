"""Tuning that the seeds do not decide (issue 26), without processes: the same candidates for
every architecture, the shared setting among them, promotion by (score, position), the margin
and same-winner fraction by hand, a trial's counted cost by hand, and the fresh-seed check
against the shared-setting twin on a case built to fail it. The byte-identical result for 1 and
2 workers is tests/test_tuning.py's end-to-end test."""

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.tuning_check import fresh_seed_check, shared_setting_twin
from lstm_vs_rnn.modeling.halving import (
    Rung,
    confidence,
    promote,
    rung_plan,
)
from lstm_vs_rnn.modeling.tuning import TrainingData, candidate_list, run_in_process
from lstm_vs_rnn.params import Params, dump_yaml, load_params, parse_yaml, validation_windows
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.reporting.claims import fresh_seed_section
from tests.conftest import set_dotted

TUNED = ("rnn_tuned", "lstm_tuned", "gru_tuned")


def params_with(tmp_path: Path, changes: dict[str, Any]) -> Params:
    tree = parse_yaml(PATHS.params.read_text())
    for dotted, value in changes.items():
        set_dotted(tree, dotted, value)
    path = tmp_path / "params.yaml"
    path.write_text(dump_yaml(tree))
    return load_params(path)


def without(settings: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in setting.items() if k != key} for setting in settings]


def test_every_architecture_gets_the_same_shared_dimensions(tmp_path: Path) -> None:
    params = load_params(PATHS.params)
    lists = {name: candidate_list(params, name) for name in TUNED}
    assert len(lists["rnn_tuned"]) == params.tune.n_trials
    assert without(lists["lstm_tuned"], "forget_bias") == lists["rnn_tuned"] == lists["gru_tuned"]
    assert {setting["forget_bias"] for setting in lists["lstm_tuned"]} == {None, 1.0}
    # The LSTM-only dimension has its own stream: more choices for it change nothing else.
    wider = params_with(tmp_path, {"tune.space.forget_bias": [None, 0.5, 1.0, 2.0]})
    assert without(candidate_list(wider, "lstm_tuned"), "forget_bias") == lists["rnn_tuned"]


def test_the_shared_setting_is_every_entrys_first_candidate(tmp_path: Path) -> None:
    params = load_params(PATHS.params)
    train = params.train
    for name in TUNED:
        first = candidate_list(params, name)[0]
        listed = params.models[name]
        expected = {
            "learning_rate": train.learning_rate,
            "batch_size": train.batch_size,
            "epochs": train.epochs,
            "grad_clip_norm": train.grad_clip_norm,
            "hidden_size": listed.hidden_size,
            "num_layers": listed.num_layers,
        }
        if listed.arch == "lstm":
            expected["forget_bias"] = listed.forget_bias
        assert first == expected
    narrow = params_with(tmp_path, {"tune.space.hidden_size": [16, 32]})
    with pytest.raises(UserError, match=r"tune\.space\.hidden_size does not hold") as raised:
        candidate_list(narrow, "rnn_tuned")
    assert "models.rnn_tuned.hidden_size = 50" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_rungs_and_promotion_by_score_then_position() -> None:
    assert rung_plan(24, 2, 3, 8) == [Rung(24, 2), Rung(8, 6), Rung(3, 8)]
    assert rung_plan(4, 1, 3, 2) == [Rung(4, 1), Rung(2, 2)]
    scores = {0: 0.5, 1: 0.3, 2: 0.3, 3: math.inf, 4: 0.2}
    assert promote(scores, 3) == [1, 2, 4]
    assert promote(scores, 2) == [1, 4]  # 1 and 2 tie: the earlier position goes on
    assert promote(scores, 5) == [0, 1, 2, 4]  # a diverged configuration never does


def test_margin_and_same_winner_fraction_by_hand() -> None:
    # Two configurations on two seeds. Means: 2.0 (position 0) and 2.25: 0 wins.
    # Paired differences runner-up - winner: [1.0, -0.5]; mean 0.25, sd (n - 1) 1.0607,
    # standard error 1.0607 / sqrt(2) = 0.75: margin 1/3.
    # The 4 equally likely resamples of 2 seeds: (0, 0): 1 vs 2, 0 wins; (1, 1): 3 vs 2.5, 1
    # wins; (0, 1) and (1, 0): 2 vs 2.25, 0 wins. So 0 wins 3/4 of them.
    sure = confidence({0: [1.0, 3.0], 1: [2.0, 2.5]})
    assert (sure.winner, sure.runner_up) == (0, 1)
    assert sure.margin_se == pytest.approx(1 / 3)
    assert sure.same_winner_fraction == pytest.approx(0.75, abs=0.02)
    # Three configurations, three seeds: 1 wins (mean 1), 2 is the runner-up (mean 2);
    # differences [1, 1, 1] + [0, 1, -1] = [1, 2, 0]: mean 1, sd 1, margin sqrt(3). Position 1
    # is below position 2 on every seed, so every resample picks it.
    sure = confidence({0: [5.0, 5.0, 5.0], 1: [1.0, 1.0, 1.0], 2: [2.0, 3.0, 1.0]})
    assert (sure.winner, sure.runner_up) == (1, 2)
    assert sure.margin_se == pytest.approx(math.sqrt(3))
    assert sure.same_winner_fraction is not None and sure.same_winner_fraction > 0.9
    # A diverged runner-up: no margin to measure.
    assert confidence({0: [1.0, 1.1], 1: [math.inf, 1.0]}).margin_se is None


def test_a_trials_steps_and_multiply_adds_match_a_hand_count(tmp_path: Path) -> None:
    params = params_with(
        tmp_path,
        {
            "data.window": 5,
            "train.epochs": 2,
            "train.batch_size": 16,
            "tune.n_trials": 1,
            "tune.first_seeds": 1,
            "tune.final_seeds": 1,
            "tune.space": {"epochs": [2]},
            "models": {"lstm_tuned": {"arch": "lstm", "hidden_size": 3, "num_layers": 2}},
        },
    )
    series = torch.sin(torch.arange(60, dtype=torch.float32) / 5)
    windows, targets = make_windows(series, 5)  # 55 windows of 5 steps
    n_val = validation_windows(len(windows), params.train.val_fraction)  # 5: 50 to fit
    evaluations = run_in_process(params, "lstm_tuned", TrainingData(windows, targets, n_val))
    (evaluation,) = evaluations.values()
    # Steps: ceil(50 / 16) = 4 batches per epoch, 2 epochs.
    assert evaluation.optimizer_steps == 8
    # LSTM, 4 gate blocks: layer 0 4 * 3 * (1 + 3) = 48, layer 1 4 * 3 * (3 + 3) = 72 per step;
    # 120 x 5 steps x 50 windows x 2 epochs.
    assert evaluation.multiply_adds == 120 * 5 * 50 * 2 == 60_000
    assert evaluation.cpu_seconds > 0 and len(evaluation.val_loss_per_epoch) == 2


def history(final_losses: list[float]) -> pd.DataFrame:
    """A loss history of len(final_losses) repeats, 2 epochs each; the first epoch is worse."""
    rows = [
        {"repeat": repeat, "seed": 42 + repeat, "epoch": epoch, "train_loss": 0.0, "val_loss": loss}
        for repeat, final in enumerate(final_losses)
        for epoch, loss in ((1, final * 3), (2, final))
    ]
    return pd.DataFrame(rows)


def test_a_tuned_entry_worse_than_its_shared_setting_twin_is_named() -> None:
    params = load_params(PATHS.params)
    assert shared_setting_twin(params, "rnn_tuned") == "rnn"  # not rnn_wide: another width
    assert shared_setting_twin(params, "gru_tuned") == "gru"
    # Built to fail: tuning scored 0.0100, the fresh seeds 0.012-0.014 (winner's curse), and
    # the twin's repeats are lower on average.
    result = {
        "entry": "gru_tuned",
        "tuned": True,
        "best_trial": 5,
        "best_value": 0.0100,
        "margin_se": 0.4,
        "same_winner_fraction": 0.55,
    }
    check = fresh_seed_check(
        result, history([0.013, 0.014, 0.012]), "gru", history([0.011, 0.012, 0.013])
    )
    assert check.fresh_mean == pytest.approx(0.013) and check.twin_mean == pytest.approx(0.012)
    assert check.optimism == pytest.approx(0.003)
    assert check.repeats_at_or_below_tuning_score == 0
    assert check.tuned_better == 1  # repeat 2 only: 0.012 < 0.013
    assert check.worse_than_twin
    text = "\n".join(fresh_seed_section([check]))
    assert "**worse than its shared-setting twin `gru`**" in text
    assert "| 0 of 3 |" in text and "| 1 of 3 |" in text
