"""Small PostgreSQL helpers shared by the jobs."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

__all__ = ["try_job_lock"]


def _lock_key(job: str) -> int:
    return int.from_bytes(hashlib.sha256(f"evmonitor.maintenance.{job}".encode()).digest()[:8], "big", signed=True)


def try_job_lock(conn: sa.Connection, job: str) -> bool:
    """Take the job's transaction-scoped advisory lock, or return False if another run holds it.

    Two runs of one job at once would do the same work twice (beat ticking while a slow run is
    still going, or several maintenance workers); the second simply skips.
    """
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _lock_key(job)}).scalar())
