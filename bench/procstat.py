"""What a process (and everything it started) costs, from the kernel's own accounting.

CPU: `utime + stime` of each live process in the tree, plus `cutime + cstime` of the root (the
CPU of children it has already reaped), from /proc/<pid>/stat. A Celery worker's pool processes
are live children, so a tree sum is the worker's whole cost, whatever its pool did.

Memory: resident set size from /proc/<pid>/status (`VmRSS`, and the kernel's own high-water mark
`VmHWM`). `RssSampler` samples a set of trees in a background thread so a run can also say
whether memory stays flat, not only what the peak was.

Everything here reads /proc only; nothing is sent to the processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CpuMeter", "RssSampler", "cpu_seconds", "descendants", "machine_busy", "own_cpu_seconds", "rss_bytes",
           "peak_rss_bytes"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def own_cpu_seconds() -> float:
    """CPU (user + system) this process has used so far: the bench harness's own cost."""
    t = os.times()
    return t.user + t.system


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces or parentheses: split after the last ')'
    return text.rsplit(")", 1)[1].split()


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def descendants(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """`pid` and every live process below it."""
    children = _children_map() if children is None else children
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_seconds(pid: int, children: dict[int, list[int]] | None = None) -> float:
    """CPU seconds (user + system) used so far by `pid`, its live descendants and reaped children."""
    total = 0
    for i, p in enumerate(descendants(pid, children)):
        fields = _stat_fields(p)
        if fields is None:
            continue
        # after ')': state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
        total += int(fields[11]) + int(fields[12])
        if i == 0:
            total += int(fields[13]) + int(fields[14])
    return total / _TICK


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(pid: int, children: dict[int, list[int]] | None = None) -> int:
    """Resident memory of `pid` and its live descendants, summed."""
    return sum(_status_kb(p, "VmRSS") for p in descendants(pid, children)) * 1024


def peak_rss_bytes(pid: int, children: dict[int, list[int]] | None = None) -> int:
    """The largest high-water mark (`VmHWM`) of any single process in the tree."""
    return max((_status_kb(p, "VmHWM") for p in descendants(pid, children)), default=0) * 1024


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return (total - idle) / _TICK, total / _TICK


@dataclass
class CpuMeter:
    """CPU seconds of named process trees between `start()` and `stop()`.

    `pids` maps a name to one root pid or a callable giving the current pids (for processes
    that come and go, such as PostgreSQL backends); a pid seen only at the end counts from 0.
    """

    pids: dict[str, int | Callable[[], Iterable[int]]]
    _before: dict[str, dict[int, float]] = field(default_factory=dict)
    _machine: tuple[float, float] = (0.0, 0.0)
    _wall: float = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        children = _children_map()
        out: dict[str, dict[int, float]] = {}
        for name, spec in self.pids.items():
            roots = [spec] if isinstance(spec, int) else list(spec())
            out[name] = {p: cpu_seconds(p, children) for p in roots}
        return out

    def start(self) -> None:
        self._before = self._sample()
        self._machine = machine_busy()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """CPU seconds per name since `start()`, plus `_machine_busy` and `_machine_total`."""
        after = self._sample()
        busy, total = machine_busy()
        out = {}
        for name, pids in after.items():
            before = self._before.get(name, {})
            out[name] = sum(max(0.0, cpu - before.get(p, 0.0)) for p, cpu in pids.items())
        out["_machine_busy"] = busy - self._machine[0]
        out["_machine_total"] = total - self._machine[1]
        out["_wall"] = time.monotonic() - self._wall
        return out


class RssSampler:
    """Samples the resident memory of named process trees every `interval_s` in a thread."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.5) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = 0.0

    def _run(self) -> None:
        while True:
            children = _children_map()
            now = time.monotonic() - self._t0
            for name, pid in self.pids.items():
                self.samples[name].append((now, rss_bytes(pid, children)))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> "RssSampler":
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peaks(self) -> dict[str, int]:
        """Per tree, the largest summed RSS sampled, and (where larger) the kernel's per-process high-water mark."""
        out = {}
        for name, pid in self.pids.items():
            sampled = max((rss for _, rss in self.samples[name]), default=0)
            out[name] = max(sampled, peak_rss_bytes(pid))
        return out
