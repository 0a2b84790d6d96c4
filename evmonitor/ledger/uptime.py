"""Uptime per port and per station over local days, from the outage ledger (`port_outages`): the
one query the CLI (`evmonitor uptime`), the API (`GET /api/v1/uptime`), beat's uptime alert and
the reports share.

A period is whole local days of EVMON_TIMEZONE, [first day 00:00, day after the last 00:00),
cut at `now` when it reaches into the future. A station's ports are 1..connector_count (and any
port the ledger names); each port counts from the station's first message if that is later.
An outage counts as excluded when its cause is in `uptime_excluded_causes`. The arithmetic is
`evmonitor.ledger.figures.uptime`; a station's figures are the sums of its ports'.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.days import day_bounds
from evmonitor.errors import ConfigError
from evmonitor.ledger.figures import Uptime, uptime
from evmonitor.storage.postgres import translate_errors

__all__ = [
    "FORMULA",
    "TRAILING_COLUMNS",
    "UPTIME_COLUMNS",
    "UptimeRow",
    "month_days",
    "parse_period",
    "trailing_months",
    "trailing_table",
    "uptime_report",
    "uptime_rows",
]

FORMULA = "uptime_pct = (t_total_min - (t_outage_min - t_excluded_min)) / t_total_min * 100"

UPTIME_COLUMNS = ("station_id", "connector_id", "period_from", "period_to", "t_total_min", "t_outage_min",
                  "t_excluded_min", "uptime_pct")  # fmt: skip


@dataclass(frozen=True, slots=True)
class UptimeRow:
    """One port's (connector_id >= 1) or one station's (connector_id None) uptime in a period."""

    station_id: str
    connector_id: int | None
    first_day: date
    last_day: date
    figures: Uptime

    def to_json(self) -> dict[str, Any]:
        """Wire form: minutes and percent as decimal strings (exact), None when nothing was measured."""
        pct = self.figures.uptime_pct
        return {"station_id": self.station_id, "connector_id": self.connector_id,
                "period_from": self.first_day.isoformat(), "period_to": self.last_day.isoformat(),
                "t_total_min": str(self.figures.total_min), "t_outage_min": str(self.figures.outage_min),
                "t_excluded_min": str(self.figures.excluded_min), "uptime_pct": None if pct is None else str(pct)}  # fmt: skip


_YEARS = range(1900, 9999)  # a period's days, with room for the day after and the 12 months before


def _in_range(day: date, what: str) -> date:
    if day.year not in _YEARS:
        raise ConfigError(f"{what} must be between {_YEARS.start} and {_YEARS.stop - 1}, not {day.isoformat()}")
    return day


def month_days(month: str) -> tuple[date, date]:
    """`YYYY-MM` -> its first and last day; `ConfigError` for anything else."""
    try:
        first = _in_range(date.fromisoformat(f"{month}-01"), "--month")
    except ValueError:
        raise ConfigError(f"--month must look like 2026-11, not {month!r}") from None
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def _figures(figures: Uptime) -> dict[str, Any]:
    """Minutes and percent as JSON numbers (exact to 0.001, the rounding of `Uptime`); None when unmeasured."""
    pct = figures.uptime_pct
    return {"t_total_min": float(figures.total_min), "t_outage_min": float(figures.outage_min),
            "t_excluded_min": float(figures.excluded_min), "uptime_pct": None if pct is None else float(pct)}  # fmt: skip


def trailing_months(month: str) -> tuple[date, date]:
    """The 12 months ending with `YYYY-MM`: (first day of the month 11 months before, last day of `month`)."""
    first, last = month_days(month)
    back = first.year * 12 + first.month - 1 - 11
    return date(back // 12, back % 12 + 1, 1), last


def _add_months(month: str, n: int) -> str:
    first = month_days(month)[0]
    k = first.year * 12 + first.month - 1 + n
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


TRAILING_COLUMNS = ("station_id", "connector_id", "month", "month_uptime_pct", "trailing_from", "trailing_to",
                    "t_total_min", "t_outage_min", "t_excluded_min", "uptime_pct")  # fmt: skip


def trailing_table(
    engine: sa.Engine, settings: Settings, last_month: str, months: int, now: datetime, *,
    station_id: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per port, one row per month of the `months` ending with `last_month`: that month's uptime and
    the trailing-12-month figures ending with it (`t_*_min`, `uptime_pct`: the 12 months)."""
    if months < 1:
        raise ConfigError(f"--months must be at least 1, not {months}")
    rows: list[dict[str, Any]] = []
    for month in (_add_months(last_month, -k) for k in reversed(range(months))):
        first, last = month_days(month)
        own = {(r.station_id, r.connector_id): r.figures.uptime_pct
               for r in uptime_rows(engine, settings, first, last, now, station_id=station_id)}  # fmt: skip
        t_first, t_last = trailing_months(month)
        for r in uptime_rows(engine, settings, t_first, t_last, now, station_id=station_id):
            if r.connector_id is None:
                continue
            pct = own.get((r.station_id, r.connector_id))
            rows.append({"station_id": r.station_id, "connector_id": r.connector_id, "month": month,
                         "month_uptime_pct": None if pct is None else float(pct),
                         "trailing_from": t_first.isoformat(), "trailing_to": t_last.isoformat(),
                         **_figures(r.figures)})  # fmt: skip
    rows.sort(key=lambda r: (r["station_id"], r["connector_id"], r["month"]))
    return rows


def parse_period(first: str | None, last: str | None, month: str | None) -> tuple[date, date]:
    """--from/--to (local days, inclusive) or --month -> (first day, last day); `ConfigError` otherwise."""
    if month and (first or last):
        raise ConfigError("give --month or --from/--to, not both")
    if month:
        return month_days(month)
    if first and last:
        try:
            days = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            raise ConfigError(f"--from and --to must look like 2026-11-23, not {first!r} / {last!r}") from None
        return _in_range(days[0], "--from"), _in_range(days[1], "--to")
    raise ConfigError("give --month YYYY-MM, or --from YYYY-MM-DD and --to YYYY-MM-DD")


def uptime_report(
    engine: sa.Engine, settings: Settings, first_day: date, last_day: date, now: datetime, *,
    station_id: str | None = None, month: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What `evmonitor uptime --json` and `GET /api/v1/uptime` answer: the period, then per port and per station.

    With `month` (the period being that month), each port's `trailing_12_months` is its uptime over
    the 12 months ending with that month (NEVI's monthly figure); None without `month`.
    """
    rows = uptime_rows(engine, settings, first_day, last_day, now, station_id=station_id)
    start = day_bounds(first_day, settings.zone)[0]
    end = min(day_bounds(last_day, settings.zone)[1], now)
    trailing: dict[tuple[str, int], dict[str, Any]] = {}
    if month is not None:
        t_first, t_last = trailing_months(month)
        for r in uptime_rows(engine, settings, t_first, t_last, now, station_id=station_id):
            if r.connector_id is not None:
                trailing[(r.station_id, r.connector_id)] = {"from": t_first.isoformat(), "to": t_last.isoformat(),
                                                            **_figures(r.figures)}  # fmt: skip
    ports = [{"station_id": r.station_id, "connector_id": r.connector_id, **_figures(r.figures),
              "trailing_12_months": trailing.get((r.station_id, r.connector_id))}
             for r in rows if r.connector_id is not None]  # fmt: skip
    counts: dict[str, int] = defaultdict(int)
    for p in ports:
        counts[p["station_id"]] += 1
    stations = [{"station_id": r.station_id, "ports": counts[r.station_id], **_figures(r.figures)}
                for r in rows if r.connector_id is None]  # fmt: skip
    return {
        "period": {"from": first_day.isoformat(), "to": last_day.isoformat(), "month": month,
                   "timezone": settings.timezone, "start": start.isoformat(), "end": max(start, end).isoformat()},
        "formula": FORMULA,
        "excluded_causes": [str(c) for c in settings.uptime_excluded_causes],
        "ports": ports,
        "stations": stations,
    }  # fmt: skip


def uptime_rows(
    engine: sa.Engine, settings: Settings, first_day: date, last_day: date, now: datetime, *,
    station_id: str | None = None,
) -> list[UptimeRow]:  # fmt: skip
    """Per port, then a station line after its ports, for [first_day, last_day] (inclusive, local)."""
    if last_day < first_day:
        raise ConfigError(f"the period ends ({last_day}) before it begins ({first_day})")
    start = day_bounds(first_day, settings.zone)[0]
    end = min(day_bounds(last_day, settings.zone)[1], now)
    params: dict[str, Any] = {"start": start, "end": end, "station": station_id}
    station_filter = "" if station_id is None else "AND id = :station"
    with translate_errors(), engine.connect() as conn:
        stations = conn.execute(sa.text(
            f"SELECT id, first_seen_at, coalesce(connector_count, 1) AS connectors FROM charging_stations "
            f"WHERE first_seen_at < :end {station_filter} ORDER BY id"), params).all()  # fmt: skip
        outages = conn.execute(sa.text(
            "SELECT station_id, connector_id, started_at, ended_at, cause FROM port_outages "
            "WHERE started_at < :end AND coalesce(ended_at, 'infinity') > :start "
            + ("" if station_id is None else "AND station_id = :station")), params).all()  # fmt: skip
    excluded = {str(c) for c in settings.uptime_excluded_causes}
    by_port: dict[tuple[str, int], list[tuple[datetime, datetime | None, bool]]] = defaultdict(list)
    for o in outages:
        by_port[(o.station_id, o.connector_id)].append((o.started_at, o.ended_at, o.cause in excluded))
    rows: list[UptimeRow] = []
    for station in stations:
        ports = set(range(1, station.connectors + 1)) | {c for s, c in by_port if s == station.id}
        total = Uptime(0, 0, 0)
        for port in sorted(ports):
            figures = uptime(start=start, end=end, first_seen_at=station.first_seen_at, outages=by_port[(station.id, port)])
            rows.append(UptimeRow(station.id, port, first_day, last_day, figures))
            total += figures
        rows.append(UptimeRow(station.id, None, first_day, last_day, total))
    return rows
