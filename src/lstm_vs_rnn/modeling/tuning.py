"""Hyperparameter tuning on an equal budget: a fixed trial list, run by any number of workers.

Each tuned entry gets `tune.n_trials` trials drawn by random search (Bergstra & Bengio, JMLR
2012) over `tune.space`. The whole trial list is drawn with a seeded `optuna.samplers.
RandomSampler` and enqueued (`Study.enqueue_trial`) before the first trial starts; workers only
run enqueued trials, and a trial's score depends only on its settings and `tune.seeds` (torch
seeded, one thread). So the chosen settings do not depend on how many workers or machines ran the
trials, nor on their timing. Adaptive samplers (TPE) and pruners would break that.

The score is the mean over `tune.seeds` of the final-epoch validation MSE (scaled data) on the
training part's validation tail; the test part is never read. The best trial is the lowest
score, ties broken by the trial's position in the list.

Coordination is an Optuna study in an RDB storage (SQLite file by default, PostgreSQL for a
team) with heartbeats: a trial whose worker stops beating for 3 heartbeats is failed and
re-enqueued by `RetryHeartbeatStaleTrialCallback`, and counts once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.files import read_array
from lstm_vs_rnn.modeling.chosen_settings import LSTM_ONLY, TUNABLE, settings_of
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.modeling.training import TrainingDiverged, train_model
from lstm_vs_rnn.params import ModelParams, Params, RangeSpec, TrainParams, validation_windows
from lstm_vs_rnn.paths import PROJECT_ROOT, workspace_root

INTEGER_HYPERPARAMETERS = frozenset({"batch_size", "epochs", "hidden_size", "num_layers"})
STORAGE_ENV = "OPTUNA_STORAGE"
SLOT_ATTR = "slot"
HOST_ATTR = "host"
WORKER_ATTR = "worker"
DIVERGED_ATTR = "diverged"
INTERRUPTED_ATTR = "interrupted"
# The code a trial's score depends on: a change gives a new study, never reusing old trials.
SCORED_BY = (
    "src/lstm_vs_rnn/modeling/tuning.py",
    "src/lstm_vs_rnn/modeling/training.py",
    "src/lstm_vs_rnn/modeling/networks.py",
    "src/lstm_vs_rnn/modeling/prediction.py",
    "src/lstm_vs_rnn/data/windows.py",
)
POLL_SECONDS = 0.5
# Tries at opening a storage whose tables another process is creating at the same moment.
SCHEMA_ATTEMPTS = 5
# Heartbeats and the stale-trial retry are marked experimental since Optuna 2.8; we rely on them
# knowingly (see the module doc), so their warnings would only bury the stage's own lines.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# One line per created study and finished trial would drown the stage's output.
optuna.logging.set_verbosity(optuna.logging.WARNING)


def search_space(params: Params, name: str) -> dict[str, BaseDistribution]:
    """The Optuna distributions of entry `name`, in name order; UserError for a bad space.

    A range with two integer ends gives an IntDistribution, else a FloatDistribution; `log`
    samples log-uniformly (ends > 0). A list gives a CategoricalDistribution. Every value is
    checked against what `models.<name>` / `train` allow. `forget_bias` is left out for a
    non-LSTM entry.
    """
    arch = params.models[name].arch
    space: dict[str, BaseDistribution] = {}
    for key in sorted(params.tune.space):
        if key not in TUNABLE:
            raise UserError(
                f"params.yaml: tune.space.{key} is not a hyperparameter the models have; "
                f"allowed: {', '.join(sorted(TUNABLE))}"
            )
        if key in LSTM_ONLY and arch != "lstm":
            continue
        spec = params.tune.space[key]
        if isinstance(spec, RangeSpec):
            space[key] = _range_distribution(key, spec)
            ends = [spec.low, spec.high]
        else:
            space[key] = _choice_distribution(key, spec)
            ends = list(spec)
        for value in ends:
            _check_value(params, name, key, value)
    return space


def _range_distribution(key: str, spec: RangeSpec) -> BaseDistribution:
    where = f"params.yaml: tune.space.{key}"
    if not spec.low < spec.high:
        raise UserError(
            f"{where} = [{spec.low}, {spec.high}] is an empty or inverted range; low must be "
            f"below high (for one value, give a list of one choice)"
        )
    if spec.log and spec.low <= 0:
        raise UserError(f"{where}.low = {spec.low} is not allowed with log: true; it must be > 0")
    if key in INTEGER_HYPERPARAMETERS:
        if not (isinstance(spec.low, int) and isinstance(spec.high, int)):
            raise UserError(f"{where}: low and high must be integers for {key}")
        return IntDistribution(spec.low, spec.high, log=spec.log)
    return FloatDistribution(float(spec.low), float(spec.high), log=spec.log)


def _choice_distribution(key: str, choices: list[Any]) -> BaseDistribution:
    where = f"params.yaml: tune.space.{key}"
    if not choices:
        raise UserError(f"{where} is an empty list; give at least one choice or a range")
    nullable = TUNABLE[key][1]
    for value in choices:
        if value is None and nullable:
            continue
        if key in INTEGER_HYPERPARAMETERS and not isinstance(value, int):
            raise UserError(f"{where}: choice {value!r} is not allowed; {key} takes integers")
        if not isinstance(value, int | float) or value is None:
            null = " or null" if nullable else ""
            raise UserError(f"{where}: choice {value!r} is not allowed; {key} takes numbers{null}")
    if len(set(choices)) != len(choices):
        raise UserError(f"{where} = {choices} lists a choice twice")
    return CategoricalDistribution(choices)


def _check_value(params: Params, name: str, key: str, value: Any) -> None:
    section, _ = TUNABLE[key]
    base = params.models[name] if section == "models" else params.train
    try:
        type(base).model_validate({**base.model_dump(), key: value})
    except ValidationError as error:
        reason = error.errors()[0]["msg"]
        raise UserError(
            f"params.yaml: tune.space.{key}: value {value!r} is not allowed ({reason})"
        ) from None


def trial_list(space: dict[str, BaseDistribution], n_trials: int, seed: int) -> list[dict]:
    """`n_trials` settings drawn at random from `space`, fixed before any trial runs.

    An in-memory study with `RandomSampler(seed)` draws them, so the list depends only on the
    space, the count and the seed."""
    sampler = optuna.samplers.RandomSampler(seed=seed)
    draft = optuna.create_study(sampler=sampler, storage=optuna.storages.InMemoryStorage())
    return [draft.ask(space).params for _ in range(n_trials)]


@dataclass(frozen=True)
class TrainingData:
    """The scaled training windows (n, window) and targets (n,); the last `n_val` validate."""

    windows: torch.Tensor
    targets: torch.Tensor
    n_val: int


def training_data(params: Params, train_array: Path) -> TrainingData:
    """The windows the train stage fits on, from the scaled training part (never the test)."""
    series = torch.from_numpy(read_array(train_array, "scale").astype("float32"))
    windows, targets = make_windows(series, params.data.window)
    return TrainingData(
        windows, targets, validation_windows(len(windows), params.train.val_fraction)
    )


def score(
    model: ModelParams, train: TrainParams, data: TrainingData, seeds: list[int]
) -> tuple[float, list[float]]:
    """Mean over `seeds` of the final validation MSE, and the mean validation MSE per epoch.

    Raises TrainingDiverged when any seed's loss stops being finite."""
    curves = []
    device = torch.device("cpu")
    for seed in seeds:
        network = build_model(model, seed)
        history = train_model(network, data.windows, data.targets, data.n_val, train, device, seed)
        curves.append([epoch.val_loss for epoch in history])
    per_epoch = [sum(values) / len(values) for values in zip(*curves, strict=True)]
    return per_epoch[-1], per_epoch


def objective(params: Params, name: str, data: TrainingData) -> Any:
    """The Optuna objective of entry `name`: runs enqueued trials only (see module doc).

    A trial interrupted by Ctrl-C or SIGTERM ends FAIL with user attribute `interrupted`
    (see `_end_interrupted`), and the interrupt goes on to stop the worker."""
    space = search_space(params, name)

    def run_trial(trial: optuna.Trial) -> float:
        try:
            return run_listed_trial(trial)
        except KeyboardInterrupt:
            _end_interrupted(trial)
            raise

    def run_listed_trial(trial: optuna.Trial) -> float:
        # Every trial of the study names who ran it, the extra one pruned below included.
        trial.set_user_attr(HOST_ATTR, socket.gethostname())
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        if SLOT_ATTR not in trial.user_attrs:
            # The queue emptied between this worker's check and its ask: not a trial of the list.
            trial.study.stop()
            raise optuna.TrialPruned("no enqueued trial left")
        chosen = {key: _suggest(trial, key, distribution) for key, distribution in space.items()}
        model, train = settings_of(params.models[name], params.train, chosen)
        try:
            value, per_epoch = score(model, train, data, params.tune.seeds)
        except TrainingDiverged:
            trial.set_user_attr(DIVERGED_ATTR, True)
            return math.inf
        for epoch, loss in enumerate(per_epoch, start=1):
            trial.report(loss, step=epoch)
        return value

    return run_trial


def _end_interrupted(trial: optuna.Trial) -> None:
    """Say on `trial` that it was interrupted; Optuna then records it FAIL and re-raises.

    A second signal (Ctrl-C reaches a worker once from the terminal, then the stage stops it)
    must not cut that storage write short, leaving the trial RUNNING until its heartbeat goes
    stale, so both are ignored from here: the worker is ending anyway. So is Optuna's warning
    with the interrupt's traceback: the interrupted process says so in one line.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    trial.set_user_attr(INTERRUPTED_ATTR, True)


def _suggest(trial: optuna.Trial, key: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(key, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(key, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_categorical(key, distribution.choices)


def storage_url(params: Params) -> str:
    """OPTUNA_STORAGE, else tune.storage, else a SQLite file in the workspace (git-ignored)."""
    url = os.environ.get(STORAGE_ENV) or params.tune.storage
    if url:
        return url
    folder = workspace_root() / ".optuna"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'studies.db'}"


def open_storage(url: str, heartbeat_seconds: int) -> optuna.storages.RDBStorage:
    """The study storage with heartbeats and retry of stale trials; UserError if unusable.

    Raises UserError naming the URL (password hidden) when the database cannot be reached, the
    credentials are refused, or the URL is not one SQLAlchemy knows."""
    import sqlalchemy

    try:
        shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        raise UserError(
            f"tune.storage / {STORAGE_ENV} = {url!r} is not a database URL; expected e.g. "
            f"postgresql+psycopg://user:password@host:5432/optuna or sqlite:///path.db"
        ) from None
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            if url.startswith("sqlite"):
                _create_sqlite_storage(url, engine)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat_seconds,
                grace_period=3 * heartbeat_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            # Another worker is creating Optuna's tables in the same new database right now
            # (PostgreSQL says so as a unique violation or as a duplicate table or object).
            if not _lost_schema_race(error):
                raise _unusable(shown, error) from None
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(1.0)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
            raise _unusable(shown, error) from None
    raise AssertionError("unreachable")


def _unusable(shown: str, error: Exception, what: str = "cannot open") -> UserError:
    """One line: `what` happened to the storage (`shown`: password hidden), the database's own
    words (the driver's error under Optuna's and SQLAlchemy's, which can hide it behind a
    generic message or a session hint) and what to do."""
    cause: BaseException = error
    while (inner := getattr(cause, "orig", None) or cause.__cause__) is not None:
        cause = inner
    text = str(cause).strip()
    first = text.splitlines()[0] if text else type(cause).__name__
    return UserError(f"{what} the study storage {shown}: {first}; {_storage_todo(first)}")


def _storage_todo(reason: str) -> str:
    """What to do about a refusal of the study storage, from the database's words."""
    if "database is locked" in reason:
        return (
            "another program holds it open for writing (a DB browser, a second tool): close it "
            "and re-run"
        )
    if "readonly" in reason or "read-only" in reason:
        return (
            f"it or its folder cannot be written: make both writable, or set {STORAGE_ENV} "
            f"(or tune.storage) to a storage you can write"
        )
    return f"check {STORAGE_ENV} or tune.storage, and the database it names, then re-run"


@contextmanager
def storage_refusals_explained(url: str) -> Iterator[None]:
    """Anything the study storage at `url` refuses while trials are enqueued, run or waited
    for, as one line naming it (password hidden) and what to do; raises UserError."""
    import sqlalchemy

    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
        raise _unusable(shown, error, "a call was refused by") from None


# SQLSTATEs of a `create table` that lost a race with another one: unique_violation (on the
# catalog), duplicate_table, duplicate_object.
SCHEMA_RACE_STATES = ("23505", "42P07", "42710")


def _lost_schema_race(error: Exception) -> bool:
    """Whether `error` is another process creating the same tables first (any IntegrityError
    from SQLite; the SQLSTATEs above from PostgreSQL)."""
    import sqlalchemy

    state = getattr(getattr(error, "orig", None), "sqlstate", None)
    if state is None:
        return isinstance(error, sqlalchemy.exc.IntegrityError)
    return state in SCHEMA_RACE_STATES


def _create_sqlite_storage(url: str, engine: dict[str, Any]) -> None:
    """Create the SQLite file of `url` with Optuna's tables, if it does not exist, atomically.

    Processes opening a new SQLite storage at once (the stage, its workers, `make tune-worker`,
    anything reading the study) would each create the tables, and all but one fail with "table
    studies already exists" (SQLite reports no IntegrityError). So the tables are created in a
    temporary file under an exclusive lock and the file is renamed into place: a process sees no
    file or a complete one."""
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    if path.exists() or not path.parent.is_dir():
        return  # a missing folder fails in RDBStorage, with the usual one-line error
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return  # another process created it while this one waited for the lock
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        draft = optuna.storages.RDBStorage(
            parsed.set(database=str(temporary)).render_as_string(hide_password=False),
            engine_kwargs=engine,
        )
        draft.engine.dispose()
        os.replace(temporary, path)


def study_name(params: Params, name: str, train_array: Path) -> str:
    """`<entry>-<digest>` of everything a trial's score depends on: the entry, the training
    settings, the tune section (not who runs it), the data and the scoring code."""
    tune = params.tune.model_dump(exclude={"workers", "storage", "heartbeat_seconds"})
    train = params.train.model_dump(exclude={"repeats", "device", "seed", "workers"})
    identity = {
        "entry": params.models[name].model_dump(),
        "train": train,
        "tune": tune,
        "window": params.data.window,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    digest.update(hashlib.sha256(train_array.read_bytes()).digest())
    for relative in SCORED_BY:
        digest.update(hashlib.sha256((PROJECT_ROOT / relative).read_bytes()).digest())
    return f"{name}-{digest.hexdigest()[:16]}"


def create_study(
    storage: optuna.storages.RDBStorage, study: str, trials: list[dict]
) -> optuna.Study:
    """The study `study`, its trial list enqueued if it is new (a rerun resumes it)."""
    created = optuna.create_study(storage=storage, study_name=study, load_if_exists=True)
    if "n_slots" not in created.user_attrs:
        for slot, settings in enumerate(trials):
            created.enqueue_trial(settings, user_attrs={SLOT_ATTR: slot})
        created.set_user_attr("n_slots", len(trials))
    return created


def load_study(storage: optuna.storages.RDBStorage, study: str) -> optuna.Study:
    """An existing study, for a worker."""
    return optuna.load_study(study_name=study, storage=storage)


def has_waiting_trials(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_trials(study: optuna.Study, run_trial: Any) -> int:
    """Run the study's enqueued trials until none is waiting; return how many this worker ran."""
    ran = 0

    def stop_when_queue_empty(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal ran
        ran += trial.state != TrialState.PRUNED
        if not has_waiting_trials(study):
            study.stop()

    if has_waiting_trials(study):
        study.optimize(run_trial, callbacks=[stop_when_queue_empty], gc_after_trial=False)
    return ran


def completed_slots(study: optuna.Study) -> dict[int, FrozenTrial]:
    """The complete trial of each slot of the list (at most one: a stale trial is failed)."""
    done = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        slot = trial.user_attrs.get(SLOT_ATTR)
        if slot is not None and slot not in done:
            done[slot] = trial
    return done


def wait_until_done(
    study: optuna.Study, trials: list[dict], on_poll: Callable[[bool], None]
) -> dict[int, FrozenTrial]:
    """Block until every slot of `trials` has a complete trial, whoever runs them.

    Each poll fails stale trials (their retry is enqueued by the storage's callback), enqueues
    again a slot left with no waiting, running or complete trial in two polls in a row (a worker
    stopped by Ctrl-C or an error, or an interrupted stage being resumed), then calls
    `on_poll(trials_waiting)` (to start or check local workers)."""
    lost_before: set[int] = set()
    while True:
        done = completed_slots(study)
        if len(done) == len(trials):
            return done
        optuna.storages.fail_stale_trials(study)
        lost = lost_slots(study, len(trials))
        for slot in sorted(lost & lost_before):
            study.enqueue_trial(trials[slot], user_attrs={SLOT_ATTR: slot})
        lost_before = lost - lost_before
        on_poll(has_waiting_trials(study))
        time.sleep(POLL_SECONDS)


def lost_slots(study: optuna.Study, n_slots: int) -> set[int]:
    """Slots with no trial that is waiting, running or complete."""
    alive = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
    held = {trial.user_attrs.get(SLOT_ATTR) for trial in study.get_trials(states=alive)}
    return set(range(n_slots)) - held


def trial_record(slot: int, trial: FrozenTrial) -> dict[str, Any]:
    """One trial as written to the tuning result: its settings, score and curve, no timing."""
    diverged = bool(trial.user_attrs.get(DIVERGED_ATTR, False))
    return {
        "trial": slot,
        "params": dict(sorted(trial.params.items())),
        "value": None if diverged else trial.value,
        "diverged": diverged,
        "val_loss_per_epoch": [
            trial.intermediate_values[e] for e in sorted(trial.intermediate_values)
        ],
    }
