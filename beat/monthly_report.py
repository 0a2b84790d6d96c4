"""The monthly report job: per charging port uptime, outages with causes, sessions; HTML and CSV.

Beat runs it on the first day of each month at `report_time` (EVMON_TIMEZONE) for the month
before; `evmonitor report --month YYYY-MM` runs it on demand. Like the daily report, one
already recorded is left alone unless `force`d, so a second beat run changes nothing. Files are
written atomically (a temporary file renamed over the old one), and the same data at the same
`now` gives the same bytes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from beat.daily_report import record_report, report_base, write_atomically
from beat.db import try_job_lock
from beat.report_uptime import as_port_uptime, failed_sessions_sql, period_has_data, port_uptime
from evmonitor.config import Settings
from evmonitor.days import day_bounds
from evmonitor.ledger import Uptime, month_days
from evmonitor.reports.coverage import coverage
from evmonitor.reports.monthly import DayOutage, MonthlyReport, MonthTotals, OutageLine, PortMonth
from evmonitor.reports.monthly_render import render_monthly_csv, render_monthly_html
from evmonitor.storage.postgres import translate_errors

__all__ = ["build_monthly_report", "load_monthly_report", "monthly_paths", "monthly_report_built", "previous_month"]

ZERO = Decimal(0)
MILLI = Decimal("0.001")


def previous_month(now: datetime, settings: Settings) -> str:
    """`YYYY-MM` of the last local month that is over at `now`."""
    today = now.astimezone(settings.zone).date()
    last = today.replace(day=1) - timedelta(days=1)
    return last.strftime("%Y-%m")


def monthly_paths(settings: Settings, month: str) -> tuple[Path, Path]:
    base = report_base(settings, "monthly", month)
    return base.with_suffix(".html"), base.with_suffix(".csv")


def _minutes(a: datetime, b: datetime) -> Decimal:
    return (Decimal((b - a) // timedelta(microseconds=1)) / 60_000_000).quantize(MILLI) if b > a else ZERO


def load_monthly_report(conn: sa.Connection, engine: sa.Engine, settings: Settings, month: str, now: datetime) -> MonthlyReport:
    """The report of local month `month` (YYYY-MM) from the outage ledger, stations and sessions."""
    zone = settings.zone
    first_day, last_day = month_days(month)
    t0, t1 = day_bounds(first_day, zone)[0], day_bounds(last_day, zone)[1]
    cut = min(t1, now)
    has_data = period_has_data(conn, t0, t1)
    figures = {k: f for k, f in port_uptime(engine, settings, first_day, last_day, now).items() if k[1] is not None}
    stations = {r.id: r for r in conn.execute(sa.text(
        "SELECT id, name, first_seen_at FROM charging_stations WHERE first_seen_at < :t1"), {"t1": t1})}  # fmt: skip
    failed_sql, failed_known = failed_sessions_sql(conn)
    sessions = {(r.station_id, r.connector_id): r for r in conn.execute(sa.text(
        f"SELECT station_id, connector_id, count(*) AS n, {failed_sql} AS failed, "
        "coalesce(sum(energy_delivered_kwh), 0) AS kwh, max(peak_power_kw) AS peak "
        "FROM charging_sessions WHERE start_time >= :t0 AND start_time < :t1 GROUP BY station_id, connector_id"),
        {"t0": t0, "t1": t1})}  # fmt: skip
    excluded = {str(c) for c in settings.uptime_excluded_causes}
    outages: dict[tuple[str, int], list[OutageLine]] = defaultdict(list)
    for o in conn.execute(sa.text(
        "SELECT id, station_id, connector_id, started_at, ended_at, signals, error_code, cause, note FROM port_outages "
        "WHERE started_at < :cut AND coalesce(ended_at, 'infinity') > :t0 ORDER BY started_at, id"),
        {"t0": t0, "cut": cut},
    ):  # fmt: skip
        outages[(o.station_id, o.connector_id)].append(OutageLine(
            outage_id=o.id, station_id=o.station_id, connector_id=o.connector_id,
            started_at=o.started_at.astimezone(zone), ended_at=o.ended_at.astimezone(zone) if o.ended_at else None,
            minutes_in_month=_minutes(max(o.started_at, t0), min(o.ended_at or cut, cut)),
            signals=tuple(o.signals), error_code=o.error_code, cause=o.cause, excluded=o.cause in excluded, note=o.note,
        ))  # fmt: skip

    ports: list[PortMonth] = []
    total = Uptime(0, 0, 0)
    for key in sorted({*figures, *sessions, *outages}):
        station_id, connector_id = key
        station = stations.get(station_id)
        fig = figures.get(key, Uptime(0, 0, 0))
        cov = coverage("month", t0, t1, now=now, first_seen_at=station.first_seen_at if station else None,
                       has_data=has_data and fig.total_us > 0, zone=zone)  # fmt: skip
        if not cov.no_data:
            total += fig
        s = sessions.get(key)
        ports.append(PortMonth(
            station_id=station_id, station_name=station.name if station else station_id, connector_id=connector_id,
            coverage=cov, uptime=as_port_uptime(fig), sessions=s.n if s else 0, failed_sessions=int(s.failed) if s else 0,
            energy_kwh=s.kwh if s else ZERO, peak_kw=s.peak if s else None, outages=outages.get(key, []),
        ))  # fmt: skip

    days: list[DayOutage] = []
    day = first_day
    while day <= last_day:
        one = {k: f for k, f in port_uptime(engine, settings, day, day, now).items() if k[1] is not None} \
            if has_data and day_bounds(day, zone)[0] < now else {}
        covered = any(f.total_us for f in one.values())
        days.append(DayOutage(
            day=day, counted_min=sum((f.minutes(f.outage_us - f.excluded_us) for f in one.values()), ZERO),
            excluded_min=sum((f.excluded_min for f in one.values()), ZERO), covered=covered,
        ))  # fmt: skip
        day += timedelta(days=1)

    network_first_seen = min((s.first_seen_at for s in stations.values()), default=None)
    measured = [p for p in ports if p.uptime_pct is not None]
    peaks = [p.peak_kw for p in ports if p.peak_kw is not None]
    totals = MonthTotals(
        stations=len({p.station_id for p in ports}), ports=len(ports), uptime=as_port_uptime(total),
        outages=sum(len(p.outages) for p in ports), sessions=sum(p.sessions for p in ports),
        failed_sessions=sum(p.failed_sessions for p in ports), energy_kwh=sum((p.energy_kwh for p in ports), ZERO),
        peak_kw=max(peaks) if peaks else None,
        ports_below_target=sum(p.uptime_pct < settings.uptime_target_pct for p in measured),
    )  # fmt: skip
    return MonthlyReport(
        network=settings.network_name, month=first_day, timezone=settings.timezone, generated_at=now.astimezone(zone),
        coverage=coverage("month", t0, t1, now=now, first_seen_at=network_first_seen, has_data=has_data, zone=zone),
        totals=totals, ports=ports, days=days, target_pct=settings.uptime_target_pct,
        excluded_causes=tuple(sorted(excluded)), failed_sessions_known=failed_known,
    )  # fmt: skip


def _built(conn: sa.Connection, settings: Settings, month: str) -> dict[str, Any] | None:
    existing = conn.execute(
        sa.text("SELECT html_path, csv_path FROM reports WHERE network = :n AND day = :d AND kind = 'monthly'"),
        {"n": settings.network_name, "d": month_days(month)[0]},
    ).first()
    if existing and Path(existing.html_path).exists() and Path(existing.csv_path).exists():
        return {"skipped": "already built", "month": month, "html": existing.html_path}
    return None


def monthly_report_built(engine: sa.Engine, settings: Settings, month: str) -> dict[str, Any] | None:
    """The `skipped` answer if the report of `month` is recorded and both its files exist, else None."""
    with translate_errors(), engine.connect() as conn:
        return _built(conn, settings, month)


def build_monthly_report(
    engine: sa.Engine, settings: Settings, month: str, now: datetime, *, force: bool = False
) -> dict[str, Any]:
    """Write the report of `month` (YYYY-MM) and record it in `reports`; skip one already there unless `force`."""
    month_days(month)  # a malformed month fails here, before any lock or file
    html_path, csv_path = monthly_paths(settings, month)
    with translate_errors(), engine.begin() as conn:
        if not try_job_lock(conn, "monthly_report"):
            return {"skipped": "another run holds the lock"}
        if not force and (done := _built(conn, settings, month)) is not None:
            return done
        report = load_monthly_report(conn, engine, settings, month, now)
        write_atomically(html_path, render_monthly_html(report))
        write_atomically(csv_path, render_monthly_csv(report))
        _record(conn, settings, report, html_path, csv_path, now)
    t = report.totals
    return {"month": month, "html": str(html_path.resolve()), "csv": str(csv_path.resolve()), "ports": t.ports,
            "uptime_pct": None if report.coverage.no_data or t.uptime.uptime_pct is None else str(t.uptime.uptime_pct),
            "coverage": report.coverage.label(), "outages": t.outages, "sessions": t.sessions,
            "energy_kwh": str(t.energy_kwh)}  # fmt: skip


def _record(conn: sa.Connection, settings: Settings, report: MonthlyReport, html: Path, csv: Path, now: datetime) -> None:
    """One row in `reports` (kind 'monthly', day = the month's first day); availability_pct holds the network uptime."""
    t0, t1 = day_bounds(report.month, settings.zone)[0], day_bounds(report.days[-1].day, settings.zone)[1]
    money = conn.execute(sa.text(
        "SELECT count(*) FILTER (WHERE end_time IS NOT NULL) AS completed, coalesce(sum(cost_eur), 0) AS eur "
        "FROM charging_sessions WHERE start_time >= :t0 AND start_time < :t1"), {"t0": t0, "t1": t1}).one()  # fmt: skip
    util = conn.execute(sa.text(
        "SELECT coalesce(round(sum(occupied_connector_min) * 100 / nullif(sum(capacity_connector_min), 0), 2), 0) "
        "FROM daily_rollups WHERE scope = 'network' AND day BETWEEN :a AND :b"),
        {"a": report.month, "b": report.days[-1].day}).scalar_one()  # fmt: skip
    t = report.totals
    uptime = None if report.coverage.no_data or t.uptime.uptime_pct is None else round(t.uptime.uptime_pct, 2)
    record_report(conn, {
        "network": settings.network_name, "day": report.month, "kind": "monthly", "tz": settings.timezone,
        "html": str(html.resolve()), "csv": str(csv.resolve()), "stations": t.stations, "started": t.sessions,
        "completed": money.completed, "kwh": t.energy_kwh, "eur": money.eur, "util": util, "pct": uptime,
        "open": sum(o.ended_at is None for o in report.outages),
        "closed": sum(o.ended_at is not None for o in report.outages), "now": now,
    })  # fmt: skip
