"""Unit tests of the data side: the series, windowing and scaling."""

import json

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import sine_series
from lstm_vs_rnn.data.windows import make_windows, with_history
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import SineData, split_point

DATA = SineData(
    source="sine", n_points=1000, t_step=0.1, noise_std=0.5, seed=42, train_fraction=0.8, window=20
)


def test_series_follows_the_spec() -> None:
    frame = sine_series(DATA)
    assert list(frame.columns) == ["t", "y", "y_clean"]
    assert len(frame) == 1000
    assert frame["t"].iloc[-1] == pytest.approx(99.9)
    np.testing.assert_allclose(frame["y_clean"], np.sin(frame["t"]))
    noise = frame["y"] - frame["y_clean"]
    assert noise.std() == pytest.approx(0.5, abs=0.05)


def test_series_is_reproducible_from_its_seed() -> None:
    assert sine_series(DATA).equals(sine_series(DATA))


def test_split_is_chronological_80_20() -> None:
    assert split_point(1000, 0.8) == 800


def test_windows_are_views_with_the_next_value_as_target() -> None:
    series = torch.arange(10, dtype=torch.float32)
    windows, targets = make_windows(series, 3)
    assert windows.shape == (7, 3)
    assert targets.tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert windows[0].tolist() == [0, 1, 2]
    assert windows[-1].tolist() == [6, 7, 8]
    assert windows.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()


def test_inputs_take_the_last_window_of_training_as_history() -> None:
    train, test = np.arange(10.0), np.arange(10.0, 14.0)
    inputs = with_history(train, test, window=3)
    assert inputs.tolist() == [7, 8, 9, 10, 11, 12, 13]
    _, targets = make_windows(torch.from_numpy(inputs), 3)
    assert targets.tolist() == test.tolist()  # one prediction per test point


def test_scaler_matches_sklearn_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=200), rng.normal(scale=2, size=50)
    ours = MinMaxScaling.fit(train)
    reference = MinMaxScaler().fit(train.reshape(-1, 1))
    np.testing.assert_allclose(
        ours.transform(test), reference.transform(test.reshape(-1, 1)).ravel(), rtol=1e-12
    )
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(test)), test, rtol=1e-12)
    assert ours.transform(train).min() == 0.0 and ours.transform(train).max() == 1.0


def test_scaler_is_fitted_on_training_data_only() -> None:
    scaler = MinMaxScaling.fit(np.array([0.0, 1.0]))
    assert scaler.transform(np.array([2.0])).tolist() == [2.0]  # test range is not leaked in


def test_scaler_json_round_trip(tmp_path) -> None:
    scaler = MinMaxScaling(-1.25, 3.5)
    path = tmp_path / "scaler.json"
    path.write_text(scaler.to_json())
    assert MinMaxScaling.from_json(path) == scaler


@pytest.mark.parametrize(
    "payload", ['{"data_min": 0}', '{"data_min": 0, "data_max": "x"}', "[1, 2]", "{not json"]
)
def test_scaler_json_with_missing_or_bad_fields_names_the_file(tmp_path, payload: str) -> None:
    path = tmp_path / "scaler.json"
    path.write_text(payload)
    with pytest.raises(UserError, match=r"scaler\.json"):
        MinMaxScaling.from_json(path)


def test_scaler_json_is_plain_json(tmp_path) -> None:
    assert json.loads(MinMaxScaling(0.0, 1.0).to_json()) == {"data_min": 0.0, "data_max": 1.0}
