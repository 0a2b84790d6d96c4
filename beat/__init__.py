"""Periodic maintenance jobs, run by Celery beat on queue `maintenance`.

    schedule      when each job runs (`configure(app, settings)`, called by `evmonitor.app`)
    jobs          the Celery tasks `evmonitor.maintenance.<job>` (shared tasks): thin wrappers passing `now`
    runner        the jobs as plain calls (tests, the CLI)
    watermark     the moment live judgments use: the pipeline's event-time watermark
    notify        alert notifications: the outbox, a signed webhook and e-mail, with retries
    leader        one beat at a time (a PostgreSQL advisory lock)
    rollups       hourly and daily rollups, in SQL
    stale         stale sessions
    faults        connector faults, offline stations, maintenance flags, availability
    daily_report  the daily report, from the database (rendered by `evmonitor.reports`)
    monthly_report  the monthly report per charging port; report_uptime: the reports' one view of uptime
    stations, deadletters   the charging-stations and charging-deadletters indices
    retention     drops what is older than the EVMON_RETENTION_* settings
    alerts, days  pure rules; alert_store, indexes: their storage
    outages       the outage ledger per port (recomputed; operators' causes and their audit)
    sessions      session quality: which ended sessions failed to deliver energy (a ledger signal)
    uptime_rules  outages per port and the uptime formula (pure); uptime: its query

Beat never imports `workers`: the Celery app composes both.
"""

from beat.leader import LeaderLock
from beat.runner import (
    Context,
    do_daily_report,
    do_deadletters,
    do_faults,
    do_monthly_report,
    do_outages,
    do_prune_batch_markers,
    do_retention,
    do_rollups,
    do_stale_sessions,
    do_stations,
    run_all,
)
from beat.schedule import INTERVAL_JOBS, beat_schedule, configure

__all__ = [
    "INTERVAL_JOBS",
    "Context",
    "LeaderLock",
    "beat_schedule",
    "configure",
    "do_daily_report",
    "do_deadletters",
    "do_faults",
    "do_monthly_report",
    "do_outages",
    "do_prune_batch_markers",
    "do_retention",
    "do_rollups",
    "do_stale_sessions",
    "do_stations",
    "run_all",
]
