"""When beat runs each maintenance job. `configure(app, settings)` installs it on a Celery app.

Interval jobs also run once as soon as beat starts (a restarted beat brings rollups and alerts up
to date at once instead of one interval later); each interval job expires after one interval,
so a backlog built while no maintenance worker ran collapses into one run instead of many.
The daily report runs at `report_time` in the app's time zone (`EVMON_TIMEZONE`); the monthly
report (last month's) at the same time on the first day of each month.

`evmonitor.app` calls `configure` when it composes the Celery app; beat imports no app.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.schedules import crontab
from celery.signals import beat_init

from evmonitor.config import Settings
from evmonitor.names import MAINTENANCE_TASK_PREFIX, Queue

__all__ = ["INTERVAL_JOBS", "beat_schedule", "configure"]

TASK_PREFIX = MAINTENANCE_TASK_PREFIX

# entry name -> (task name, the Settings field holding its interval in seconds)
INTERVAL_JOBS: dict[str, tuple[str, str]] = {
    "conflicts": (TASK_PREFIX + "hold_conflicts", "alerts_interval_s"),
    "rollups": (TASK_PREFIX + "rollup_hours", "rollup_interval_s"),
    "stale-sessions": (TASK_PREFIX + "mark_stale_sessions", "alerts_interval_s"),
    "faults": (TASK_PREFIX + "track_faults", "alerts_interval_s"),
    "stations": (TASK_PREFIX + "index_stations", "alerts_interval_s"),
    "deadletters": (TASK_PREFIX + "index_deadletters", "deadletter_interval_s"),
    "batch-markers": (TASK_PREFIX + "prune_batch_markers", "batch_marker_retention_s"),
    "retention": (TASK_PREFIX + "apply_retention", "retention_interval_s"),
    "outages": (TASK_PREFIX + "track_outages", "outages_interval_s"),
    "notify": (TASK_PREFIX + "deliver_notifications", "notify_interval_s"),
}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The `beat_schedule` mapping for these settings."""
    schedule: dict[str, dict[str, Any]] = {}
    for entry, (task, field) in INTERVAL_JOBS.items():
        every_s = float(getattr(settings, field))
        if entry == "batch-markers":
            every_s = min(every_s, 3600.0)  # prune hourly at most, whatever the retention
        schedule[entry] = {
            "task": task,
            "schedule": timedelta(seconds=every_s),
            "options": {"queue": Queue.MAINTENANCE, "expires": every_s},
        }
    clock = settings.report_clock
    schedule["daily-report"] = {
        "task": TASK_PREFIX + "daily_report",
        "schedule": crontab(minute=clock.minute, hour=clock.hour),
        "options": {"queue": Queue.MAINTENANCE},
    }
    schedule["monthly-report"] = {
        "task": TASK_PREFIX + "monthly_report",
        "schedule": crontab(minute=clock.minute, hour=clock.hour, day_of_month=1),
        "options": {"queue": Queue.MAINTENANCE},
    }
    return schedule


def configure(app: Any, settings: Settings) -> None:
    """Install the maintenance schedule on `app`; run the interval jobs once when beat starts."""
    app.conf.beat_schedule = beat_schedule(settings)

    def kick(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        for task, _field in INTERVAL_JOBS.values():
            app.send_task(task, queue=Queue.MAINTENANCE)

    beat_init.connect(kick, weak=False, dispatch_uid=f"evmonitor-beat-kick-{id(app)}")
