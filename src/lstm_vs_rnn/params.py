"""Load and validate `params.yaml` before any stage does work.

Every default lives in `params.yaml`; this module only knows the *shape* of the file: which
keys exist, their types and their allowed ranges. A bad value stops the stage with one line
that names the key, the value and what is allowed.
"""

import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from lstm_vs_rnn.errors import UserError

# Architectures a model entry may name (`models.<entry>.arch`), mapped to their torch.nn layer.
# Adding an architecture is one line here; entries are named freely and may share one.
MODEL_ARCHITECTURES: dict[str, str] = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}

# Entry names become file names, stage names (train@<name>) and MLflow metric prefixes.
MODEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")

# Refuse sizes that would exhaust memory before anything is allocated.
MAX_POINTS = 10_000_000
# Trainings per model entry; each repeat keeps its weights, so this bounds the models' disk use.
MAX_REPEATS = 1000


def _bounds(
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> dict[str, Any]:
    return {"low": low, "high": high, "open_low": open_low, "open_high": open_high}


@dataclass(frozen=True)
class DataParams:
    """The synthetic series y(t) = sin(t) + noise, its chronological split and the window."""

    n_points: int = field(metadata=_bounds(10, MAX_POINTS))
    t_step: float = field(metadata=_bounds(0, None, open_low=True))
    noise_std: float = field(metadata=_bounds(0, None))
    seed: int = field(metadata=_bounds(0, 2**32 - 1))
    train_fraction: float = field(metadata=_bounds(0, 1, open_low=True, open_high=True))
    window: int = field(metadata=_bounds(1, 100_000))


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings shared by every model."""

    epochs: int = field(metadata=_bounds(1, 100_000))
    batch_size: int = field(metadata=_bounds(1, 1_000_000))
    learning_rate: float = field(metadata=_bounds(0, 10, open_low=True))
    val_fraction: float = field(metadata=_bounds(0, 1, open_low=True, open_high=True))
    seed: int = field(metadata=_bounds(0, 2**32 - 1))
    device: Literal["auto", "cpu", "cuda"]
    num_threads: int = field(metadata=_bounds(1, 256))
    grad_clip_norm: float | None = field(metadata=_bounds(0, None, open_low=True))
    repeats: int = field(metadata=_bounds(1, MAX_REPEATS))


@dataclass(frozen=True)
class ModelParams:
    """One recurrent forecaster: a recurrent layer stack and a linear head on the last state."""

    arch: Literal["rnn", "lstm", "gru"]
    hidden_size: int = field(metadata=_bounds(1, 4096))
    num_layers: int = field(metadata=_bounds(1, 16))


@dataclass(frozen=True)
class EvaluateParams:
    """How the test part is scored beyond one step ahead."""

    horizon: int = field(metadata=_bounds(1, 10_000))


@dataclass(frozen=True)
class TrackingParams:
    """Where runs go in MLflow (MLFLOW_EXPERIMENT_NAME overrides the experiment)."""

    experiment_name: str


@dataclass(frozen=True)
class Params:
    """The whole validated `params.yaml`."""

    data: DataParams
    train: TrainParams
    models: dict[str, ModelParams]
    evaluate: EvaluateParams
    tracking: TrackingParams

    @property
    def n_train(self) -> int:
        """Points in the chronological training part (validation tail included)."""
        return split_point(self.data.n_points, self.data.train_fraction)

    @property
    def n_train_windows(self) -> int:
        return self.n_train - self.data.window

    @property
    def n_val_windows(self) -> int:
        """Windows in the validation tail: the last `val_fraction` of the training windows."""
        return validation_windows(self.n_train_windows, self.train.val_fraction)

    def repeat_seeds(self) -> list[int]:
        """The torch seed of each repeat: `train.seed + i`, the same for every model entry."""
        return [self.train.seed + repeat for repeat in range(self.train.repeats)]

    def flat(self) -> dict[str, Any]:
        """Every value as `section.key` (models as `models.<name>.key`), for MLflow params."""
        flat: dict[str, Any] = {}
        for section in ("data", "train", "evaluate", "tracking"):
            for key, value in vars(getattr(self, section)).items():
                flat[f"{section}.{key}"] = value
        for name, model in self.models.items():
            for key, value in vars(model).items():
                flat[f"models.{name}.{key}"] = value
        return flat


def split_point(n_points: int, train_fraction: float) -> int:
    """Index of the first test point: the first `train_fraction` of the series trains."""
    return int(n_points * train_fraction)


def validation_windows(n_windows: int, val_fraction: float) -> int:
    """The validation tail's size, derived from the windows a stage actually holds."""
    return int(n_windows * val_fraction)


def load_params(path: Path) -> Params:
    """Read and validate `path`; raise UserError with one line naming the offending key."""
    raw = _read_yaml(path)
    name = path.name
    _check_keys(raw, {f.name for f in fields(Params)}, "", name)
    sections = {
        "data": _build(DataParams, raw["data"], "data", name),
        "train": _build(TrainParams, raw["train"], "train", name),
        "evaluate": _build(EvaluateParams, raw["evaluate"], "evaluate", name),
        "tracking": _build(TrackingParams, raw["tracking"], "tracking", name),
        "models": _build_models(raw["models"], name),
    }
    params = Params(**sections)
    _check_sizes(params, name)
    return params


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; the pipeline needs its params file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise UserError(f"{path.name}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raise UserError(
            f"{path.name}: the file is empty; expected sections "
            f"{', '.join(f.name for f in fields(Params))}"
        )
    if not isinstance(raw, dict):
        raise UserError(
            f"{path.name}: expected a mapping of sections at the top level, "
            f"got {type(raw).__name__}"
        )
    return raw


def _check_keys(raw: Any, allowed: set[str], prefix: str, file: str) -> None:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise UserError(
            f"{file}: {where} must be a mapping of keys {', '.join(sorted(allowed))}, got {raw!r}"
        )
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise UserError(
                f"{file}: unknown key '{prefix}{key}'{hint} "
                f"(allowed in {where}: {', '.join(sorted(allowed))})"
            )
    missing = sorted(allowed - set(raw))
    if missing:
        raise UserError(f"{file}: missing key '{prefix}{missing[0]}' in {where}")


def _build(cls: type, raw: Any, section: str, file: str) -> Any:
    _check_keys(raw, {f.name for f in fields(cls)}, f"{section}.", file)
    hints = typing.get_type_hints(cls)
    values = {
        f.name: _check_value(raw[f.name], hints[f.name], f.metadata, f"{section}.{f.name}", file)
        for f in fields(cls)
    }
    return cls(**values)


def _build_models(raw: Any, file: str) -> dict[str, ModelParams]:
    if not isinstance(raw, dict) or not raw:
        raise UserError(
            f"{file}: models must map at least one entry name to its settings "
            f"{{arch, hidden_size, num_layers}}, got {raw!r}"
        )
    for name in raw:
        if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
            raise UserError(
                f"{file}: model entry name 'models.{name}' is not allowed; expected lower-case "
                f"letters, digits and '_', starting with a letter, at most 32 characters"
            )
    return {
        name: _build(ModelParams, settings, f"models.{name}", file)
        for name, settings in raw.items()
    }


def _check_value(value: Any, hint: Any, limits: Any, key: str, file: str) -> Any:
    optional = _is_optional(hint)
    if value is None and optional:
        return None
    base = _without_none(hint)
    if typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
        if value not in choices:
            raise UserError(
                f"{file}: {key} = {value!r} is not allowed; "
                f"expected one of {', '.join(map(str, choices))}"
            )
        return value
    if base is str:
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{file}: {key} = {value!r} is not allowed; expected a non-empty text")
        return value
    expected = _describe(base, limits, optional)
    if not _is_number_of(value, base):
        raise UserError(f"{file}: {key} = {value!r} is not allowed; expected {expected}")
    number = float(value)
    if not math.isfinite(number) or not _within(number, limits):
        raise UserError(f"{file}: {key} = {value!r} is not allowed; expected {expected}")
    return base(value)


def _is_optional(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _without_none(hint: Any) -> Any:
    if _is_optional(hint):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _is_number_of(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int)
    return isinstance(value, (int, float))


def _within(number: float, limits: Any) -> bool:
    low, high = limits.get("low"), limits.get("high")
    if low is not None and (number < low or (limits["open_low"] and number == low)):
        return False
    return high is None or not (number > high or (limits["open_high"] and number == high))


def _describe(kind: type, limits: Any, optional: bool) -> str:
    noun = "an integer" if kind is int else "a number"
    low, high = limits.get("low"), limits.get("high")
    parts = []
    if low is not None:
        parts.append(f"{'>' if limits['open_low'] else '>='} {_plain(low)}")
    if high is not None:
        parts.append(f"{'<' if limits['open_high'] else '<='} {_plain(high)}")
    text = f"{noun} {' and '.join(parts)}" if parts else noun
    return f"{text}, or null to turn it off" if optional else text


def _check_sizes(params: Params, file: str) -> None:
    """Cross-key checks: the split and window must leave windows to fit, validate and test."""
    data = params.data
    n_test = data.n_points - params.n_train
    if params.n_train_windows < 2:
        raise UserError(
            f"{file}: data.window = {data.window} is not allowed; it must be shorter than the "
            f"training part minus 1 ({params.n_train} points = data.n_points x "
            f"data.train_fraction), so at most {params.n_train - 2}"
        )
    if n_test < 2:
        raise UserError(
            f"{file}: data.train_fraction = {data.train_fraction} leaves {n_test} "
            f"test point(s); at least 2 are needed"
        )
    if params.n_val_windows < 1:
        raise UserError(
            f"{file}: train.val_fraction = {params.train.val_fraction} leaves no validation "
            f"window out of {params.n_train_windows} training windows; raise it to at least "
            f"{1 / params.n_train_windows:.3g}"
        )
    if params.n_train_windows - params.n_val_windows < 1:
        raise UserError(
            f"{file}: train.val_fraction = {params.train.val_fraction} leaves no "
            f"window to fit on; lower it"
        )


def _plain(number: float) -> str:
    """10000000 rather than 1e+07: a user copies the limit straight into params.yaml."""
    return str(int(number)) if float(number).is_integer() else str(number)
