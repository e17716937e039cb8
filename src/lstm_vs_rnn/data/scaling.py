"""Min-max scaling fitted on the training part only, stored as JSON.

scikit-learn's MinMaxScaler can only be persisted by pickling it, and our artifacts are never
pickled; the fitted state is two numbers, so this keeps them in JSON and applies the same affine
map (the tests check it against MinMaxScaler).
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_vs_rnn.errors import UserError


@dataclass(frozen=True)
class MinMaxScaling:
    """Maps [data_min, data_max] of the training part to [0, 1]."""

    data_min: float
    data_max: float

    @classmethod
    def fit(cls, train: np.ndarray) -> "MinMaxScaling":
        return cls(float(np.min(train)), float(np.max(train)))

    @property
    def data_range(self) -> float:
        """The fitted range; a constant training part maps to 0 instead of dividing by zero."""
        span = self.data_max - self.data_min
        return span if span > 0 else 1.0

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.data_min) / self.data_range

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.data_range + self.data_min

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, path: Path) -> "MinMaxScaling":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: file not found; run the 'scale' stage first") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        fields = ("data_min", "data_max")
        if not isinstance(raw, dict) or any(
            not isinstance(raw.get(name), (int, float))
            or isinstance(raw.get(name), bool)
            or not math.isfinite(raw[name])
            for name in fields
        ):
            raise UserError(
                f"{path}: expected finite numbers for keys {', '.join(fields)}, got {raw!r}"
            )
        return cls(float(raw["data_min"]), float(raw["data_max"]))
