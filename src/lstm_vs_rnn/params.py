"""Load and validate `params.yaml` before any stage does work.

Every default lives in `params.yaml`; this module only knows the *shape* of the file: which
keys exist, their types and their allowed ranges, declared as pydantic models. A bad value
stops the stage with one line that names the key, the value and what is allowed.

`data.source` picks one of three series (a discriminated union). The keys of the other sources
stay in the file, inactive, so that switching is one edit (`-S data.source=csv`) and dvc.yaml
can always template `${data.path}` as a dependency.
"""

import difflib
import io
import os
import re
import typing
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML, YAMLError

from lstm_vs_rnn.errors import UserError

# Architectures a model entry may name (`models.<entry>.arch`), mapped to their torch.nn layer.
# Adding an architecture is one line here and one in `Architecture`.
MODEL_ARCHITECTURES: dict[str, str] = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
Architecture = Literal["rnn", "lstm", "gru"]

# Entry names become file names, stage names (train@<name>) and MLflow metric prefixes.
MODEL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
NonBlank = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]

# Refuse sizes that would exhaust memory before anything is allocated.
MAX_POINTS = 10_000_000
MAX_WINDOW = 100_000
# Trainings per model entry; each repeat keeps its weights, so this bounds the models' disk use.
MAX_REPEATS = 1000
PARAMS_FILE = "params.yaml"
# MLflow refuses a longer experiment name (mlflow.utils.validation.MAX_EXPERIMENT_NAME_LENGTH);
# control characters (a newline, NUL) are refused here too: PostgreSQL stores no NUL, and a
# name with a line break cannot be typed back into the UI's search or MLFLOW_EXPERIMENT_NAME.
MAX_EXPERIMENT_NAME_LENGTH = 500
EXPERIMENT_NAME_ENV = "MLFLOW_EXPERIMENT_NAME"
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class _Section(BaseModel):
    """Strict: 2.5 is not an integer, "10" is not a number, an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _SplitAndWindow(_Section):
    """What every source shares: the chronological split and the window the models see."""

    train_fraction: Annotated[float, Field(gt=0, lt=1)]
    window: Annotated[int, Field(ge=1, le=MAX_WINDOW)]


class SineData(_SplitAndWindow):
    """y(t) = sin(t) + noise: the reference article's series, with a known clean signal."""

    source: Literal["sine"]
    n_points: Annotated[int, Field(ge=10, le=MAX_POINTS)]
    t_step: Annotated[float, Field(gt=0)]
    noise_std: Annotated[float, Field(ge=0)]
    seed: Seed


class LaggedData(_SplitAndWindow):
    """y_t = phi * y_{t-lag} + noise: only the value `lag` steps back carries information."""

    source: Literal["lagged"]
    n_points: Annotated[int, Field(ge=10, le=MAX_POINTS)]
    noise_std: Annotated[float, Field(gt=0)]
    seed: Seed
    lag: Annotated[int, Field(ge=1, le=MAX_WINDOW - 1)]
    phi: Annotated[float, Field(gt=-1, lt=1)]


class CsvData(_SplitAndWindow):
    """A column of the user's own CSV file; its length is known only once the file is read."""

    source: Literal["csv"]
    path: NonBlank
    column: NonBlank
    time_column: NonBlank | None = Field(description="the row number is the time axis")


DataParams = SineData | LaggedData | CsvData
DATA_SOURCES: dict[str, type[_SplitAndWindow]] = {
    "sine": SineData,
    "lagged": LaggedData,
    "csv": CsvData,
}
# Every key a `data:` section may hold, whichever source is active.
DATA_KEYS = frozenset(key for source in DATA_SOURCES.values() for key in source.model_fields)


class TrainParams(_Section):
    """Optimisation settings shared by every model."""

    epochs: Annotated[int, Field(ge=1, le=100_000)]
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)]
    learning_rate: Annotated[float, Field(gt=0, le=10)]
    val_fraction: Annotated[float, Field(gt=0, lt=1)]
    seed: Seed
    device: Literal["auto", "cpu", "cuda"]
    num_threads: Annotated[int, Field(ge=1, le=256)]
    grad_clip_norm: Annotated[float, Field(gt=0)] | None = Field(description="no clipping")
    repeats: Annotated[int, Field(ge=1, le=MAX_REPEATS)]
    # Processes that train repeats side by side; null: one per usable core. Changes no output
    # (see EXECUTION_KEYS), so DVC does not track it and it is not part of a configuration.
    workers: Annotated[int, Field(ge=1, le=256)] | None = Field(
        default=None, description="one process per usable core"
    )


# Keys that decide how the work is spread over the machine, never what it computes: left out of
# a configuration's identity (tracking.identity) and of the params DVC tracks (dvc.yaml).
EXECUTION_KEYS = frozenset(
    {"train.workers", "tune.workers", "tune.storage", "tune.heartbeat_seconds"}
)


class ModelParams(_Section):
    """One recurrent forecaster: a recurrent layer stack and a linear head on the last state."""

    arch: Architecture
    hidden_size: Annotated[int, Field(ge=1, le=4096)]
    num_layers: Annotated[int, Field(ge=1, le=16)]
    # LSTM only, optional: the forget gate's initial bias (Jozefowicz et al. 2015 recommend 1);
    # absent or null keeps PyTorch's initialisation (uniform, about 0).
    forget_bias: Annotated[float, Field(ge=-10, le=10)] | None = Field(
        default=None, description="keeps PyTorch's initialisation, about 0"
    )
    # Tune this entry (`tune@<name>`)? Absent or null: when `tune.n_trials` > 0; false: train at
    # the settings listed here (the shared-setting comparison); true: tune, n_trials must be > 0.
    tune: bool | None = Field(default=None, description="tune when tune.n_trials > 0")


class RangeSpec(_Section):
    """A range of a tuned hyperparameter: integers when both ends are, log-uniform with `log`."""

    low: int | float
    high: int | float
    log: bool = False


class TuneParams(_Section):
    """Hyperparameter tuning: the same candidates and budget for every tuned entry, successive
    halving over seeds (see modeling.tuning and modeling.halving).

    `n_trials` counts configurations (the shared setting first); the first rung trains each on
    `first_seeds` seeds, each later rung the best 1/`halving` on `halving` times the seeds, up to
    `final_seeds`. `space` maps a hyperparameter name to a RangeSpec or a list of choices; its
    names and values are checked against the models' and training's keys by
    `modeling.tuning.search_space`.
    """

    n_trials: Annotated[int, Field(ge=0, le=100_000)]
    seed: Seed
    first_seeds: Annotated[int, Field(ge=1, le=1000)]
    halving: Annotated[int, Field(ge=2, le=100)]
    final_seeds: Annotated[int, Field(ge=1, le=1000)]
    sampler_seed: Seed
    workers: Annotated[int, Field(ge=1, le=1024)] | None = Field(description="every usable core")
    storage: NonBlank | None = Field(description=".optuna/studies.db in the workspace")
    heartbeat_seconds: Annotated[int, Field(ge=1, le=3600)]
    space: dict[str, RangeSpec | list[int | float | None]]


class EvaluateParams(_Section):
    """How the test part is scored beyond one step ahead, and which comparisons are primary.

    `primary`: the pairs [first, second] of model entries whose test RMSE is the run's primary
    question (reporting.claims); a pair naming an entry the configuration lacks is left out
    of the run and said so in claims.md (`check_primary_pairs` refuses what is not a pair).
    `equivalence_margin`: the margin of the equivalence tests, as a share of the linear AR
    baseline's test RMSE.
    `folds`: the rolling origins scored, by number (`fold_bounds`): fold 0 trains on the
    training part and scores the test part, fold k trains on the series up to k test-part
    lengths before that and scores the block after its origin. DVC fans the tune and train
    stages out over this list (`matrix:` in dvc.yaml), so it is a list, not a count.
    """

    horizon: Annotated[int, Field(ge=1, le=10_000)]
    primary: list[Any]
    equivalence_margin: Annotated[float, Field(gt=0, le=1)]
    folds: list[Any]


class TrackingParams(_Section):
    """Where runs go in MLflow (MLFLOW_EXPERIMENT_NAME overrides the experiment)."""

    experiment_name: NonBlank


class Params(_Section):
    """The whole validated `params.yaml`."""

    data: Annotated[DataParams, Field(discriminator="source")]
    train: TrainParams
    models: Annotated[dict[ModelName, ModelParams], Field(min_length=1)]
    tune: TuneParams
    evaluate: EvaluateParams
    tracking: TrackingParams

    def tuned_entries(self) -> list[str]:
        """The entries `tune@<name>` tunes: not opted out, and a budget of at least one trial."""
        if self.tune.n_trials == 0:
            return []
        return [name for name, model in self.models.items() if model.tune is not False]

    def repeat_seeds(self) -> list[int]:
        """The torch seed of each repeat: `train.seed + i`, the same for every model entry."""
        return [self.train.seed + repeat for repeat in range(self.train.repeats)]

    def flat(self) -> dict[str, Any]:
        """Every active leaf value by its dotted params.yaml key, as DVC names them, for MLflow
        params (`section.key`, `models.<name>.key`, `tune.space.<name>.low`; a list is one
        value); the inactive sources' keys are left out, as they change nothing, and so is an
        optional key the file does not set."""
        flat: dict[str, Any] = {}
        for section in ("data", "train", "tune", "evaluate", "tracking"):
            _add_leaves(flat, section, getattr(self, section).model_dump())
        for name, model in self.models.items():
            _add_leaves(flat, f"models.{name}", model.model_dump(exclude_unset=True))
        return flat


def _add_leaves(flat: dict[str, Any], prefix: str, tree: dict[str, Any]) -> None:
    """Each leaf of the nested mapping `tree` into `flat`, as `prefix.key.subkey`."""
    for key, value in tree.items():
        if isinstance(value, dict):
            _add_leaves(flat, f"{prefix}.{key}", value)
        else:
            flat[f"{prefix}.{key}"] = value


def check_tuning_seeds(params: Params, where: str) -> None:
    """UserError unless `tune.first_seeds` <= `tune.final_seeds` and the tuning seeds
    (`tune.seed` + 0 .. final_seeds - 1) stay clear of the training repeats' seeds: the repeats
    re-score the chosen setting on fresh seeds, which seeds it was chosen on would not be."""
    tune = params.tune
    if tune.first_seeds > tune.final_seeds:
        raise UserError(
            f"{where}: tune.first_seeds = {tune.first_seeds} is above tune.final_seeds = "
            f"{tune.final_seeds}; the final rung must have at least the first rung's seeds"
        )
    tuning = range(tune.seed, tune.seed + tune.final_seeds)
    repeats = params.repeat_seeds()
    if set(tuning) & set(repeats):
        raise UserError(
            f"{where}: tune.seed = {tune.seed} gives tuning seeds {tuning[0]}-{tuning[-1]}, "
            f"which overlap the repeats' seeds {repeats[0]}-{repeats[-1]} (train.seed, "
            f"train.repeats); the repeats check the choice on fresh seeds, so keep them apart "
            f"(e.g. tune.seed: {max(repeats) + 1000 - max(repeats) % 1000})"
        )


def split_point(n_points: int, train_fraction: float) -> int:
    """Index of the first test point: the first `train_fraction` of the series trains."""
    return int(n_points * train_fraction)


def fold_bounds(n_points: int, train_fraction: float, fold: int) -> tuple[int, int]:
    """Fold `fold`'s origin and end, as indices into a series of `n_points` values: it trains
    on values [0, origin) and scores [origin, end). Fold 0 is the split of `split_point`; fold k
    steps back k test-part lengths (rolling origin, Tashman, "Out-of-sample tests of forecasting
    accuracy", IJF 16, 2000), so each fold scores a block as long as the test part and the
    blocks of folds 0..k tile the end of the series. The origin may be 0 or below for too
    large a k: `check_series_length` refuses that."""
    split = split_point(n_points, train_fraction)
    origin = split - fold * (n_points - split)
    return origin, origin + n_points - split


def validation_windows(n_windows: int, val_fraction: float) -> int:
    """The validation tail's size, derived from the windows a stage actually holds."""
    return int(n_windows * val_fraction)


def load_params(path: Path) -> Params:
    """Read and validate `path`; raise UserError with one line naming the offending key."""
    raw = _read_yaml(path)
    try:
        params = Params.model_validate(_active_data_keys(raw))
    except ValidationError as error:
        raise UserError(f"{path.name}: {_describe_error(error, raw)}") from None
    if isinstance(params.data, LaggedData) and params.data.lag >= params.data.window:
        raise UserError(
            f"{path.name}: data.lag = {params.data.lag} is not allowed; it must be below "
            f"data.window = {params.data.window}, or the value it depends on is never in a window"
        )
    for name, model in params.models.items():
        if model.tune and params.tune.n_trials == 0:
            raise UserError(
                f"{path.name}: models.{name}.tune = true but tune.n_trials = 0; give tune.n_trials "
                f"at least 1, or set models.{name}.tune: false to train at its listed settings"
            )
        if model.forget_bias is not None and model.arch != "lstm":
            raise UserError(
                f"{path.name}: models.{name}.forget_bias = {model.forget_bias} is not allowed; "
                f"only an lstm has a forget gate (models.{name}.arch = {model.arch}); remove it"
            )
    check_primary_pairs(params.evaluate.primary, f"{path.name}: evaluate.primary")
    check_folds(params.evaluate.folds, f"{path.name}: evaluate.folds")
    if params.tuned_entries():
        check_tuning_seeds(params, path.name)
    if not isinstance(params.data, CsvData):
        check_series_length(params.data.n_points, params, f"{path.name}: data.n_points")
    check_experiment_name(params.tracking.experiment_name, f"{path.name}: tracking.experiment_name")
    if os.environ.get(EXPERIMENT_NAME_ENV):
        check_experiment_name(os.environ[EXPERIMENT_NAME_ENV], EXPERIMENT_NAME_ENV)
    return params


PRIMARY_EXPECTED = (
    "expected a pair [first, second] of two different model entry names, e.g. "
    "[lstm_tuned, rnn_tuned]"
)


def check_primary_pairs(primary: list[Any], what: str) -> None:
    """Refuse an `evaluate.primary` entry that is not a pair of two different entry names, or
    a pair listed twice (in either order). `what` names the key in messages.

    Raises UserError naming `evaluate.primary[i]`, its value and what is allowed.
    """
    seen: set[frozenset[str]] = set()
    for index, pair in enumerate(primary):
        key = f"{what}[{index}]"
        names_ok = (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(n, str) and re.fullmatch(MODEL_NAME_PATTERN, n) for n in pair)
        )
        if not names_ok:
            raise UserError(f"{key} = {pair!r} is not allowed; {PRIMARY_EXPECTED}")
        if pair[0] == pair[1]:
            raise UserError(
                f"{key} = {pair!r} compares '{pair[0]}' with itself; {PRIMARY_EXPECTED}"
            )
        if frozenset(pair) in seen:
            raise UserError(f"{key} = {pair!r} repeats an earlier pair; list each pair once")
        seen.add(frozenset(pair))


def check_entry_and_fold(params: "Params", name: str, fold: int) -> None:
    """Refuse a stage asked for an entry `models:` lacks or a fold `evaluate.folds` lacks (a
    stage run by hand with a typo). Raises UserError naming what is configured."""
    if name not in params.models:
        raise UserError(
            f"{PARAMS_FILE}: no model '{name}' under models (configured: "
            f"{', '.join(params.models)})"
        )
    if fold not in params.evaluate.folds:
        raise UserError(
            f"{PARAMS_FILE}: no fold {fold} in evaluate.folds (configured: {params.evaluate.folds})"
        )


MAX_FOLDS = 100
FOLDS_EXPECTED = (
    "expected a list of distinct fold numbers holding 0, e.g. [0] (the test part only) or "
    "[0, 1] (and the block before it)"
)


def check_folds(folds: list[Any], what: str) -> None:
    """Refuse an `evaluate.folds` that is not a list of distinct whole numbers from 0 to
    MAX_FOLDS - 1 holding 0 (fold 0, the test part, is the one the plots and the registered
    models show). `what` names the key. Raises UserError."""
    numbers = all(isinstance(f, int) and not isinstance(f, bool) for f in folds)
    if not folds or not numbers or any(not 0 <= f < MAX_FOLDS for f in folds):
        raise UserError(f"{what} = {folds!r} is not allowed; {FOLDS_EXPECTED}")
    if len(set(folds)) != len(folds):
        raise UserError(f"{what} = {folds!r} lists a fold twice; {FOLDS_EXPECTED}")
    if 0 not in folds:
        raise UserError(f"{what} = {folds!r} lacks fold 0; {FOLDS_EXPECTED}")


def check_experiment_name(name: str, what: str) -> None:
    """Refuse, before any work, an experiment name the tracking store would refuse later.

    `what` names where the name came from (the params key or the environment variable).
    Raises UserError: longer than MAX_EXPERIMENT_NAME_LENGTH characters, or holding a control
    character.
    """
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise UserError(
            f"{what} is {len(name)} characters long ('{name[:40]}...'); MLflow allows at "
            f"most {MAX_EXPERIMENT_NAME_LENGTH}: shorten it"
        )
    control = next((char for char in name if unicodedata.category(char) == "Cc"), None)
    if control is not None:
        raise UserError(
            f"{what} = {name!r} holds the control character {control!r}; use printable "
            f"characters only"
        )


def check_series_length(n_points: int, params: Params, what: str) -> None:
    """The split and window must leave windows to fit, validate and test on, in every fold.

    `what` names the length's origin: data.n_points for a generated series, the CSV file for
    the user's own; the messages about other keys name the params file."""
    data, train = params.data, params.train
    n_train = split_point(n_points, data.train_fraction)
    n_test, n_windows = n_points - n_train, n_train - data.window
    n_val = validation_windows(n_windows, train.val_fraction)
    if n_windows < 2:
        raise UserError(
            f"{what} gives {n_points} values: too few for data.window = {data.window} and "
            f"data.train_fraction = {data.train_fraction}; the training part ({n_train} "
            f"values) must be at least the window plus 2, so data.window can be at most "
            f"{max(n_train - 2, 0)}"
        )
    if n_test < 2:
        raise UserError(
            f"{what} gives {n_points} values: data.train_fraction = {data.train_fraction} "
            f"leaves {n_test} test value(s); at least 2 are needed"
        )
    if n_val < 1:
        raise UserError(
            f"{PARAMS_FILE}: train.val_fraction = {train.val_fraction} leaves no validation "
            f"window out of "
            f"{n_windows} training windows; raise it to at least {1 / n_windows:.3g}"
        )
    if n_windows - n_val < 1:
        raise UserError(
            f"{PARAMS_FILE}: train.val_fraction = {train.val_fraction} leaves no window to fit "
            f"on; lower it"
        )
    earliest = max(params.evaluate.folds)
    n_earliest = fold_bounds(n_points, data.train_fraction, earliest)[0]
    n_windows = n_earliest - data.window
    n_val = validation_windows(n_windows, train.val_fraction)
    if n_windows < 2 or n_val < 1 or n_windows - n_val < 1:
        raise UserError(
            f"{what} gives {n_points} values: evaluate.folds = {params.evaluate.folds} is "
            f"not allowed; fold {earliest} would train on {max(n_earliest, 0)} values, too "
            f"few for data.window = {data.window} and train.val_fraction = "
            f"{train.val_fraction}: use fewer folds"
        )


def parse_yaml(text: str) -> Any:
    """The YAML document in `text`, read exactly as DVC reads params files and dvc.yaml.

    DVC parses YAML 1.2 with ruamel.yaml's safe loader (`dvc.utils.serialize.parse_yaml`):
    `1e-3` is the number 0.001 (a string in YAML 1.1), `yes`/`on` are strings (booleans in
    1.1), `017` is 17 (octal 15 in 1.1) and `0o17` is 15. Reading with the same loader means
    the stages and `dvc params diff` / `dvc exp show` always agree on every value.

    The call is DVC's own, so both take ruamel.yaml's C parser (ruamel.yaml.clib, pinned:
    DVC parses this dvc.lock in 0.05 s with it, 0.19 s without) or neither.

    Raises ruamel.yaml.YAMLError for text that is not YAML (a duplicate key included).
    """
    return YAML(typ="safe").load(text)


def dump_yaml(tree: Any) -> str:
    """`tree` as YAML text that `parse_yaml` (so DVC) reads back as the same values."""
    writer = YAML(typ="safe", pure=True)
    writer.default_flow_style = False
    writer.sort_base_mapping_type_on_output = False
    stream = io.StringIO()
    writer.dump(tree, stream)
    return stream.getvalue()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; the pipeline needs its params file") from None
    try:
        raw = parse_yaml(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise UserError(f"{path.name}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raise UserError(
            f"{path.name}: the file is empty; expected sections {', '.join(Params.model_fields)}"
        )
    if not isinstance(raw, dict):
        raise UserError(
            f"{path.name}: expected a mapping of sections at the top level, "
            f"got {type(raw).__name__}"
        )
    return raw


def _active_data_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """Drop the inactive sources' keys from `data`, so the chosen source validates strictly
    and a key no source knows is still an error."""
    data = raw.get("data")
    if not isinstance(data, dict) or data.get("source") not in DATA_SOURCES:
        return raw
    own = DATA_SOURCES[data["source"]].model_fields
    active = {key: value for key, value in data.items() if key in own or key not in DATA_KEYS}
    return {**raw, "data": active}


# What `tune.space` and its entries take, in params.yaml's words (the union's branches and
# pydantic's own names would say less).
SPACE_TEXT = "a mapping of each tuned hyperparameter to {low, high, log} or a list of choices"
SPACE_ENTRY_TEXT = (
    "{low, high, log} (a range: low and high numbers, log true or false and optional) or a "
    "list of choices (numbers or null)"
)
SPACE_ENTRY_PARTS = {
    "low": "a number (the range is of integers when low and high both are)",
    "high": "a number (the range is of integers when low and high both are)",
    "log": "true or false (draw log-uniformly)",
}
SPACE_CHOICE_TEXT = "a choice of the list: a number or null"


def _describe_error(error: ValidationError, raw: dict[str, Any]) -> str:
    """The first problem pydantic found, as one line for the person editing the file."""

    # An unknown key first: a typo also makes the intended key missing, and the unknown key
    # is the one to name, with its "did you mean". Then the deepest key in the file: of a
    # union's branches (a range or a list of choices), the one the file's value took.
    def rank(item: Any) -> tuple[bool, int]:
        depth = len(_user_location(item["loc"], raw, keep_last=item["type"] == "missing"))
        return item["type"] != "extra_forbidden", -depth

    problem = min(error.errors(), key=rank)
    kind, value = problem["type"], problem.get("input")
    loc = _user_location(problem["loc"], raw, keep_last=kind == "missing")
    key = ".".join(loc)
    if kind == "missing":
        where = ".".join(loc[:-1]) or "the top level"
        return f"missing key '{key}' in {where}{_section_hint(loc[:-1])}"
    if kind == "extra_forbidden":
        return _unknown_key(loc, raw)
    if kind == "union_tag_not_found":
        return "missing key 'data.source' in data (one of sine, lagged, csv)"
    if kind == "union_tag_invalid":
        return _bad_choice("data.source", raw.get("data", {}).get("source"), DATA_SOURCES)
    if loc[:2] == ("evaluate", "primary"):
        return (
            f"evaluate.primary = {raw['evaluate']['primary']!r} is not allowed; expected a list "
            f"of pairs of model entries, e.g. [[lstm_tuned, rnn_tuned], [lstm, rnn]], or []"
        )
    if loc[:2] == ("evaluate", "folds"):
        folds = raw["evaluate"]["folds"]
        count = f"; for {folds} folds write {list(range(folds))}" if isinstance(folds, int) else ""
        return f"evaluate.folds = {folds!r} is not allowed; {FOLDS_EXPECTED}{count}"
    if loc[0] == "models" and len(loc) == 2 and kind == "string_pattern_mismatch":
        return (
            f"model entry name '{key}' is not allowed; expected lower-case letters, digits "
            f"and '_', starting with a letter, at most 32 characters"
        )
    value = _value_at(loc, raw, value)
    if loc == ("models",):
        return (
            f"models must map at least one entry name to its settings "
            f"{{arch, hidden_size, num_layers}}, got {value!r}"
        )
    if _is_section(loc) and not isinstance(value, dict):
        return f"{key} must be a mapping of keys {_allowed_keys(loc)}, got {value!r}"
    return f"{key} = {value!r} is not allowed; expected {_expected_at(loc, raw)}"


def _user_location(
    loc: tuple[int | str, ...], raw: dict[str, Any], keep_last: bool = False
) -> tuple[str, ...]:
    """The path of keys (and list positions) in the file that pydantic's location points at,
    without its internal steps (a union's branch names, the tag of `data`, a dict-key marker);
    `keep_last` keeps a last step the file lacks (the name of a missing key)."""
    parts: list[str] = []
    node: Any = raw
    for part in loc:
        child = _child(node, part)
        if child is not _ABSENT:
            node = child
            parts.append(str(part))
    if keep_last and (not parts or parts[-1] != str(loc[-1])):
        parts.append(str(loc[-1]))
    return tuple(parts)


def _value_at(loc: tuple[str, ...], raw: dict[str, Any], default: object) -> object:
    """The value the file holds at `loc` (pydantic's input may be a union branch's part)."""
    node: Any = raw
    for part in loc:
        node = _child(node, int(part) if isinstance(node, list) else part)
        if node is _ABSENT:
            return default
    return node


_ABSENT = object()


def _child(node: object, part: int | str) -> object:
    """`node[part]` for a key of a mapping or a position in a list; _ABSENT otherwise."""
    if isinstance(node, dict) and isinstance(part, str) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def _is_section(loc: tuple[str, ...]) -> bool:
    """Whether `loc` names a mapping of keys: a section, or one entry of `models`."""
    return len(loc) == 1 or (loc[0] == "models" and len(loc) == 2)


def _section_hint(section: tuple[str, ...]) -> str:
    """For a key missing from a range of `tune.space`: what a range holds."""
    if section[:2] == ("tune", "space") and len(section) == 3:
        return " (a range is {low, high, log}, log optional)"
    return ""


def _unknown_key(loc: tuple[str, ...], raw: dict[str, Any]) -> str:
    allowed = _allowed_keys(loc[:-1])
    prefix = ".".join(loc[:-1])
    close = difflib.get_close_matches(loc[-1], allowed.split(", "), n=1)
    dotted = f"{prefix}.{loc[-1]}" if prefix else loc[-1]
    hint = f"; did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else ""
    return f"unknown key '{dotted}'{hint} (allowed in {prefix or 'the top level'}: {allowed})"


def _allowed_keys(section: tuple[str, ...]) -> str:
    if not section:
        return ", ".join(Params.model_fields)
    if section[0] == "data":
        return ", ".join(sorted(DATA_KEYS))
    if section[:2] == ("tune", "space") and len(section) == 3:
        return ", ".join(RangeSpec.model_fields)
    return ", ".join(sorted(_section_model(section[0]).model_fields))


def _section_model(section: str) -> type[BaseModel]:
    """The model of a non-data section; `models.<name>` entries are all ModelParams."""
    return ModelParams if section == "models" else Params.model_fields[section].annotation


def _expected_at(loc: tuple[str, ...], raw: dict[str, Any]) -> str:
    """What the key at `loc` takes, in params.yaml's words."""
    if loc[:2] == ("tune", "space"):
        if len(loc) == 2:
            return SPACE_TEXT
        if len(loc) == 3:
            return SPACE_ENTRY_TEXT
        return SPACE_ENTRY_PARTS.get(loc[3], SPACE_CHOICE_TEXT)
    if loc[:2] == ("tune", "seeds"):
        field = TuneParams.model_fields["seeds"]
        seed = _expected(FieldInfo.from_annotation(Seed))
        sizes = {type(item): item for item in field.metadata}
        low, high = (
            sizes[annotated_types.MinLen].min_length,
            sizes[annotated_types.MaxLen].max_length,
        )
        if len(loc) == 2:
            return f"a list of {low} to {high} seeds, each {seed}"
        return f"a seed, {seed}"
    return _expected(_field_at(loc, raw))


def _field_at(loc: tuple[str, ...], raw: dict[str, Any]) -> FieldInfo:
    if loc[0] != "data":
        return _section_model(loc[0]).model_fields[loc[-1]]
    chosen = DATA_SOURCES.get(raw["data"].get("source"))
    sources = [chosen] if chosen else list(DATA_SOURCES.values())
    return next(s.model_fields[loc[-1]] for s in sources if loc[-1] in s.model_fields)


def _expected(field: FieldInfo) -> str:
    """'an integer >= 1 and <= 100000', 'one of auto, cpu, cuda', 'true or false', ... from the
    declaration; a field that may be null says what null means (its description)."""
    annotation, optional = field.annotation, False
    if typing.get_origin(annotation) in (typing.Union, type(int | None)):
        optional = type(None) in typing.get_args(annotation)
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    metadata = list(field.metadata)
    if typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata += [item for entry in extra for item in getattr(entry, "metadata", [entry])]
    if typing.get_origin(annotation) is Literal:
        text = f"one of {', '.join(map(str, typing.get_args(annotation)))}"
    elif annotation is str:
        text = "a non-empty text"
    elif annotation is bool:
        text = "true or false"
    else:
        noun = "an integer" if annotation is int else "a number"
        bounds = [_bound_text(item) for item in metadata if _bound_text(item)]
        text = f"{noun} {' and '.join(bounds)}" if bounds else noun
    return f"{text}, or null ({field.description})" if optional else text


def _bound_text(item: object) -> str:
    symbols = {
        annotated_types.Ge: (">=", "ge"),
        annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("<=", "le"),
        annotated_types.Lt: ("<", "lt"),
    }
    for kind, (symbol, attribute) in symbols.items():
        if isinstance(item, kind):
            return f"{symbol} {_plain(getattr(item, attribute))}"
    return ""


def _bad_choice(key: str, value: object, choices: dict[str, object]) -> str:
    return f"{key} = {value!r} is not allowed; expected one of {', '.join(choices)}"


def _plain(number: float) -> str:
    """10000000 rather than 1e+07: a user copies the limit straight into params.yaml."""
    return str(int(number)) if float(number).is_integer() else str(number)
