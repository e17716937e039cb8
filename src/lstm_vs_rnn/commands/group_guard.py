"""Run a command as the guard of its own process group: when whoever started the guard dies,
even by SIGKILL, the whole group goes with it.

`python -m lstm_vs_rnn.commands.group_guard COMMAND...`, started in a new session
(`start_new_session=True`). A parent-death signal (prctl PR_SET_PDEATHSIG) reaches one process
only, and `mlflow server` runs its HTTP server as a child of its own: signalled alone, the
`mlflow` process would exit and leave that child holding the port. The guard gets the signal
instead and passes SIGTERM to every process of its group. SIGTERM, SIGINT or SIGHUP sent to the
guard do the same; it exits with the command's exit code.
"""

import os
import signal
import subprocess
import sys
from types import FrameType

from lstm_vs_rnn.processes import die_with_parent

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _stop_group(signum: int, frame: FrameType | None) -> None:
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)


def main() -> None:
    parent = os.getppid()
    die_with_parent(signal.SIGTERM)
    for stop in STOP_SIGNALS:
        signal.signal(stop, _stop_group)
    # Its starter may have held them back while starting it (see mlflow_server.MlflowServer).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit(1)
    command = subprocess.Popen(sys.argv[1:])
    while True:
        try:
            sys.exit(command.wait())
        except InterruptedError:
            continue


if __name__ == "__main__":
    main()
