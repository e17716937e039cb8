"""Hyperparameter tuning: the same candidates for every architecture, successive halving over
seeds, run by any number of workers with the same result.

**Candidates.** Each tuned entry tries `tune.n_trials` configurations. The first is the
article's shared setting (`train:` and the entry's listed model settings), so tuning can never
end below it by more than noise. The others are drawn by random search (Bergstra & Bengio, JMLR
2012) over `tune.space`: the dimensions every architecture has from one seeded
`optuna.samplers.RandomSampler` stream, identical for every entry whatever its architecture;
a dimension only some architectures have (`forget_bias`) from a stream of its own, so it cannot
shift the others (common random numbers: the architectures are compared on the same list).

**Budget.** Successive halving over seeds (`modeling.halving`): every configuration on the
first rung's seeds, the best third (`tune.halving`) on three times the seeds, and so on up to
`tune.final_seeds`, where the winner is chosen. One Optuna trial is one training: one
configuration on one torch seed. That is the finest unit a rung can wait on, so at a rung's end
no core idles behind a batch of seeds, a worker killed mid-trial loses one training, and every
seed's loss is stored on its own for the paired margin. A rung's trials are enqueued
(`Study.enqueue_trial` with fixed settings) only once the previous rung is complete, and
promotion reads only scores and positions: the choice does not depend on how many workers or
machines ran the trials, nor on their timing (adaptive samplers and asynchronous pruners would
break that).

A training's score is its final-epoch validation MSE (scaled data) on the training part's
validation tail; the test part is never read. Training is seeded and single-threaded.

Coordination is an Optuna study in an RDB storage (SQLite file by default, PostgreSQL for a
team) with heartbeats: a trial whose worker stops beating for 3 heartbeats is failed and
re-enqueued by `RetryHeartbeatStaleTrialCallback`, and counts once. Workers keep taking trials
until the stage marks the study finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from filelock import FileLock
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from lstm_vs_rnn.data.windows import make_windows
from lstm_vs_rnn.errors import UserError, redact
from lstm_vs_rnn.files import read_array
from lstm_vs_rnn.modeling.chosen_settings import LSTM_ONLY, TUNABLE, settings_of
from lstm_vs_rnn.modeling.compute_budget import training_cost
from lstm_vs_rnn.modeling.halving import Evaluation, Rung, promote, rung_plan, rung_scores
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.modeling.training import TrainingDiverged, train_model
from lstm_vs_rnn.params import (
    ModelParams,
    Params,
    RangeSpec,
    TrainParams,
    TuneParams,
    validation_windows,
)
from lstm_vs_rnn.paths import PROJECT_ROOT, workspace_root

INTEGER_HYPERPARAMETERS = frozenset({"batch_size", "epochs", "hidden_size", "num_layers"})
STORAGE_ENV = "OPTUNA_STORAGE"
# A trial's place in the plan: the configuration's position in the candidate list, the torch
# seed, the rung that enqueued it.
CONFIGURATION_ATTR = "configuration"
SEED_ATTR = "seed"
RUNG_ATTR = "rung"
HOST_ATTR = "host"
WORKER_ATTR = "worker"
# What a complete trial measured: loss curve, counted cost, CPU seconds (`Evaluation`).
EVALUATION_ATTR = "evaluation"
DIVERGED_ATTR = "diverged"
# Set on the study by the tune stage once the final rung is complete: workers stop waiting.
FINISHED_ATTR = "finished"
# Second RandomSampler stream, for the dimensions only some architectures have.
ARCH_STREAM = 1
INTERRUPTED_ATTR = "interrupted"
# The code a trial's score depends on: a change gives a new study, never reusing old trials.
SCORED_BY = (
    "src/lstm_vs_rnn/modeling/tuning.py",
    "src/lstm_vs_rnn/modeling/halving.py",
    "src/lstm_vs_rnn/modeling/compute_budget.py",
    "src/lstm_vs_rnn/modeling/training.py",
    "src/lstm_vs_rnn/modeling/networks.py",
    "src/lstm_vs_rnn/modeling/prediction.py",
    "src/lstm_vs_rnn/data/windows.py",
)
POLL_SECONDS = 0.5
# A worker with no trial waiting or running for this long, in a study not yet finished, stops
# (the stage that would enqueue the next rung is gone).
IDLE_EXIT_SECONDS = 60.0
# A RUNNING trial whose objective never began (no WORKER_ATTR) this long after it started has
# lost its worker; a live one sets WORKER_ATTR within milliseconds. Generous, as the trial's
# start time comes from the clock of the machine that took it. Seconds.
NEVER_BEGAN_SECONDS = 60.0
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


def candidate_list(params: Params, name: str) -> list[dict[str, Any]]:
    """Entry `name`'s `tune.n_trials` configurations, fixed before any trial runs.

    Position 0 is the shared setting (`shared_setting`). Positions 1.. take the dimensions every
    architecture has from `RandomSampler(tune.sampler_seed)`, so they are identical for every
    entry; `forget_bias` (LSTM entries) comes from a second stream (`arch_stream_seed`).
    Raises UserError for a bad space or a space that does not hold the shared setting."""
    space = search_space(params, name)
    shared_space = {key: value for key, value in space.items() if key not in LSTM_ONLY}
    own_space = {key: value for key, value in space.items() if key in LSTM_ONLY}
    count = params.tune.n_trials - 1
    shared = draw(shared_space, count, params.tune.sampler_seed)
    own = draw(own_space, count, arch_stream_seed(params.tune.sampler_seed))
    drawn = [{**common, **extra} for common, extra in zip(shared, own, strict=True)]
    return [shared_setting(params, name, space), *drawn]


def draw(space: dict[str, BaseDistribution], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` settings drawn at random from `space` by an in-memory study with
    `RandomSampler(seed)`: they depend only on the space, the count and the seed, and the list
    for a larger count starts with the list for a smaller one."""
    sampler = optuna.samplers.RandomSampler(seed=seed)
    draft = optuna.create_study(sampler=sampler, storage=optuna.storages.InMemoryStorage())
    return [draft.ask(space).params for _ in range(count)]


def arch_stream_seed(sampler_seed: int) -> int:
    """The seed of the stream for architecture-only dimensions, derived from `sampler_seed`."""
    return int(np.random.SeedSequence([sampler_seed, ARCH_STREAM]).generate_state(1)[0])


def shared_setting(params: Params, name: str, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The article's shared setting in `space`'s dimensions: `train:` and `models.<name>`'s
    listed values. Raises UserError when the space does not hold one of them."""
    model, train = params.models[name], params.train
    setting = {}
    for key, distribution in space.items():
        section = TUNABLE[key][0]
        value = getattr(model if section == "models" else train, key)
        if not _holds(distribution, value):
            listed = f"models.{name}.{key}" if section == "models" else f"train.{key}"
            raise UserError(
                f"params.yaml: tune.space.{key} does not hold {listed} = "
                f"{'null' if value is None else value}, the shared setting every tuned entry "
                f"tries first; widen tune.space.{key} to include it"
            )
        setting[key] = value
    return setting


def _holds(distribution: BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return any(
            value == choice and (value is None) == (choice is None)
            for choice in distribution.choices
        )
    return value is not None and distribution.low <= value <= distribution.high


@dataclass(frozen=True)
class TrainingData:
    """The scaled training windows (n, window) and targets (n,); the last `n_val` validate."""

    windows: torch.Tensor
    targets: torch.Tensor
    n_val: int

    @property
    def n_fit(self) -> int:
        """Windows the network is fitted on."""
        return len(self.windows) - self.n_val


def training_data(params: Params, train_array: Path) -> TrainingData:
    """The windows the train stage fits on, from the scaled training part (never the test)."""
    series = torch.from_numpy(read_array(train_array, "scale").astype("float32"))
    windows, targets = make_windows(series, params.data.window)
    return TrainingData(
        windows, targets, validation_windows(len(windows), params.train.val_fraction)
    )


def evaluate(model: ModelParams, train: TrainParams, data: TrainingData, seed: int) -> Evaluation:
    """One training on one torch `seed`: its validation curve, counted cost and CPU seconds;
    loss inf (and no curve) when it diverged."""
    cost = training_cost(model, train, data.windows.shape[1], data.n_fit)
    started = time.process_time()
    try:
        network = build_model(model, seed)
        cpu = torch.device("cpu")
        history = train_model(network, data.windows, data.targets, data.n_val, train, cpu, seed)
        curve = [epoch.val_loss for epoch in history]
    except TrainingDiverged:
        curve = []
    return Evaluation(
        loss=curve[-1] if curve else math.inf,
        val_loss_per_epoch=curve,
        optimizer_steps=cost.optimizer_steps,
        multiply_adds=cost.multiply_adds,
        cpu_seconds=time.process_time() - started,
    )


def objective(params: Params, name: str, data: TrainingData) -> Callable[[optuna.Trial], float]:
    """The Optuna objective of entry `name`: runs enqueued trials only (see module doc); a
    trial's value is its training's final validation loss (inf: diverged).

    A trial interrupted by Ctrl-C or SIGTERM ends FAIL with user attribute `interrupted`
    (see `_end_interrupted`), and the interrupt goes on to stop the worker; one that arrived
    while `run_waiting` held it (Optuna was booking the trial) is raised on the body's first
    line."""
    space = search_space(params, name)

    def run_trial(trial: optuna.Trial) -> float:
        try:
            with HELD_INTERRUPTS.delivered():
                return run_listed_trial(trial)
        except KeyboardInterrupt:
            _end_interrupted(trial)
            raise

    def run_listed_trial(trial: optuna.Trial) -> float:
        record_first_heartbeat(trial)
        # Every trial of the study names who ran it, the extra one pruned below included.
        trial.set_user_attr(HOST_ATTR, socket.gethostname())
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        if CONFIGURATION_ATTR not in trial.user_attrs:
            # The queue emptied between this worker's check and its ask: not a trial of the plan.
            trial.study.stop()
            raise optuna.TrialPruned("no enqueued trial left")
        chosen = {key: _suggest(trial, key, distribution) for key, distribution in space.items()}
        model, train = settings_of(params.models[name], params.train, chosen)
        evaluation = evaluate(model, train, data, trial.user_attrs[SEED_ATTR])
        record = vars(evaluation) | {"loss": _finite_or_none(evaluation.loss)}
        trial.set_user_attr(EVALUATION_ATTR, record)
        if not math.isfinite(evaluation.loss):
            trial.set_user_attr(DIVERGED_ATTR, True)
        return evaluation.loss

    return run_trial


def record_first_heartbeat(trial: optuna.Trial) -> None:
    """Record `trial`'s heartbeat now, before its objective does anything else.

    Optuna's heartbeat thread records the first beat asynchronously after the trial turns
    RUNNING, and a RUNNING trial with no heartbeat at all is never taken for stale
    (`RDBStorage._get_stale_trial_ids` skips it): a worker killed in between would leave its
    trial RUNNING for good and the stage waiting on it. With this beat, every trial that shows
    WORKER_ATTR can go stale; one that shows none is `fail_trials_that_never_began`'s. Does
    nothing on a storage without heartbeats (the in-memory study of `run_in_process`)."""
    storage = trial.storage
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        storage.record_heartbeat(trial._trial_id)


def fail_trials_that_never_began(
    study: optuna.Study, older_than_s: float = NEVER_BEGAN_SECONDS
) -> list[int]:
    """Fail the RUNNING trials whose objective never began (no WORKER_ATTR) and that started
    more than `older_than_s` seconds ago: their worker died between Optuna's `ask` and the
    objective's first line, before any heartbeat (see `record_first_heartbeat`), so
    `optuna.storages.fail_stale_trials` never fails them. Returns their numbers; their slots
    are enqueued again by `wait_until_done` as lost. A trial settled meanwhile by another
    process is left as it is."""
    now = datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if WORKER_ATTR in trial.user_attrs or trial.datetime_start is None:
            continue
        if (now - trial.datetime_start).total_seconds() <= older_than_s:
            continue
        with suppress(optuna.exceptions.UpdateFinishedTrialError):
            if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                failed.append(trial.number)
    return failed


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _end_interrupted(trial: optuna.Trial) -> None:
    """Say on `trial` that it was interrupted; Optuna then records it FAIL and re-raises.

    A second signal (Ctrl-C reaches a worker once from the terminal, then the stage stops it)
    must not cut that storage write short, leaving the trial RUNNING until its heartbeat goes
    stale, so both are ignored from here: the worker is ending anyway. So is Optuna's warning
    with the interrupt's traceback: the interrupted process says so in one line.
    """
    HELD_INTERRUPTS.stopping = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Another worker may have failed it already (this one was starved for 3 heartbeats).
    with suppress(optuna.exceptions.UpdateFinishedTrialError):
        trial.set_user_attr(INTERRUPTED_ATTR, True)


class HeldInterrupts:
    """Ctrl-C and SIGTERM held while Optuna books a trial, raised where the study records them.

    `Study.optimize` makes a trial RUNNING in `study.ask()` before it calls the objective, and
    records its end in `tell` after it. A KeyboardInterrupt raised in `ask` (the pool stopping
    a worker whose sibling died, Ctrl-C in a terminal) left the trial RUNNING with no worker
    attribute, until the stage failed it `NEVER_BEGAN_SECONDS` later; one raised in `tell`
    could leave it RUNNING until its heartbeat went stale, or turned into an error of Optuna's
    own (`UnboundLocalError` in `_run_trial`). Inside `holding()`, a SIGINT or SIGTERM whose
    handler raises is only noted; inside `delivered()` (the objective's body) the handlers are
    the worker's own and a noted signal raises KeyboardInterrupt at once, so the objective
    fails the trial as interrupted. `raise_if_held()` (after a trial is recorded) and leaving
    `holding()` raise a noted one too. A handler that is SIG_IGN or SIG_DFL is left alone, and
    so is one replaced meanwhile (`_end_interrupted` ignores both signals). Main thread only,
    as Python runs signal handlers there (`holding()` raises ValueError elsewhere).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._own: dict[int, Any] = {}  # the worker's handlers, while holding
        self._held: int | None = None
        # Set by `_end_interrupted` (this worker is stopping, whatever Optuna raises next) until
        # the next `holding()`.
        self.stopping = False

    def _note(self, signum: int, frame: object) -> None:
        self._held = signum

    def _hold(self) -> None:
        for signum, own in self._own.items():
            if signal.getsignal(signum) == own:
                signal.signal(signum, self._note)

    def _release(self) -> None:
        for signum, own in self._own.items():
            if signal.getsignal(signum) == self._note:
                signal.signal(signum, own)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the raising handlers for the duration (not nested); a signal noted earlier and
        not yet raised (its `holding` ended with another exception) raises first."""
        if self._own:
            raise RuntimeError("HeldInterrupts.holding() does not nest")
        self.raise_if_held()
        self.stopping = False
        self._own = {
            signum: handler
            for signum in self.SIGNALS
            if callable(handler := signal.getsignal(signum))
        }
        try:
            self._hold()
            yield
        finally:
            self._release()
            self._own = {}
        self.raise_if_held()

    @contextmanager
    def delivered(self) -> Iterator[None]:
        """Inside `holding()`: the worker's own handlers for the duration, and a signal held so
        far raises at once. Elsewhere: nothing changes."""
        self._release()
        try:
            self.raise_if_held()
            yield
        finally:
            self._hold()

    def raise_if_held(self) -> None:
        """Raise KeyboardInterrupt for a signal noted while holding (once)."""
        if self._held is not None:
            signum, self._held = self._held, None
            raise KeyboardInterrupt(f"signal {signum}")


# The one holder of this process's trial-worker interrupts (signal handlers are per process).
HELD_INTERRUPTS = HeldInterrupts()


def _suggest(trial: optuna.Trial, key: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(key, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(key, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_categorical(key, distribution.choices)


def evaluation_of(trial: FrozenTrial) -> Evaluation:
    """What a complete trial measured (see `objective`)."""
    record = dict(trial.user_attrs[EVALUATION_ATTR])
    return Evaluation(**(record | {"loss": math.inf if record["loss"] is None else record["loss"]}))


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
        sqlalchemy.engine.make_url(url)
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
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat_seconds,
                grace_period=3 * heartbeat_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
            )
            if url.startswith("sqlite"):
                _serialize_sqlite_transactions(storage.engine)
            return storage
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            # Another worker is creating Optuna's tables in the same new database right now
            # (PostgreSQL says so as a unique violation or as a duplicate table or object).
            if not _lost_schema_race(error):
                raise _unusable(url, error) from None
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(1.0)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
            raise _unusable(url, error) from None
    raise AssertionError("unreachable")


def _serialize_sqlite_transactions(engine: Any) -> None:
    """Make every transaction on a SQLite storage take the write lock when it begins.

    Python's sqlite3 driver starts a transaction only before a write, so the read in which a
    worker finds a waiting trial and its write that marks it running are not one transaction:
    two workers could both take the same trial (Optuna relies on SELECT ... FOR UPDATE, which
    SQLite does not have). SQLAlchemy's recipe for the pysqlite driver: no implicit
    transactions, and an explicit `BEGIN IMMEDIATE` on each one. Connections made before this
    (creating the tables) are closed."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def no_implicit_transactions(connection: Any, _: Any) -> None:
        connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


def _unusable(url: str, error: Exception, what: str = "cannot open") -> UserError:
    """One line: `what` happened to the storage at `url` (password hidden), the database's own
    words (the driver's error under Optuna's and SQLAlchemy's, which can hide it behind a
    generic message or a session hint) and what to do."""
    cause: BaseException = error
    while (inner := getattr(cause, "orig", None) or cause.__cause__) is not None:
        cause = inner
    text = str(cause).strip()
    first = text.splitlines()[0] if text else type(cause).__name__
    return UserError(redact(f"{what} the study storage {url}: {first}; {_storage_todo(first)}"))


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
        raise _unusable(url, error, "a call was refused by") from None


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
    with FileLock(path.with_name(path.name + ".lock")):
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
    # A trial worker trains on one thread whatever `train.num_threads` says.
    train = params.train.model_dump(exclude={"repeats", "device", "seed", "workers", "num_threads"})
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


def create_study(storage: optuna.storages.BaseStorage, study: str) -> optuna.Study:
    """The study `study`, created if new (a rerun resumes it: its complete trials count)."""
    return optuna.create_study(storage=storage, study_name=study, load_if_exists=True)


def load_study(storage: optuna.storages.RDBStorage, study: str) -> optuna.Study:
    """An existing study, for a worker."""
    return optuna.load_study(study_name=study, storage=storage)


def has_waiting_trials(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_waiting(study: optuna.Study, run_trial: Callable[[optuna.Trial], float]) -> int:
    """Run the study's enqueued trials until none is waiting; return how many this worker ran.

    Ctrl-C and SIGTERM are held while Optuna books a trial (`HeldInterrupts`): one stops this
    worker inside the objective, which fails the trial, or after a trial is recorded."""
    ran = 0

    def stop_when_queue_empty(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal ran
        ran += trial.state != TrialState.PRUNED
        HELD_INTERRUPTS.raise_if_held()  # the trial is recorded: stop before taking another
        if not has_waiting_trials(study):
            study.stop()

    while has_waiting_trials(study):
        try:
            with HELD_INTERRUPTS.holding():
                study.optimize(run_trial, callbacks=[stop_when_queue_empty], gc_after_trial=False)
        except ValueError as error:
            # Optuna's `tell` refuses a trial that another worker already settled: this worker
            # was starved for 3 heartbeats, taken for dead, and its trial failed and run again
            # (optuna.study._tell). Its result is not needed; take the next waiting trial.
            if not str(error).startswith("Cannot tell a "):
                raise
            if HELD_INTERRUPTS.stopping:  # the trial refused was the interrupted one
                raise KeyboardInterrupt("interrupted") from error
    return ran


def work(
    study: optuna.Study,
    run_trial: Callable[[optuna.Trial], float],
    idle_seconds: float = IDLE_EXIT_SECONDS,
) -> int:
    """A worker's loop: run waiting trials, rung after rung, until the stage marks the study
    finished, or nothing has been waiting or running for `idle_seconds`; returns how many
    trials this worker ran."""
    ran, idle_since = 0, time.monotonic()
    while not study.user_attrs.get(FINISHED_ATTR):
        if has_waiting_trials(study):
            ran += run_waiting(study, run_trial)
            idle_since = time.monotonic()
        elif study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > idle_seconds:
            break
        time.sleep(POLL_SECONDS)
    return ran


@dataclass(frozen=True)
class Slot:
    """One training of the plan: configuration `position` on torch `seed`, enqueued by `rung`."""

    position: int
    seed: int
    rung: int

    @property
    def key(self) -> tuple[int, int]:
        return self.position, self.seed


def tuning_seeds(tune: TuneParams) -> list[int]:
    """The torch seeds of tuning, in the order rungs use them: `tune.seed` + 0, 1, ..."""
    return [tune.seed + index for index in range(tune.final_seeds)]


def tuning_plan(tune: TuneParams) -> list[Rung]:
    """The rungs of `tune` (`halving.rung_plan`)."""
    return rung_plan(tune.n_trials, tune.first_seeds, tune.halving, tune.final_seeds)


def run_rungs(
    study: optuna.Study,
    candidates: Sequence[dict[str, Any]],
    tune: TuneParams,
    on_poll: Callable[[bool], None],
) -> dict[tuple[int, int], FrozenTrial]:
    """Every rung of the plan, in order, whoever runs the trials: enqueue a rung's trainings
    once the previous rung is complete, promote by (score, position), mark the study finished.

    `on_poll(trials_waiting)` is called at each poll (to start or check local workers, or to
    run the waiting trials in this process). Returns the complete trial of every training, by
    (position, seed)."""
    plan, seeds = tuning_plan(tune), tuning_seeds(tune)
    done: dict[tuple[int, int], FrozenTrial] = {}
    members = list(range(len(candidates)))
    for index, rung in enumerate(plan):
        if index:
            previous = plan[index - 1].seeds
            losses = {key: evaluation_of(trial).loss for key, trial in done.items()}
            members = promote(rung_scores(members, seeds[:previous], losses), rung.configurations)
        start = plan[index - 1].seeds if index else 0
        slots = [
            Slot(position, seed, index)
            for position in members
            for seed in seeds[start : rung.seeds]
        ]
        done |= wait_until_done(study, candidates, slots, on_poll)
    study.set_user_attr(FINISHED_ATTR, True)
    return done


def wait_until_done(
    study: optuna.Study,
    candidates: Sequence[dict[str, Any]],
    slots: list[Slot],
    on_poll: Callable[[bool], None],
) -> dict[tuple[int, int], FrozenTrial]:
    """Enqueue each slot not already held by a trial (a resumed study keeps its own), then block
    until every slot has a complete trial.

    Each poll fails stale trials (their retry is enqueued by the storage's callback) and trials
    whose worker died before their objective began (`fail_trials_that_never_began`), enqueues
    again a slot left with no waiting, running or complete trial in two polls in a row (a worker
    stopped by Ctrl-C or an error, or an interrupted stage being resumed), then calls
    `on_poll(trials_waiting)`."""
    held = held_slots(study)
    for slot in slots:
        if slot.key not in held:
            _enqueue(study, candidates, slot)
    lost_before: set[tuple[int, int]] = set()
    while True:
        done = completed_slots(study)
        if all(slot.key in done for slot in slots):
            return {slot.key: done[slot.key] for slot in slots}
        optuna.storages.fail_stale_trials(study)
        fail_trials_that_never_began(study)
        lost = {slot.key for slot in slots} - held_slots(study)
        for slot in slots:
            if slot.key in lost & lost_before:
                _enqueue(study, candidates, slot)
        lost_before = lost - lost_before
        on_poll(has_waiting_trials(study))
        time.sleep(POLL_SECONDS)


def take_trials(
    params: Params, name: str, train_array: Path, url: str, worker: int
) -> dict[tuple[int, int], Evaluation] | None:
    """A job of the tune stage's worker pool, on one torch thread: worker 0 runs every rung of
    entry `name`'s plan (`run_rungs`: it enqueues each rung once the previous one is complete,
    promotes, and runs waiting trials between polls) and returns each training's evaluation by
    (position, seed); any other worker runs waiting trials until the study is finished
    (`work`) and returns None. `make tune-worker` on other machines joins the same study.

    Ctrl-C or SIGTERM marks the trial being run FAIL (Optuna records it before the
    KeyboardInterrupt goes on), so a study never keeps a RUNNING trial of a stopped worker.
    """
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    torch.set_num_threads(1)
    storage = open_storage(url, params.tune.heartbeat_seconds)
    study = load_study(storage, study_name(params, name, train_array))
    run_trial = objective(params, name, training_data(params, train_array))
    if worker:
        work(study, run_trial)
        return None

    def run_waiting_trials(waiting: bool) -> None:
        if waiting:
            run_waiting(study, run_trial)

    return evaluations(
        run_rungs(study, candidate_list(params, name), params.tune, run_waiting_trials)
    )


def _enqueue(study: optuna.Study, candidates: Sequence[dict[str, Any]], slot: Slot) -> None:
    study.enqueue_trial(
        candidates[slot.position],
        user_attrs={CONFIGURATION_ATTR: slot.position, SEED_ATTR: slot.seed, RUNG_ATTR: slot.rung},
    )


def _slot_key(trial: FrozenTrial) -> tuple[int, int] | None:
    if CONFIGURATION_ATTR not in trial.user_attrs:
        return None
    return trial.user_attrs[CONFIGURATION_ATTR], trial.user_attrs[SEED_ATTR]


def completed_slots(study: optuna.Study) -> dict[tuple[int, int], FrozenTrial]:
    """The first complete trial of each slot (at most one: a stale trial is failed)."""
    done: dict[tuple[int, int], FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = _slot_key(trial)
        if key is not None and key not in done:
            done[key] = trial
    return done


def held_slots(study: optuna.Study) -> set[tuple[int, int]]:
    """Slots with a trial that is waiting, running or complete."""
    alive = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
    keys = {_slot_key(trial) for trial in study.get_trials(deepcopy=False, states=alive)}
    return keys - {None}


def evaluations(done: dict[tuple[int, int], FrozenTrial]) -> dict[tuple[int, int], Evaluation]:
    """What each complete trial measured, by (position, seed)."""
    return {key: evaluation_of(trial) for key, trial in done.items()}


def run_in_process(
    params: Params, name: str, data: TrainingData
) -> dict[tuple[int, int], Evaluation]:
    """Entry `name`'s whole plan run here, one training after another, in an in-memory study:
    the same trainings and result as the stage's workers give (tests, benchmarks)."""
    study = create_study(optuna.storages.InMemoryStorage(), name)
    run_trial = objective(params, name, data)
    done = run_rungs(
        study, candidate_list(params, name), params.tune, lambda _: run_waiting(study, run_trial)
    )
    return evaluations(done)


def trial_state(trial: FrozenTrial) -> str:
    """A trial's state as the tracking shows it: complete, fail, ... (retry), ... (diverged)."""
    state = trial.state.name.lower()
    if trial.system_attrs.get("failed_trial") is not None:
        state += " (retry)"
    if trial.user_attrs.get(DIVERGED_ATTR):
        state += " (diverged)"
    if trial.user_attrs.get(INTERRUPTED_ATTR):
        state += " (interrupted)"
    return state


def trial_rows(trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per Optuna trial of the plan (retried and failed ones included), for the
    `trials_<entry>.csv` artifact: position, seed, rung, state, loss, who ran it, wall and CPU
    seconds, counted cost and settings. Timings and hosts: MLflow only, never a DVC output."""
    rows = []
    for trial in trials:
        if _slot_key(trial) is None:
            continue
        measured = trial.user_attrs.get(EVALUATION_ATTR, {})
        rows.append(
            {
                "trial": trial.user_attrs[CONFIGURATION_ATTR],
                "seed": trial.user_attrs[SEED_ATTR],
                "rung": trial.user_attrs[RUNG_ATTR],
                "optuna_number": trial.number,
                "state": trial_state(trial),
                "loss": measured.get("loss"),
                "host": trial.user_attrs.get(HOST_ATTR, "unknown"),
                "worker": trial.user_attrs.get(WORKER_ATTR, "unknown"),
                "seconds": trial.duration.total_seconds() if trial.duration else None,
                "cpu_seconds": measured.get("cpu_seconds"),
                "optimizer_steps": measured.get("optimizer_steps"),
                "multiply_adds": measured.get("multiply_adds"),
                **trial.params,
            }
        )
    return rows


@dataclass(frozen=True)
class ConfigurationRun:
    """What MLflow shows of one configuration (a nested run of the tune stage's run)."""

    position: int
    params: dict[str, Any]
    val_loss_per_epoch: list[float]
    metrics: dict[str, float]
    tags: dict[str, str]


def configuration_runs(
    result: dict[str, Any], trials: Sequence[FrozenTrial]
) -> list[ConfigurationRun]:
    """One per configuration of `result` (tuning/<entry>.json): its settings, mean validation
    curve, score per rung reached, counted cost and the CPU seconds of its complete trainings,
    and tags naming its states and hosts (all of `trials`, the study's, retries included)."""
    by_position: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        key = _slot_key(trial)
        if key is not None:
            by_position.setdefault(key[0], []).append(trial)
    runs = []
    for record in result["trials"]:
        own = by_position.get(record["trial"], [])
        complete = [t for t in own if t.state == TrialState.COMPLETE]
        states = sorted({trial_state(t) for t in own})
        metrics = {
            f"rung_{rung}_score": value
            for rung, value in enumerate(record["rung_scores"])
            if value is not None
        }
        metrics |= {
            "rung": record["rung"],
            "seeds": len(record["seed_losses"]),
            "optimizer_steps": record["optimizer_steps"],
            "multiply_adds": record["multiply_adds"],
            "cpu_seconds": sum(t.user_attrs[EVALUATION_ATTR]["cpu_seconds"] for t in complete),
        }
        tags = {
            "trial.states": ", ".join(states),
            "trial.hosts": ", ".join(sorted({str(t.user_attrs.get(HOST_ATTR)) for t in own})),
            "trial.position": str(record["trial"]),
            "trial.shared_setting": str(record["shared_setting"]).lower(),
            "trial.diverged": str(record["diverged"]).lower(),
        }
        runs.append(
            ConfigurationRun(
                record["trial"], record["params"], record["val_loss_per_epoch"], metrics, tags
            )
        )
    return runs
