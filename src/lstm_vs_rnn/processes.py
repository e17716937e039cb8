"""Child processes that never outlive the process that started them, and the cores they may
run on."""

import ctypes
import os
import signal
import sys

# prctl(2) option: the signal a process gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send `signum` to this process when its parent ends (prctl PR_SET_PDEATHSIG,
    see prctl(2)), so a parent killed even by SIGKILL leaves no orphan; a no-op elsewhere.

    Called in the child: as `subprocess.Popen(preexec_fn=...)` (after any change of user, which
    would clear the setting) or as a process pool's initializer. Raises OSError if refused.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and `taskset`
    restrict; os.cpu_count() counts the machine's), the default number of worker processes."""
    return len(os.sched_getaffinity(0))
