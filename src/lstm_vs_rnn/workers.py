"""A pool of worker processes for independent jobs (training repeats, tuning trials).

`worker_pool(n)` runs callables on `n` single-purpose processes started with `spawn` (torch and
`fork` do not mix: a forked child inherits the parent's thread pools and locks). Results come
back in submission order, whatever order the jobs finish in, so outputs written from them do
not depend on the number of workers. The pool fails fast: the first job that raises, or whose
process dies, stops every other worker and its error is raised in the parent. Ctrl-C and SIGTERM
reach the parent only (workers ignore SIGINT); the parent then stops the workers, and a parent
killed outright takes its workers with it (`PR_SET_PDEATHSIG`), so no worker outlives a stage.

A job reports progress with `report(event)`; the parent receives each event, in the order one
worker sent them, through the `on_event` callback of `WorkerPool.map`. Built on the standard
library's `concurrent.futures.ProcessPoolExecutor`.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.processes import die_with_parent

# How often the parent looks at the event queue while jobs run, in seconds.
POLL_INTERVAL_S = 0.1
# How long to wait for a worker's exit code when telling which one died, in seconds.
DEATH_WAIT_S = 1.0
# How long, once every job has returned, the parent waits for their last events, in seconds.
LAST_EVENTS_WAIT_S = 60.0

# The attribute `map` sets on a job's error: the job's position (see `failed_job`).
JOB_INDEX = "job_index"

_events: Any = None  # the worker's end of the event queue, set by `_start_worker`
_on_event: Callable[[Any], None] | None = None  # `report`'s target when jobs run in-process


class WorkerDied(UserError):
    """A worker process ended without returning (killed by a signal, or out of memory)."""


def failed_job(error: BaseException) -> int | None:
    """The position, in the jobs given to `map`, of the job that raised `error`; None for an
    error that no job raised (e.g. Ctrl-C)."""
    return getattr(error, JOB_INDEX, None)


def report(event: Any) -> None:
    """Send `event` (picklable) to the parent's `on_event`; does nothing outside a pool."""
    if _events is not None:
        _events.put(event)
    elif _on_event is not None:
        _on_event(event)


def _start_worker(events: Any, parent_pid: int) -> None:
    global _events
    _events = events
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


@dataclass(frozen=True)
class _JobStarted:
    """A worker took job `index` (sent before the job runs; never passed to `on_event`)."""

    index: int
    pid: int


@dataclass(frozen=True)
class _JobReturned:
    """Job `index` returned: every event it reported is ahead of this one in the queue (one
    process's puts keep their order). Its result travels on the executor's own pipe and can
    arrive first, so the parent waits for this before it takes the job's events as complete."""

    index: int


def _run_job(index: int, function: Callable[..., Any], *args: Any) -> Any:
    _events.put(_JobStarted(index, os.getpid()))
    try:
        result = function(*args)
    except KeyboardInterrupt:
        _end_as_stopped()
    _events.put(_JobReturned(index))
    return result


def _end_as_stopped() -> NoReturn:
    """End this worker as SIGTERM's default action does (exit code -SIGTERM).

    Workers ignore SIGINT, so a KeyboardInterrupt here is a job's own SIGTERM handler (a
    tuning trial's, so that Optuna records the trial FAIL): the pool is stopping this worker,
    and wants no result from it. Left to the executor, the exception would be sent back while
    the pool's second SIGTERM lands, and multiprocessing would print both tracebacks into the
    stage's output; the parent also tells a stopped worker from a dead one by -SIGTERM."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    os._exit(1)  # not reached: the signal's default action ends the process first


def _returned(future: Future[Any]) -> bool:
    """Whether `future`'s job returned a result (not an error, not yet pending)."""
    return future.done() and not future.cancelled() and future.exception() is None


def _worker_died(job: str) -> WorkerDied:
    return WorkerDied(
        f"{job}: its worker process ended without a result (killed by a signal, or out of memory)"
    )


class WorkerPool:
    """Worker processes that run jobs; use through `worker_pool`."""

    def __init__(self, executor: ProcessPoolExecutor, events: Any) -> None:
        self._executor = executor
        self._events = events
        self._worker_of: dict[int, int] = {}  # job index -> pid of the worker that took it
        self._returned: set[int] = set()  # jobs whose every event has been forwarded
        self._processes: dict[int, Any] = {}  # pid -> the executor's process object

    def map(
        self,
        function: Callable[..., Any],
        jobs: Sequence[tuple[Any, ...]],
        describe: Callable[[int], str],
        on_event: Callable[[Any], None] = lambda event: None,
    ) -> list[Any]:
        """`[function(*job) for job in jobs]`, run on the workers, in the order of `jobs`.

        `function` must be importable by name (a module-level function). Events the jobs
        `report` are passed to `on_event` in the parent as they arrive. The first job that
        raises stops the others and its exception is raised here; a job whose worker dies
        raises `WorkerDied`, naming the job by `describe(index)`. `failed_job(error)` gives the
        failed job's position.
        """
        self._returned = set()
        futures = [
            self._executor.submit(_run_job, index, function, *job) for index, job in enumerate(jobs)
        ]
        pending: set[Future[Any]] = set(futures)
        try:
            while pending:
                self._processes.update(self._executor._processes or {})
                done, pending = wait(pending, timeout=POLL_INTERVAL_S, return_when=FIRST_COMPLETED)
                self._forward_events(on_event)
                failed = sorted(futures.index(future) for future in done if future.exception())
                if failed:
                    self._raise_failure(futures, failed, describe)
                self._raise_if_a_worker_died(futures, describe)
            self._forward_last_events(on_event, len(jobs))
        except BaseException:
            self.stop()
            raise
        return [future.result() for future in futures]

    def _forward_events(self, on_event: Callable[[Any], None], wait_s: float = 0.0) -> None:
        """Pass every event already in the queue to `on_event`; wait up to `wait_s` for the
        first one."""
        timeout = wait_s
        while True:
            try:
                event = self._events.get(timeout=timeout) if timeout else self._events.get_nowait()
            except queue.Empty:
                return
            timeout = 0.0
            if isinstance(event, _JobStarted):
                self._worker_of[event.index] = event.pid
            elif isinstance(event, _JobReturned):
                self._returned.add(event.index)
            else:
                on_event(event)

    def _forward_last_events(self, on_event: Callable[[Any], None], n_jobs: int) -> None:
        """Every job returned: forward events until each job's `_JobReturned` has come.

        Raises RuntimeError if they do not come within LAST_EVENTS_WAIT_S (a queue that lost
        them), rather than return with a job's progress, and so its MLflow run, unfinished."""
        deadline = time.monotonic() + LAST_EVENTS_WAIT_S
        while len(self._returned) < n_jobs:
            if time.monotonic() > deadline:
                missing = sorted(set(range(n_jobs)) - self._returned)
                raise RuntimeError(f"the last events of jobs {missing} never arrived")
            self._forward_events(on_event, wait_s=POLL_INTERVAL_S)

    def _raise_failure(
        self, futures: list[Future[Any]], failed: list[int], describe: Callable[[int], str]
    ) -> None:
        """Raise the error of the job that failed first: a job's own exception, else (a worker
        died, which fails every unfinished job of the executor at once) the job whose worker
        died."""
        raised = [
            index
            for index in failed
            if not isinstance(futures[index].exception(), BrokenProcessPool)
        ]
        if raised:
            index = raised[0]
            error = futures[index].exception()
            error.add_note(f"in {describe(index)}")
        else:
            # A dead worker breaks the executor, which fails every unfinished job, one after
            # another: `wait` may have returned with the first of them only, so the dead
            # worker's job is looked for among every job that has not returned a result.
            unsettled = [index for index, future in enumerate(futures) if not _returned(future)]
            index = self._job_of_dead_worker(unsettled)
            error = _worker_died(describe(index))
            error.__suppress_context__ = True
        setattr(error, JOB_INDEX, index)
        raise error

    def _raise_if_a_worker_died(
        self, futures: list[Future[Any]], describe: Callable[[int], str]
    ) -> None:
        """Raise `WorkerDied` for the job of a worker that has exited without its result. The
        executor notices a dead worker only through the sentinels its manager thread waits on,
        and Python 3.11's rebuilds that list when woken, which `submit` does before it spawns
        the worker for the job: a worker spawned last can be missing from it, and its death
        (SIGKILL, out of memory) would leave the stage waiting forever."""
        dead = {pid for pid, process in self._processes.items() if process.exitcode is not None}
        if not dead:
            return
        # Not only the unfinished jobs: the executor may have failed the dead worker's job
        # since `wait` returned, and not yet the others.
        unsettled = [index for index, future in enumerate(futures) if not _returned(future)]
        if not unsettled:
            return
        index = self._job_of_dead_worker(unsettled)
        error = _worker_died(describe(index))
        setattr(error, JOB_INDEX, index)
        raise error

    def _job_of_dead_worker(self, unsettled: list[int]) -> int:
        """Of the jobs without a result, the one whose worker died by itself. The executor
        ends the other workers with SIGTERM once one dies, so that worker's exit code is any
        other (SIGKILL, a crash, an exit); without one, the first job a worker had taken.
        Workers that have exited are looked at first, then each is waited for in turn."""
        started = [index for index in unsettled if index in self._worker_of]
        processes = [
            (index, self._processes[self._worker_of[index]])
            for index in started
            if self._worker_of[index] in self._processes
        ]
        for wait_s in (0.0, DEATH_WAIT_S):
            for index, process in processes:
                if wait_s:
                    process.join(timeout=wait_s)
                if process.exitcode is not None and process.exitcode != -signal.SIGTERM:
                    return index
        return (started or unsettled)[0]

    def stop(self) -> None:
        """Stop every worker now (SIGTERM, then SIGKILL after 5 s) and drop queued jobs."""
        # The executor's own list of its processes (Python 3.14 adds `terminate_workers()`).
        processes = list((self._executor._processes or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self._executor.shutdown(wait=True, cancel_futures=True)


class InProcessPool:
    """`WorkerPool`'s interface, running the jobs one after another in this process: with one
    worker, a spawned process would only add its start-up (about 3 s of imports)."""

    def map(
        self,
        function: Callable[..., Any],
        jobs: Sequence[tuple[Any, ...]],
        describe: Callable[[int], str],
        on_event: Callable[[Any], None] = lambda event: None,
    ) -> list[Any]:
        """As `WorkerPool.map`; `describe` names the job that raised in a note on its error."""
        global _on_event
        _on_event = on_event
        results = []
        try:
            for index, job in enumerate(jobs):
                try:
                    results.append(function(*job))
                except Exception as error:
                    error.add_note(f"in {describe(index)}")
                    setattr(error, JOB_INDEX, index)
                    raise
        finally:
            _on_event = None
        return results


@contextmanager
def worker_pool(workers: int) -> Iterator[WorkerPool | InProcessPool]:
    """A pool of `workers` spawned processes, stopped when the block ends, however it ends;
    with one worker, the jobs run in this process (same results: see the module's docstring)."""
    if workers == 1:
        yield InProcessPool()
        return
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(events, os.getpid()),
    )
    pool = WorkerPool(executor, events)
    try:
        yield pool
    except BaseException:
        pool.stop()
        raise
    else:
        executor.shutdown(wait=True)
    finally:
        events.close()
        events.join_thread()
