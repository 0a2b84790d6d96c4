"""The maintenance jobs as plain calls: what each Celery task runs, and what tests and the CLI call.

`Context` holds the settings and the per-process connections; each `do_*` function takes the
time as `now` and never reads a clock.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from beat.alert_store import sync_alerts
from beat.conflicts import hold_conflicts
from beat.daily_report import build_daily_report
from evmonitor.days import previous_day
from beat.deadletters import index_deadletters
from beat.faults import track_faults
from beat.notify import deliver_notifications
from beat.monthly_report import build_monthly_report, monthly_report_built, previous_month
from beat.outages import ledger_marks, track_outages
from beat.retention import apply_retention
from beat.sessions import judge_sessions
from beat.rollups import refresh_rollups
from beat.stale import mark_stale_sessions
from beat.stations import sync_stations
from beat.uptime import track_uptime_alerts
from evmonitor.config import Settings
from evmonitor.runtime import Connections
from evmonitor.storage.kafka import translate_errors as kafka_errors
from evmonitor.storage.postgres import translate_errors

__all__ = [
    "Context",
    "do_conflicts",
    "do_daily_report",
    "do_deadletters",
    "do_monthly_report",
    "do_faults",
    "do_notify",
    "do_outages",
    "do_prune_batch_markers",
    "do_retention",
    "do_rollups",
    "do_stale_sessions",
    "do_stations",
    "run_all",
]


class Context:
    """What a job needs: the one `Settings` and this process's connections (`evmonitor.runtime`).

    Tasks use the process's shared connections; the CLI and tests make a Context of their own
    and `close()` it.
    """

    def __init__(self, settings: Settings, conns: Connections | None = None) -> None:
        self.settings = settings
        self._own = conns is None
        self.conns = conns or Connections(settings)

    @property
    def engine(self) -> sa.Engine:
        return self.conns.engine

    @property
    def search(self) -> Any:
        return self.conns.search_client

    def deadletter_consumer(self) -> Any:
        from kafka import KafkaConsumer

        return KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.settings.deadletter_consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=15000,
        )

    def close(self) -> None:
        if self._own:
            self.conns.close()


def do_conflicts(ctx: Context, now: datetime) -> dict[str, Any]:
    result = hold_conflicts(ctx.engine, ctx.settings, now)
    result["indexed"] = sync_alerts(ctx.engine, ctx.search, ctx.settings.alerts_index)
    return result


def do_rollups(ctx: Context, now: datetime, days: list[date] | tuple[date, ...] = ()) -> dict[str, Any]:
    return refresh_rollups(ctx.engine, ctx.settings, now, days=days)


def do_stale_sessions(ctx: Context, now: datetime) -> dict[str, Any]:
    result = mark_stale_sessions(ctx.engine, ctx.settings, now)
    result["indexed"] = sync_alerts(ctx.engine, ctx.search, ctx.settings.alerts_index)
    return result


def do_faults(ctx: Context, now: datetime, days: list[date] | tuple[date, ...] = ()) -> dict[str, Any]:
    result = track_faults(ctx.engine, ctx.settings, now, days=days)
    while result.get("more"):
        result = track_faults(ctx.engine, ctx.settings, now)
    result["indexed"] = sync_alerts(ctx.engine, ctx.search, ctx.settings.alerts_index)
    return result


def do_stations(ctx: Context, now: datetime) -> dict[str, Any]:
    return sync_stations(ctx.engine, ctx.search, ctx.settings.stations_index, ctx.settings, now)


def do_deadletters(ctx: Context) -> dict[str, Any]:
    with kafka_errors():
        consumer = ctx.deadletter_consumer()
    try:
        indexed = index_deadletters(consumer, ctx.search, topic=ctx.settings.deadletter_topic,
                                    index=ctx.settings.deadletters_index, batch_max=ctx.settings.deadletter_batch_max)  # fmt: skip
    finally:
        consumer.close(autocommit=False)
    return {"indexed": indexed}


def do_prune_batch_markers(ctx: Context, now: datetime) -> dict[str, Any]:
    cutoff = now - timedelta(seconds=ctx.settings.batch_marker_retention_s)
    with translate_errors(), ctx.engine.begin() as conn:
        deleted = conn.execute(sa.text("DELETE FROM ingest_batches WHERE completed_at < :cutoff"), {"cutoff": cutoff})
    return {"deleted": deleted.rowcount}


def do_retention(ctx: Context, now: datetime) -> dict[str, Any]:
    return apply_retention(ctx.engine, ctx.search, ctx.settings, now)


_AS_NOW = object()


def do_daily_report(
    ctx: Context, now: datetime, day: date | None = None, *, force: bool = False, judge_at: Any = _AS_NOW
) -> dict[str, Any]:
    """Bring rollups, alerts and the outage ledger up to date for `day` (default: yesterday, local), then build it.

    Stale sessions and faults are judged at `judge_at` (default `now`; the live task passes the
    pipeline's watermark, None while it is unknown: then they are left as last judged)."""
    day = day or previous_day(now, ctx.settings.zone)
    judged = now if judge_at is _AS_NOW else judge_at
    do_conflicts(ctx, now)  # first: a session it holds leaves the rollups
    do_rollups(ctx, now, [day])
    if judged is not None:
        do_stale_sessions(ctx, judged)
        do_faults(ctx, judged, [day])
        do_outages(ctx, judged)  # the per-port uptime line reads the ledger, which reads the offline episodes
    return build_daily_report(ctx.engine, ctx.settings, day, now, force=force)


def do_monthly_report(ctx: Context, now: datetime, month: str | None = None, *, force: bool = False,
                      judge_at: Any = _AS_NOW) -> dict[str, Any]:  # fmt: skip
    """Bring alerts and the outage ledger up to date, then build the report of `month` (YYYY-MM;
    default: last month, local). Already built and not `force`d: nothing is recomputed or written.

    Faults and outages are judged at `judge_at`, as in `do_daily_report`."""
    month = month or previous_month(now, ctx.settings)
    if not force and (done := monthly_report_built(ctx.engine, ctx.settings, month)) is not None:
        return done  # beat's second tick of the day: leave the ledger jobs to their own schedule
    judged = now if judge_at is _AS_NOW else judge_at
    do_conflicts(ctx, now)
    do_rollups(ctx, now)
    if judged is not None:
        do_faults(ctx, judged)
        do_outages(ctx, judged)
    return build_monthly_report(ctx.engine, ctx.settings, month, now, force=force)


def do_outages(ctx: Context, now: datetime) -> dict[str, Any]:
    """Judge ended sessions, recompute the outage ledger (after do_faults, whose offline episodes it
    reads; failed sessions are outages too), then uptime alerts."""
    since, marks_upto = ledger_marks(ctx.engine)  # late history: both redraw from there
    sessions = judge_sessions(ctx.engine, ctx.settings, now, since=since)
    result = track_outages(ctx.engine, ctx.settings, now, since=since, marks_upto=marks_upto)
    result["sessions"] = sessions
    result["uptime_alerts"] = track_uptime_alerts(ctx.engine, ctx.settings, now)
    result["indexed"] = sync_alerts(ctx.engine, ctx.search, ctx.settings.alerts_index)
    return result


def do_notify(ctx: Context, now: datetime) -> dict[str, Any]:
    """Send the alert notifications that are due (beat.notify)."""
    return deliver_notifications(ctx.engine, ctx.settings, now)


def run_all(ctx: Context, now: datetime) -> dict[str, Any]:
    """Every periodic job once, in dependency order (held sessions before rollups, rollups and
    alerts before the report)."""
    return {
        "conflicts": do_conflicts(ctx, now),
        "rollups": do_rollups(ctx, now),
        "stale_sessions": do_stale_sessions(ctx, now),
        "faults": do_faults(ctx, now),
        "outages": do_outages(ctx, now),
        "stations": do_stations(ctx, now),
        "deadletters": do_deadletters(ctx),
        "batch_markers": do_prune_batch_markers(ctx, now),
        "retention": do_retention(ctx, now),
        "daily_report": do_daily_report(ctx, now),
        "notify": do_notify(ctx, now),
    }
