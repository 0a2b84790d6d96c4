"""N copies of one process: `evmonitor worker --pool solo -c N` runs N solo Celery workers.

A solo worker runs its tasks in the process that consumed them (one decode, no pipe to a
child), so it scales by processes, not by a pool. This parent forks the N workers, forwards
SIGTERM, SIGINT and SIGQUIT to them (each then shuts down as a Celery worker does: SIGTERM
finishes the running task) and exits when all of them have, with the first failure's status.
Supervisors, the sandbox and `kill` see one process group, as with prefork.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable

__all__ = ["FORWARDED", "run_forked"]

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the parent dies without forwarding (SIGKILL)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit_code(exc: SystemExit) -> int:
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def run_forked(n: int, child: Callable[[int], object]) -> int:
    """Run `child(i)` for i = 1..n, each in a forked process; return when all have exited.

    The exit status is 0 if every child exited 0, else the first non-zero one (128 + signal
    for a child killed by a signal).
    """
    pids: dict[int, int] = {}

    def forward(signum: int, _frame: object) -> None:
        for pid in list(pids):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    # installed before forking: a signal arriving while children start is not lost
    for sig in FORWARDED:
        signal.signal(sig, forward)
    for i in range(1, n + 1):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: its own signal handling (Celery installs its own), never the parent's
            code = 1
            try:
                for sig in FORWARDED:
                    signal.signal(sig, signal.SIG_DFL)
                if sys.platform == "linux":
                    _die_with_parent()
                child(i)
                code = 0
            except SystemExit as exc:
                code = _exit_code(exc)
            except BaseException:  # noqa: BLE001 - reported, then the child's status says it
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids[pid] = i
    status = 0
    while pids:
        try:
            pid, raw = os.wait()  # a forwarded signal interrupts and resumes it (PEP 475)
        except ChildProcessError:
            break
        if pids.pop(pid, None) is None:
            continue
        code = os.waitstatus_to_exitcode(raw)
        if code and not status:
            status = code if code > 0 else 128 - code
    return status
