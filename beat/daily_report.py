"""The daily report job: read a local day's rollups and alerts, write HTML and CSV, record them.

Beat runs it at `report_time` for yesterday (local); `evmonitor report --date D` runs it on
demand. A report already recorded is left alone unless `force`d, so a second beat run changes
nothing; an on-demand run rewrites it with the data as it is now.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from beat.alert_store import load_alerts
from beat.alerts import Alert
from evmonitor.days import HOUR, day_bounds
from beat.db import try_job_lock
from beat.report_uptime import as_port_uptime, period_has_data, port_uptime
from evmonitor.config import Settings
from evmonitor.reports import (
    AlertLine,
    DailyReport,
    HourPoint,
    MaintenanceLine,
    PortDay,
    Rules,
    StationDay,
    Totals,
    render_csv,
    render_html,
)
from evmonitor.reports.coverage import coverage
from evmonitor.reports.model import pct
from evmonitor.storage.postgres import translate_errors

__all__ = ["build_daily_report", "load_daily_report", "record_report", "report_base", "report_paths", "write_atomically"]

ZERO = Decimal(0)

_STATIONS = sa.text("""
SELECT st.id, st.name, coalesce(st.operator, '(unknown)') AS operator, coalesce(st.city, '(unknown)') AS city,
       d.connectors, d.sessions_started, d.sessions_completed, d.energy_kwh, d.revenue_eur,
       d.occupied_connector_min, d.utilization_pct,
       a.availability_pct, a.measured_connector_min, a.faulted_connector_min, a.offline_connector_min
FROM daily_rollups d
JOIN charging_stations st ON st.id = d.key
LEFT JOIN station_availability a ON a.station_id = d.key AND a.day = d.day
WHERE d.day = :day AND d.scope = 'station'
ORDER BY st.id
""")

_HOURS = sa.text("""
SELECT hour_start, sum(sessions_started) AS sessions_started, sum(energy_kwh) AS energy_kwh,
       sum(revenue_eur) AS revenue_eur, sum(occupied_connector_min) AS occupied_connector_min
FROM station_hourly WHERE hour_start >= :t0 AND hour_start < :t1 GROUP BY hour_start
""")


def report_base(settings: Settings, kind: str, label: str) -> Path:
    """`<reports folder>/<network slug>-<kind>-<label>`, without a suffix."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", settings.network_name).strip("-") or "network"
    return settings.reports_path / f"{slug}-{kind}-{label}"


def report_paths(settings: Settings, day: date) -> tuple[Path, Path]:
    base = report_base(settings, "daily", day.isoformat())
    return base.with_suffix(".html"), base.with_suffix(".csv")


def _port_lines(conn: sa.Connection, engine: sa.Engine, settings: Settings, day: date, now: datetime,
                names: dict[str, str], has_data: bool) -> list[PortDay]:  # fmt: skip
    """Each port's uptime line for `day` (and each station's, connector_id 0 = the sum of its ports):
    the figures of `beat.uptime`, "no data" or "partial day" when so."""
    t0, t1 = day_bounds(day, settings.zone)
    first_seen = dict(conn.execute(sa.text("SELECT id, first_seen_at FROM charging_stations")).all())
    lines = []
    for (station_id, port), figures in port_uptime(engine, settings, day, day, now).items():
        cov = coverage("day", t0, t1, now=now, first_seen_at=first_seen.get(station_id),
                       has_data=has_data and figures.total_us > 0, zone=settings.zone)  # fmt: skip
        lines.append(PortDay(station_id, names.get(station_id, station_id), port or 0, cov, as_port_uptime(figures)))
    return sorted(lines, key=lambda p: (p.station_id, p.connector_id))


def _line(
    alert: Alert, names: dict[str, str], t1: datetime, now: datetime, settings: Settings, recovered: str
) -> AlertLine:
    zone = settings.zone
    ended = alert.until is not None and alert.until < t1
    return AlertLine(
        kind=str(alert.kind), station_id=alert.station_id, station_name=names.get(alert.station_id, alert.station_id),
        since=alert.since.astimezone(zone), until=alert.until.astimezone(zone) if alert.until else None,
        state=recovered if ended else "open at day end", connector_id=alert.connector_id,
        error_code=alert.error_code, info=alert.info, session_id=alert.session_id,
        until_day_end=min(t1, now).astimezone(zone),
    )  # fmt: skip


def load_daily_report(
    conn: sa.Connection, settings: Settings, day: date, now: datetime, engine: sa.Engine | None = None
) -> DailyReport:
    """The report of local day `day` from the rollup, availability, alert and outage tables.

    With `engine`, also each port's uptime line (read through its own connection)."""
    zone = settings.zone
    t0, t1 = day_bounds(day, zone)
    names = dict(conn.execute(sa.text("SELECT id, name FROM charging_stations")).all())
    overlapping = "since < :t1 AND (until IS NULL OR until >= :t0)"
    faults = load_alerts(conn, f"kind = 'connector_fault' AND {overlapping}", t0=t0, t1=t1)
    offline = load_alerts(conn, f"kind = 'station_offline' AND {overlapping}", t0=t0, t1=t1)
    stale = load_alerts(conn, f"kind = 'session_stale' AND {overlapping}", t0=t0, t1=t1)
    flagged = load_alerts(conn, f"kind = 'maintenance_due' AND {overlapping}", t0=t0, t1=t1)
    faults_of = Counter(f.station_id for f in faults)

    stations = [
        StationDay(
            station_id=r.id, name=r.name, operator=r.operator, city=r.city, connectors=r.connectors,
            sessions_started=r.sessions_started, sessions_completed=r.sessions_completed, energy_kwh=r.energy_kwh,
            revenue_eur=r.revenue_eur, occupied_connector_min=r.occupied_connector_min,
            utilization_pct=r.utilization_pct, availability_pct=r.availability_pct, faults=faults_of[r.id],
            faulted_connector_min=r.faulted_connector_min or ZERO, offline_connector_min=r.offline_connector_min or ZERO,
        )
        for r in conn.execute(_STATIONS, {"day": day})
    ]  # fmt: skip
    availability_rows = conn.execute(
        sa.text("SELECT sum(measured_connector_min) AS measured, "
                "sum(measured_connector_min - faulted_connector_min - offline_connector_min) AS up "
                "FROM station_availability WHERE day = :day"), {"day": day},
    ).one()  # fmt: skip
    connectors = sum(s.connectors for s in stations)
    network = conn.execute(
        sa.text("SELECT * FROM daily_rollups WHERE day = :day AND scope = 'network'"), {"day": day}
    ).first()

    by_hour = {r.hour_start: r for r in conn.execute(_HOURS, {"t0": t0, "t1": t1})}
    hours = []
    hour = t0.replace(minute=0, second=0, microsecond=0)
    hour = hour if hour >= t0 else hour + HOUR
    while hour < t1:
        r = by_hour.get(hour)
        occupied = r.occupied_connector_min if r else ZERO
        hours.append(HourPoint(
            starts_at=hour.astimezone(zone), sessions_started=int(r.sessions_started) if r else 0,
            energy_kwh=r.energy_kwh if r else ZERO, revenue_eur=r.revenue_eur if r else ZERO,
            utilization_pct=pct(occupied, connectors * 60) or ZERO,
        ))  # fmt: skip
        hour += HOUR

    window = settings.fault_window
    maintenance = []
    for station_id in sorted({a.station_id for a in flagged}):
        since = min(a.since for a in flagged if a.station_id == station_id)
        count = conn.execute(
            sa.text("SELECT count(*) FROM alerts WHERE kind = 'connector_fault' AND status <> 'superseded' "
                    "AND station_id = :s AND since >= :a AND since < :b"),
            {"s": station_id, "a": t1 - window, "b": t1},
        ).scalar_one()  # fmt: skip
        n_connectors = next((s.connectors for s in stations if s.station_id == station_id), 1)
        maintenance.append((station_id, count, n_connectors, since))
    maintenance.sort(key=lambda m: (-Decimal(m[1]) / m[2], -m[1], m[0]))
    maintenance_lines = [
        MaintenanceLine(rank=i, station_id=sid, station_name=names.get(sid, sid), faults=count, connectors=n,
                        faults_per_connector=(Decimal(count) / n).quantize(Decimal("0.01")),
                        flagged_since=since.astimezone(zone))
        for i, (sid, count, n, since) in enumerate(maintenance, 1)
    ]  # fmt: skip

    fault_lines = sorted((_line(f, names, t1, now, settings, "recovered") for f in faults), key=lambda f: (f.since, f.station_id))
    totals = Totals(
        stations=len(stations), connectors=connectors,
        sessions_started=sum(s.sessions_started for s in stations),
        sessions_completed=sum(s.sessions_completed for s in stations),
        energy_kwh=sum((s.energy_kwh for s in stations), ZERO), revenue_eur=sum((s.revenue_eur for s in stations), ZERO),
        utilization_pct=network.utilization_pct if network is not None else None,
        availability_pct=pct(availability_rows.up or ZERO, availability_rows.measured or ZERO),
        open_faults=sum(f.state != "recovered" for f in fault_lines),
        recovered_faults=sum(f.state == "recovered" for f in fault_lines),
        offline_stations=len({o.station_id for o in offline}),
        stale_sessions=sum(1 for s in stale if t0 <= s.since < t1),
    )  # fmt: skip
    has_data = period_has_data(conn, t0, t1)
    first_seen = conn.execute(sa.text("SELECT min(first_seen_at) FROM charging_stations")).scalar()
    return DailyReport(
        coverage=coverage("day", t0, t1, now=now, first_seen_at=first_seen, has_data=has_data, zone=zone),
        ports=_port_lines(conn, engine, settings, day, now, names, has_data) if engine is not None else [],
        network=settings.network_name, day=day, timezone=settings.timezone, generated_at=now.astimezone(zone), totals=totals,
        stations=stations, hours=hours, faults=fault_lines,
        offline=sorted((_line(o, names, t1, now, settings, "closed") for o in offline), key=lambda o: (o.since, o.station_id)),
        stale=sorted((_line(s, names, t1, now, settings, "closed") for s in stale), key=lambda s: (s.since, s.station_id)),
        maintenance=maintenance_lines,
        rules=Rules(stale_after_min=round(settings.stale_after_s / 60), offline_after_heartbeats=settings.offline_after_heartbeats,
                    maintenance_faults=settings.maintenance_fault_threshold,
                    maintenance_window_h=settings.maintenance_fault_window_s / 3600),
    )  # fmt: skip


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_daily_report(
    engine: sa.Engine, settings: Settings, day: date, now: datetime, *, force: bool = False
) -> dict[str, Any]:
    """Write the report of `day` and record it in `reports`; skip one already there unless `force`."""
    html_path, csv_path = report_paths(settings, day)
    with translate_errors(), engine.begin() as conn:
        if not try_job_lock(conn, "report"):
            return {"skipped": "another run holds the lock"}
        existing = conn.execute(
            sa.text("SELECT html_path, csv_path FROM reports WHERE network = :n AND day = :d AND kind = 'daily'"),
            {"n": settings.network_name, "d": day},
        ).first()
        if existing and not force and Path(existing.html_path).exists() and Path(existing.csv_path).exists():
            return {"skipped": "already built", "day": day.isoformat(), "html": existing.html_path}
        report = load_daily_report(conn, settings, day, now, engine)
        write_atomically(html_path, render_html(report))
        write_atomically(csv_path, render_csv(report))
        t = report.totals
        record_report(conn, {
            "network": settings.network_name, "day": day, "kind": "daily", "tz": settings.timezone,
            "html": str(html_path.resolve()), "csv": str(csv_path.resolve()), "stations": t.stations,
            "started": t.sessions_started, "completed": t.sessions_completed, "kwh": t.energy_kwh,
            "eur": t.revenue_eur, "util": t.utilization_pct or ZERO, "pct": t.availability_pct,
            "open": t.open_faults, "closed": t.recovered_faults, "now": now,
        })  # fmt: skip
    return {"day": day.isoformat(), "html": str(html_path.resolve()), "csv": str(csv_path.resolve()),
            "sessions": t.sessions_started, "energy_kwh": str(t.energy_kwh), "revenue_eur": str(t.revenue_eur)}  # fmt: skip


_RECORD = sa.text("""
    INSERT INTO reports (network, day, kind, timezone, html_path, csv_path, stations, sessions_started,
        sessions_completed, energy_kwh, revenue_eur, utilization_pct, availability_pct, open_faults,
        recovered_faults, generated_at)
    VALUES (:network, :day, :kind, :tz, :html, :csv, :stations, :started, :completed, :kwh, :eur, :util,
            :pct, :open, :closed, :now)
    ON CONFLICT (network, day, kind) DO UPDATE SET timezone = EXCLUDED.timezone,
        html_path = EXCLUDED.html_path, csv_path = EXCLUDED.csv_path, stations = EXCLUDED.stations,
        sessions_started = EXCLUDED.sessions_started, sessions_completed = EXCLUDED.sessions_completed,
        energy_kwh = EXCLUDED.energy_kwh, revenue_eur = EXCLUDED.revenue_eur,
        utilization_pct = EXCLUDED.utilization_pct, availability_pct = EXCLUDED.availability_pct,
        open_faults = EXCLUDED.open_faults, recovered_faults = EXCLUDED.recovered_faults,
        generated_at = EXCLUDED.generated_at
""")


def record_report(conn: sa.Connection, row: dict[str, Any]) -> None:
    """Record a built report (daily or monthly: `kind`) in `reports`, replacing an earlier build."""
    conn.execute(_RECORD, row)
