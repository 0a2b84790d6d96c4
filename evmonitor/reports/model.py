"""What a daily network report says, as plain values: built from rollup and alert rows, rendered
by `evmonitor.reports.render`. Pure: no database, no clock, no files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from evmonitor.reports.coverage import Coverage

__all__ = ["AlertLine", "DailyReport", "HourPoint", "MaintenanceLine", "PortDay", "PortUptime", "Rules", "StationDay", "Totals",
           "pct", "top_and_bottom"]  # fmt: skip


def pct(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """part / whole as a percentage with two decimals (half up), None when whole is zero."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class StationDay:
    station_id: str
    name: str
    operator: str
    city: str
    connectors: int
    sessions_started: int
    sessions_completed: int
    energy_kwh: Decimal
    revenue_eur: Decimal
    occupied_connector_min: Decimal
    utilization_pct: Decimal
    availability_pct: Decimal | None
    faults: int = 0
    faulted_connector_min: Decimal = Decimal(0)
    offline_connector_min: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class PortUptime:
    """One port's (or a station's, or the network's) uptime figures in a period."""

    total_min: Decimal
    outage_min: Decimal
    excluded_min: Decimal
    uptime_pct: Decimal | None  # None: nothing measured ("no data")

    @property
    def counted_min(self) -> Decimal:
        """Outage minutes that count against uptime: T_outage - T_excluded."""
        return self.outage_min - self.excluded_min


@dataclass(frozen=True, slots=True)
class PortDay:
    """One port's uptime line of a daily report; connector_id 0 is the station's (the sum of its ports)."""

    station_id: str
    station_name: str
    connector_id: int
    coverage: Coverage
    uptime: PortUptime

    @property
    def uptime_pct(self) -> Decimal | None:
        return None if self.coverage.no_data else self.uptime.uptime_pct


@dataclass(frozen=True, slots=True)
class HourPoint:
    starts_at: datetime  # local time
    sessions_started: int
    energy_kwh: Decimal
    revenue_eur: Decimal
    utilization_pct: Decimal


@dataclass(frozen=True, slots=True)
class AlertLine:
    kind: str
    station_id: str
    station_name: str
    since: datetime  # local time
    until: datetime | None  # local time
    state: str  # "recovered" | "open at day end" for faults; "closed" | "open" otherwise
    connector_id: int | None = None
    error_code: str | None = None
    info: str | None = None
    session_id: str | None = None
    until_day_end: datetime | None = None  # local; when the day (or the report's `now`) ended, for open ones

    @property
    def duration_min(self) -> Decimal | None:
        """Minutes from since to until; for one still open, to the end of the day (a lower bound)."""
        end = self.until or self.until_day_end
        if end is None:
            return None
        return (Decimal((end - self.since).total_seconds()) / 60).quantize(Decimal("0.1"))

    @property
    def ongoing(self) -> bool:
        return self.until is None


@dataclass(frozen=True, slots=True)
class MaintenanceLine:
    rank: int
    station_id: str
    station_name: str
    faults: int
    connectors: int
    faults_per_connector: Decimal
    flagged_since: datetime  # local time


@dataclass(frozen=True, slots=True)
class Totals:
    stations: int
    connectors: int
    sessions_started: int
    sessions_completed: int
    energy_kwh: Decimal
    revenue_eur: Decimal
    utilization_pct: Decimal | None
    availability_pct: Decimal | None
    open_faults: int
    recovered_faults: int
    offline_stations: int
    stale_sessions: int


@dataclass(frozen=True, slots=True)
class Rules:
    """The thresholds the alerts were raised with, so the page can state them."""

    stale_after_min: int = 30
    offline_after_heartbeats: int = 3
    maintenance_faults: int = 3
    maintenance_window_h: float = 24.0


@dataclass(frozen=True)
class DailyReport:
    network: str
    day: date
    timezone: str
    generated_at: datetime  # local time
    totals: Totals
    stations: list[StationDay]
    hours: list[HourPoint]
    faults: list[AlertLine] = field(default_factory=list)
    offline: list[AlertLine] = field(default_factory=list)
    stale: list[AlertLine] = field(default_factory=list)
    maintenance: list[MaintenanceLine] = field(default_factory=list)
    rules: Rules = field(default_factory=Rules)
    ports: list[PortDay] = field(default_factory=list)
    coverage: Coverage | None = None  # None: not stated (a report model built before coverage existed)

    @property
    def no_data(self) -> bool:
        return self.coverage is not None and self.coverage.no_data

    @property
    def port_lines(self) -> list[PortDay]:
        return [p for p in self.ports if p.connector_id > 0]

    def station_uptime(self, station_id: str) -> PortDay | None:
        return next((p for p in self.ports if p.station_id == station_id and p.connector_id == 0), None)

    @property
    def ranked(self) -> list[StationDay]:
        """Stations best first: utilization, then energy, then id (a stable order for ties)."""
        return sorted(self.stations, key=lambda s: (-s.utilization_pct, -s.energy_kwh, s.station_id))

    @property
    def top(self) -> list[StationDay]:
        return top_and_bottom(self.ranked)[0]

    @property
    def bottom(self) -> list[StationDay]:
        return top_and_bottom(self.ranked)[1]


def top_and_bottom(ranked: list[StationDay], k: int = 5) -> tuple[list[StationDay], list[StationDay]]:
    """The best `k` and the worst `k` (worst last), never the same station in both lists."""
    top_n = min(k, (len(ranked) + 1) // 2)
    bottom_n = min(k, len(ranked) - top_n)
    return ranked[:top_n], ranked[len(ranked) - bottom_n:] if bottom_n else []
