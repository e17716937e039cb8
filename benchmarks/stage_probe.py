"""Runs one stage script as `python stages/<stage>.py` would, recording where its time goes.

The pipeline benchmarks put a `python` shim first on PATH (see probed_repo.py), so the real
`dvc repro` runs the real, unchanged stage commands, each under this probe. It uses only the
standard library and imports nothing the stage would not import anyway (lstm_vs_rnn.tracking,
which every stage imports; lstm_vs_rnn.modeling.training only for the stages that use torch), so the
modules a stage loads are still its own.

Marks (wall clock, ns): t0 the shim started the interpreter; imported, the stage module's
imports are done; enter/open, `stage_run` was entered / has opened the store and created the
runs; work_start/work_end, the stage's work function (`lstm_vs_rnn.pipeline.<stage>.run`) ran;
body_end, the body of `stage_run` ended; done, the run is closed. One JSON
line per stage goes to $BENCH_STAGE_LOG.
"""

import functools
import json
import os
import resource
import runpy
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Modules that dominate a stage's import time; which of them a stage loads is reported.
HEAVY_MODULES = ("torch", "mlflow", "matplotlib", "pandas", "sklearn", "scipy", "sqlalchemy")
STAGE_RUN_METHODS = (
    "log_metrics",
    "flush",
    "log_params",
    "set_tags",
    "log_figure",
    "log_artifact",
    "log_to_parent",
    "log_to_repeat_runs",
    "configurations_that_trained",
    "note_weights_from_elsewhere",
    "log_forecaster",
    "start_repeat_run",
    "end_repeat_run",
)
# Work functions timed per stage script, to report rates (e.g. evaluation's predictions).
# configure_torch is timed to count it as start-up: it seeds and sets torch's global modes.
TIMED_CALLS = {
    "train.py": ("train_model", "configure_torch"),
    "evaluate.py": ("predict", "configure_torch"),
}

marks: dict[str, int] = {}
tracking_seconds: dict[str, float] = {}
calls: dict[str, list[float]] = {}
_depth = [0]
_written = [False]
_work_wrapped = [False]


def in_work() -> bool:
    """Inside the stage's work function where there is one, else inside `stage_run`'s body."""
    if _work_wrapped[0]:
        return "work_start" in marks and "work_end" not in marks
    return "open" in marks and "body_end" not in marks


def timed(name: str, action: Callable[[], Any]) -> Any:
    """Run `action`, adding its time to `name` if it is the outermost tracking call (a flush
    inside log_metrics counts once)."""
    _depth[0] += 1
    started = time.perf_counter()
    try:
        return action()
    finally:
        _depth[0] -= 1
        if _depth[0] == 0:
            key = f"{'work' if in_work() else 'other'}:{name}"
            tracking_seconds[key] = tracking_seconds.get(key, 0.0) + time.perf_counter() - started


def timed_method(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return timed(name, lambda: method(*args, **kwargs))

    return wrapper


def timed_call(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Record (windows, seconds) per call; windows are the length of the second argument."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = function(*args, **kwargs)
        total = calls.setdefault(name, [0.0, 0.0])
        total[0] += len(args[1]) if len(args) > 1 else 0
        total[1] += time.perf_counter() - started
        return result

    return wrapper


def install(script_name: str) -> None:
    """Wrap stage_run, StageRun's methods and this stage's work functions before it imports.

    The stage's own first import, the CPU kernel pins, comes first here too: torch reads them
    as it loads, and lstm_vs_rnn.modeling.training loads it.
    """
    import lstm_vs_rnn.pin_kernels  # noqa: F401
    import lstm_vs_rnn.tracking.runs as tracking

    original = tracking.stage_run

    @contextmanager
    def stage_run(*args: Any, **kwargs: Any) -> Iterator[Any]:
        marks["enter"] = time.time_ns()
        try:
            with original(*args, **kwargs) as run:
                marks["open"] = time.time_ns()
                try:
                    yield run
                finally:
                    marks["body_end"] = time.time_ns()
        finally:
            marks["closed"] = time.time_ns()

    tracking.stage_run = stage_run
    # An older commit's code (section 6's base) may lack a method or function: not timed there.
    for name in STAGE_RUN_METHODS:
        if hasattr(tracking.StageRun, name):
            setattr(tracking.StageRun, name, timed_method(name, getattr(tracking.StageRun, name)))
    wrap_work_function(script_name)
    if script_name in TIMED_CALLS:
        import lstm_vs_rnn.modeling.training as training

        for name in TIMED_CALLS[script_name]:
            if hasattr(training, name):
                setattr(training, name, timed_call(name, getattr(training, name)))


def wrap_work_function(script_name: str) -> None:
    """Mark `work_start` / `work_end` around the stage's work function,
    `lstm_vs_rnn.pipeline.<stage>.run` (a base commit without that package keeps the older
    definition of work: see probed_repo.StageRecord.work)."""
    import importlib

    try:
        module = importlib.import_module(f"lstm_vs_rnn.pipeline.{script_name.removesuffix('.py')}")
    except ImportError:
        return
    work = module.run

    @functools.wraps(work)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        marks.setdefault("work_start", time.time_ns())
        try:
            return work(*args, **kwargs)
        finally:
            marks["work_end"] = time.time_ns()

    module.run = wrapper
    _work_wrapped[0] = True


def stage_name(argv: list[str]) -> str:
    """DVC's name of the stage `argv` runs: `stages/train.py lstm 0` is `train@lstm-0`."""
    script = os.path.splitext(os.path.basename(argv[0]))[0]
    return "@".join([script, *(["-".join(argv[1:3])] if len(argv) > 1 else [])])


def write_record(argv: list[str], exit_code: int) -> None:
    log = os.environ.get("BENCH_STAGE_LOG")
    if not log or _written[0]:
        return
    _written[0] = True
    record = {
        "stage": stage_name(argv),
        "t0": int(os.environ.get("BENCH_T0_NS") or marks["start"]),
        **marks,
        "done": time.time_ns(),
        "exit_code": exit_code,
        "tracking_seconds": tracking_seconds,
        "calls": calls,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "modules": [name for name in HEAVY_MODULES if name in sys.modules],
    }
    with open(log, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def record_before_os_exit(argv: list[str]) -> None:
    """An entry point may end with os._exit (skipping interpreter teardown); record first."""
    real_exit = os._exit

    def exit_after_record(code: int) -> None:
        write_record(argv, code)
        real_exit(code)

    os._exit = exit_after_record


def main() -> None:
    marks["start"] = time.time_ns()
    argv = sys.argv[1:]
    record_before_os_exit(argv)
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    exit_code = 0
    try:
        install(os.path.basename(argv[0]))
        namespace = runpy.run_path(argv[0], run_name="__bench_stage__")
        marks["imported"] = time.time_ns()
        namespace["run_entry_point"](namespace["main"])
    except SystemExit as exit_:
        exit_code = exit_.code if isinstance(exit_.code, int) else 1
        raise
    except BaseException:
        exit_code = 1
        raise
    finally:
        write_record(argv, exit_code)


if __name__ == "__main__":
    main()
