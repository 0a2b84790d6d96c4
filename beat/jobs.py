"""Maintenance tasks, run by beat on queue `maintenance` (routed by the `evmonitor.maintenance.*` name).

Each task is a thin wrapper: it reads the wall clock once and passes it as `now` (or takes `now`
as an ISO 8601 argument, to replay a moment) to a job in `beat.runner`, whose logic never reads a
clock. The judgments of stale sessions, offline stations and outages run live at the pipeline's
event-time watermark instead (`beat.watermark`), and wait while it is unknown. Every job is idempotent, acknowledged late, and retried with backoff while a store is down
(`TransientError`); the next beat tick would redo it anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

from celery import Task, shared_task

from beat import runner
from beat.watermark import judgment_time
from evmonitor.errors import TransientError
from evmonitor.runtime import connections

__all__ = [
    "daily_report",
    "deliver_notifications",
    "monthly_report",
    "hold_conflicts",
    "index_deadletters",
    "mark_stale_sessions",
    "prune_batch_markers",
    "apply_retention",
    "rollup_hours",
    "track_faults",
    "index_stations",
    "track_outages",
]

def _context(celery_app: Any) -> runner.Context:
    """The jobs' view of this process's shared connections (`evmonitor.runtime`)."""
    settings = celery_app.conf.evmonitor_settings
    return runner.Context(settings, connections(settings))


def _now(now: str | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    moment = datetime.fromisoformat(now)
    if moment.tzinfo is None:
        raise ValueError(f"now={now!r} has no UTC offset")
    return moment


WAITING = {"skipped": "waiting for the pipeline's watermark: a partition has processed nothing yet"}


def _judged(ctx: runner.Context, now: str | None) -> datetime | None:
    """An explicit `now` is judged as given; a live run at the watermark (None: wait)."""
    if now is not None:
        return _now(now)
    return judgment_time(ctx.engine, datetime.now(timezone.utc))


def _at_watermark(task: Task, now: str | None, job: Callable[[runner.Context, datetime], dict[str, Any]]) -> dict[str, Any]:
    """Run `job` judged at `_judged`'s time, or say it is waiting for the watermark."""
    ctx = _context(task.app)
    judged = _judged(ctx, now)
    return WAITING if judged is None else job(ctx, judged)


class MaintenanceTask(Task):
    acks_late = True
    autoretry_for = (TransientError,)
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 5


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.rollup_hours")
def rollup_hours(self: Task, now: str | None = None, days: list[str] | None = None) -> dict[str, Any]:
    """Recompute the hourly and daily rollups that new or late events touched."""
    return runner.do_rollups(_context(self.app), _now(now), [date.fromisoformat(d) for d in days or ()])


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.mark_stale_sessions")
def mark_stale_sessions(self: Task, now: str | None = None) -> dict[str, Any]:
    """Mark silent active sessions stale and alert; close alerts of sessions that moved on."""
    return _at_watermark(self, now, runner.do_stale_sessions)


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.hold_conflicts")
def hold_conflicts(self: Task, now: str | None = None) -> dict[str, Any]:
    """Join stations' max power into sessions; alert on held sessions, close resolved alerts."""
    return runner.do_conflicts(_context(self.app), _now(now))


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.track_faults")
def track_faults(self: Task, now: str | None = None) -> dict[str, Any]:
    """Fault, offline and maintenance alerts; availability per station and day."""
    return _at_watermark(self, now, runner.do_faults)


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.index_stations")
def index_stations(self: Task, now: str | None = None) -> dict[str, Any]:
    """Refresh charging-stations: every station's location and current status, for the map."""
    return _at_watermark(self, now, runner.do_stations)  # "Offline" on the map is an offline judgment too


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.index_deadletters")
def index_deadletters(self: Task) -> dict[str, Any]:
    """Copy new records of ev.deadletter into the charging-deadletters index."""
    return runner.do_deadletters(_context(self.app))


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.prune_batch_markers")
def prune_batch_markers(self: Task, now: str | None = None) -> dict[str, Any]:
    """Delete ingest_batches markers left behind (the bridge forgets committed ones itself)."""
    return runner.do_prune_batch_markers(_context(self.app), _now(now))


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.daily_report")
def daily_report(self: Task, now: str | None = None, day: str | None = None, force: bool = False) -> dict[str, Any]:
    """Build the daily report of `day` (default: yesterday in the configured time zone)."""
    ctx = _context(self.app)
    return runner.do_daily_report(ctx, _now(now), date.fromisoformat(day) if day else None, force=force,
                                  judge_at=_judged(ctx, now))  # fmt: skip


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.monthly_report")
def monthly_report(self: Task, now: str | None = None, month: str | None = None, force: bool = False) -> dict[str, Any]:
    """Build the monthly report of `month` (YYYY-MM; default: last month in the configured time zone) once."""
    ctx = _context(self.app)
    return runner.do_monthly_report(ctx, _now(now), month, force=force, judge_at=_judged(ctx, now))


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.apply_retention")
def apply_retention(self: Task, now: str | None = None) -> dict[str, Any]:
    """Drop event indices, status history, closed alerts and hourly rollups past the retention settings."""
    return runner.do_retention(_context(self.app), _now(now))


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.track_outages")
def track_outages(self: Task, now: str | None = None) -> dict[str, Any]:
    """Recompute the outage ledger per port within the lookback window (operators' causes kept)."""
    return _at_watermark(self, now, runner.do_outages)


@shared_task(base=MaintenanceTask, bind=True, name="evmonitor.maintenance.deliver_notifications")
def deliver_notifications(self: Task, now: str | None = None) -> dict[str, Any]:
    """Send due alert notifications (webhook, e-mail) from the outbox; failures wait their backoff."""
    return runner.do_notify(_context(self.app), _now(now))
