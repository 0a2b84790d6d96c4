"""What a monthly network report says, as plain values: per charging port its uptime the
regulator's way (T_total, T_outage, T_excluded, uptime %), its outages with their causes, its
sessions, failed sessions, kWh and peak kW; network totals; outage minutes per local day.
Built by `beat.monthly_report`, rendered by `evmonitor.reports.monthly_render`. Pure.

Uptime figures are `Decimal` minutes and percentages as `beat.uptime` computes them; a figure
that could not be measured is None and reads "no data", never 0 or 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from evmonitor.reports.coverage import Coverage
from evmonitor.reports.model import PortUptime

__all__ = ["DayOutage", "MonthTotals", "MonthlyReport", "OutageLine", "PortMonth"]


@dataclass(frozen=True, slots=True)
class OutageLine:
    """One outage of a port, as far as it overlaps the month."""

    outage_id: str
    station_id: str
    connector_id: int
    started_at: datetime  # local
    ended_at: datetime | None  # local; None while it lasts
    minutes_in_month: Decimal
    signals: tuple[str, ...]
    error_code: str | None
    cause: str
    excluded: bool
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PortMonth:
    station_id: str
    station_name: str
    connector_id: int
    coverage: Coverage
    uptime: PortUptime
    sessions: int
    failed_sessions: int
    energy_kwh: Decimal
    peak_kw: float | None
    outages: list[OutageLine] = field(default_factory=list)

    @property
    def uptime_pct(self) -> Decimal | None:
        return None if self.coverage.no_data else self.uptime.uptime_pct


@dataclass(frozen=True, slots=True)
class DayOutage:
    """Outage minutes of every port on one local day: counted against uptime, and excluded."""

    day: date
    counted_min: Decimal
    excluded_min: Decimal
    covered: bool  # False: the day is not begun yet, or nothing was seen by then


@dataclass(frozen=True, slots=True)
class MonthTotals:
    stations: int
    ports: int
    uptime: PortUptime
    outages: int
    sessions: int
    failed_sessions: int
    energy_kwh: Decimal
    peak_kw: float | None
    ports_below_target: int


@dataclass(frozen=True)
class MonthlyReport:
    network: str
    month: date  # the first day
    timezone: str
    generated_at: datetime  # local
    coverage: Coverage
    totals: MonthTotals
    ports: list[PortMonth]
    days: list[DayOutage]
    target_pct: Decimal
    excluded_causes: tuple[str, ...]
    failed_sessions_known: bool = True  # False: this database does not record failed sessions yet

    @property
    def label(self) -> str:
        return self.month.strftime("%Y-%m")

    @property
    def outages(self) -> list[OutageLine]:
        return sorted((o for p in self.ports for o in p.outages), key=lambda o: (o.started_at, o.station_id, o.connector_id))

    @property
    def worst_first(self) -> list[PortMonth]:
        """Measured ports, lowest uptime first (then station, port: a stable order for ties)."""
        measured = [p for p in self.ports if p.uptime_pct is not None]
        return sorted(measured, key=lambda p: (p.uptime_pct, p.station_id, p.connector_id))
