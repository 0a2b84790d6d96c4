"""Reconciliation of the outage ledger: each port's outages and uptime in PostgreSQL versus the
simulator's truth (`GroundTruth.downtime`), exactly, to the microsecond.

`run_ledger` runs beat's jobs in order, once, at the moment the truth is judged at (the end of
the simulated window): the faults job (offline episodes of silent stations), then the outage
ledger. `observe_uptime` reads the ledger's rows and the figures `evmonitor uptime` shows (the
shared query, `evmonitor.ledger.uptime_rows`) for the run's stations; `compare_uptime` turns both into
rows of the reconciliation table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from beat.faults import track_faults
from beat.outages import track_outages
from evmonitor.config import Settings
from evmonitor.days import local_day
from evmonitor.ledger import uptime_rows
from evmonitor.simulator.downtime import Downtime, from_us, minutes, to_us
from evmonitor.stack.reconcile import Row

__all__ = ["LedgerPort", "compare_uptime", "observe_uptime", "run_ledger"]

_MILLI = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class LedgerPort:
    """One port as the ledger and `evmonitor uptime` have it: times in microseconds since the epoch."""

    outages: tuple[tuple[int, int | None], ...]
    total_us: int
    outage_us: int
    uptime_pct: Decimal | None


def run_ledger(settings: Settings, now: datetime) -> dict[str, Any]:
    """beat's faults job (until it has read every status mark), then the outage ledger, at `now`."""
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        while (faults := track_faults(engine, settings, now)).get("more"):
            pass
        return {"faults": faults, "outages": track_outages(engine, settings, now)}
    finally:
        engine.dispose()


def observe_uptime(settings: Settings, downtime: Downtime, window_start: datetime) -> dict[str, LedgerPort]:
    """`station/connector` -> the ledger's port, for the stations of the truth, judged at its moment."""
    now = from_us(downtime.judged_at_us)
    stations = sorted({p.station_id for p in downtime.ports})
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        rows = uptime_rows(engine, settings, local_day(window_start, settings.zone), local_day(now, settings.zone), now)
        with engine.connect() as conn:
            outages = conn.execute(sa.text(
                "SELECT station_id, connector_id, started_at, ended_at FROM port_outages "
                "WHERE station_id = ANY(:ids) ORDER BY station_id, connector_id, started_at"), {"ids": stations}).all()  # fmt: skip
    finally:
        engine.dispose()
    spans: dict[str, list[tuple[int, int | None]]] = {}
    for o in outages:
        spans.setdefault(f"{o.station_id}/{o.connector_id}", []).append(
            (to_us(o.started_at), None if o.ended_at is None else to_us(o.ended_at)))
    wanted = set(stations)
    return {
        f"{r.station_id}/{r.connector_id}": LedgerPort(tuple(spans.get(f"{r.station_id}/{r.connector_id}", ())),
                                                       r.figures.total_us, r.figures.outage_us, r.figures.uptime_pct)
        for r in rows if r.connector_id is not None and r.station_id in wanted
    }  # fmt: skip


def _network_pct(total_us: int, outage_us: int) -> Decimal | None:
    if not total_us:
        return None
    return (Decimal(total_us - outage_us) * 100 / Decimal(total_us)).quantize(_MILLI, rounding=ROUND_HALF_UP)


def compare_uptime(downtime: Downtime, seen: dict[str, LedgerPort], *, every_port: bool = False) -> list[Row]:
    """Summary rows (ports, ports exact, outages, the network's outage minutes and uptime %), then one
    row per port that differs (every port with `every_port`): outage minutes, with uptime %."""
    exact, per_port = 0, []
    for port in downtime.ports:
        want = LedgerPort(port.outages, port.total_us, port.outage_us, port.uptime_pct)
        got = seen.get(port.key)
        exact += got == want
        if every_port or got != want:
            per_port.append(Row(f"  {port.key} outage min / uptime %", f"{port.outage_min} / {port.uptime_pct}",
                                postgres="missing" if got is None else f"{minutes(got.outage_us)} / {got.uptime_pct}"))  # fmt: skip
            if got is not None and got != want and (minutes(got.outage_us), got.uptime_pct) == (port.outage_min, port.uptime_pct):
                per_port[-1].postgres = f"{per_port[-1].postgres} (intervals differ)"
    extra = sorted(set(seen) - {p.key for p in downtime.ports})
    seen_total = sum(p.total_us for p in seen.values())
    seen_outage = sum(p.outage_us for p in seen.values())
    return [
        Row("ports (uptime)", len(downtime.ports), postgres=len(seen)),
        Row("ports exact: outages, minutes, uptime %", len(downtime.ports), postgres=exact),
        Row("port outages", downtime.outages, postgres=sum(len(p.outages) for p in seen.values())),
        Row("outage minutes (all ports)", downtime.outage_min, postgres=minutes(seen_outage)),
        Row("uptime % (all ports)", _network_pct(downtime.total_us, downtime.outage_us),
            postgres=_network_pct(seen_total, seen_outage)),
        *per_port,
        *(Row(f"  {key} (not in the truth)", "-", postgres="present") for key in extra),
    ]  # fmt: skip
