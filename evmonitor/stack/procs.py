"""Processes and ports: start a program detached with its log, wait for it, stop it gracefully."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evmonitor.errors import ConfigError

__all__ = ["Proc", "free_port", "port_open", "spawn", "stop", "stop_all", "wait_for"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str, hint: str = "", interval_s: float = 0.1) -> None:
    """Poll `check` until it is true or `timeout_s` passes; then raise a ConfigError saying what to do."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except ConfigError:  # the check knows waiting is pointless, and why
            raise
        except Exception:  # a check that raises is a check that has not passed yet
            pass
        if time.monotonic() >= deadline:
            raise ConfigError(f"{what} not ready after {timeout_s:.0f}s. {hint}".strip())
        time.sleep(interval_s)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: tells a pid apart from its reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Proc:
    name: str
    pid: int
    cmd: list[str]
    log: str
    address: str = ""
    started_at: float = field(default_factory=time.time)
    start_ticks: int | None = None

    def alive(self) -> bool:
        ticks = _start_ticks(self.pid)
        if ticks is None:
            return False
        if self.start_ticks is not None and ticks != self.start_ticks:
            return False  # the pid was reused by another process
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when the parent goes away."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(name: str, cmd: Sequence[str], *, log_dir: Path, env: dict[str, str] | None = None, address: str = "",
          cwd: Path | None = None, die_with_parent: bool = False) -> Proc:  # fmt: skip
    """Start `cmd` in its own session, output appended to `<log_dir>/<name>.log`.

    It outlives us (what `evmonitor up --detach` needs), unless `die_with_parent`: then it gets
    SIGTERM when we exit, however we exit (what throw-away sandboxes need: a killed test run
    leaves no workers behind).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
        )
    return Proc(name=name, pid=proc.pid, cmd=list(cmd), log=str(log_path), address=address, start_ticks=_start_ticks(proc.pid))


def stop(proc: Proc, *, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """Send `sig`, wait up to `timeout_s` for exit, then SIGKILL. True if it exited gracefully."""
    if not proc.alive():
        return True
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(proc.pid)
        if not proc.alive():
            return True
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap(proc.pid)
    return False


def stop_all(procs: list[Proc], *, timeout_s: float = 15.0) -> None:
    """SIGTERM every process at once, wait for all (one shared deadline), SIGKILL the rest."""
    for proc in procs:
        if proc.alive():
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        stop(proc, timeout_s=max(0.0, deadline - time.monotonic()))


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
