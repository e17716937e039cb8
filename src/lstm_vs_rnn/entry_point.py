"""Entry-point plumbing: user errors become one line on stderr, signals end runs cleanly."""

import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from lstm_vs_rnn.errors import UserError

EXIT_USER_ERROR = 1
# A process whose reader closed its output (`make compare | head`) ends as `cat` would there:
# killed by SIGPIPE, which a shell reports as 128 + 13.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# MLflow's INFO lines ("Validating input example against model signature", "Updating database
# tables", ...) say nothing a user acts on; MLflow reads the level as it loads. The user's own
# MLFLOW_LOGGING_LEVEL wins.
MLFLOW_LOG_LEVEL = "WARNING"
EXIT_INTERRUPTED = 130


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Treat SIGTERM like Ctrl-C so the MLflow run ends KILLED and temporary files go."""
    raise KeyboardInterrupt(f"signal {signum}")


def run_entry_point(
    main: Callable[[], None],
    on_interrupt: str = (
        "interrupted: the MLflow run was marked KILLED; outputs may be partly updated, "
        "'dvc repro' redoes the stage"
    ),
) -> None:
    """Run `main`; exit non-zero with one readable line for anything the user can fix, and
    with the line `on_interrupt` (none if empty) on Ctrl-C or SIGTERM.

    When stdout's reader has closed it (`| head`), the process ends quietly with status
    EXIT_BROKEN_PIPE. On success the process ends at once with `os._exit`: by then every output
    file is closed and renamed into place and every MLflow call has returned, and the
    interpreter's own teardown of torch and MLflow took 0.9-2.1 s per stage (see `make bench`).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", MLFLOW_LOG_LEVEL)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        main()
        sys.stdout.flush()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        if on_interrupt:
            print(on_interrupt, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        _end_quietly_on_closed_output()
    _exit_now()


def _end_quietly_on_closed_output() -> None:
    """Stdout's reader is gone: no traceback (Python would print one, then another for the
    flush at exit); what was still buffered goes nowhere."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    os._exit(EXIT_BROKEN_PIPE)


def _exit_now() -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
