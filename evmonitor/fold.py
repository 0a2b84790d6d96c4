"""Fold events into rows: pure, commutative, associative and idempotent.

Every column of a row merges by a rule that ignores order and repetition:

* earliest wins (`start_time`, `end_time`, `meter_start_wh`, first seen),
* highest wins (`meter_max_wh`, `meter_stop_wh`, last seen),
* last writer wins by a total order of (timestamp, tie-breakers, event_id) for values that
  describe "the latest reading" (station profile, live status, current power).

`fold_events` folds a batch in Python; `evmonitor.storage.postgres` applies the *same* rules in
`INSERT ... ON CONFLICT DO UPDATE`, so a batch folded here and merged into the table gives the
row any other order would give. A session completed once stays completed: `end_time` is only
ever lowered from NULL, never raised back to NULL.

Derived money follows DESIGN.md exactly: energy = (max meter - meter_start) / 1000 kWh,
cost = energy * price rounded half-up to cents (PostgreSQL's `round(numeric, 2)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping, TypeVar

__all__ = [
    "Columns",
    "ConnectorRow",
    "Fold",
    "SessionRow",
    "StationRow",
    "StatusLogRow",
    "fold_columns",
    "fold_events",
    "session_cost_eur",
    "session_energy_kwh",
]

T = TypeVar("T")
CENT = Decimal("0.01")


def session_energy_kwh(meter_start_wh: int, meter_max_wh: int) -> Decimal:
    """kWh delivered, exactly: (max meter seen - start meter) / 1000, never negative."""
    return Decimal(max(meter_max_wh, meter_start_wh) - meter_start_wh) / 1000


def session_cost_eur(energy_kwh: Decimal, price_eur_per_kwh: float | Decimal) -> Decimal:
    """EUR for a session: energy times price, rounded half-up to cents."""
    price = price_eur_per_kwh if isinstance(price_eur_per_kwh, Decimal) else Decimal(repr(price_eur_per_kwh))
    return (energy_kwh * price).quantize(CENT, rounding=ROUND_HALF_UP)


def _least(a: T | None, b: T | None) -> T | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b  # type: ignore[operator]


def _greatest(a: T | None, b: T | None) -> T | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b  # type: ignore[operator]


def _newer(a_key: tuple | None, b_key: tuple | None) -> bool:
    """True if the reading keyed `b_key` replaces the one keyed `a_key`."""
    if b_key is None or b_key[0] is None:
        return False
    return a_key is None or a_key[0] is None or b_key > a_key


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    station_id: str
    connector_id: int
    start_time: datetime
    last_event_at: datetime
    end_time: datetime | None = None
    meter_start_wh: int | None = None
    meter_max_wh: int | None = None
    meter_stop_wh: int | None = None
    price_eur_per_kwh: float | None = None
    stop_reason: str | None = None
    id_tag_hash: str | None = None
    vehicle_battery_kwh: float | None = None
    soc_start_percent: float | None = None
    # the latest meter reading, last writer wins by (progress_at, progress_meter_wh, progress_event_id)
    progress_at: datetime | None = None
    progress_meter_wh: int | None = None
    progress_event_id: str | None = None
    power_kw: float | None = None
    soc_percent: float | None = None

    @property
    def status(self) -> str:
        return "completed" if self.end_time is not None else "active"

    @property
    def energy_delivered_kwh(self) -> Decimal | None:
        if self.meter_start_wh is None:
            return None
        return session_energy_kwh(self.meter_start_wh, self.meter_max_wh or self.meter_start_wh)

    @property
    def cost_eur(self) -> Decimal | None:
        energy = self.energy_delivered_kwh
        if energy is None or self.price_eur_per_kwh is None:
            return None
        return session_cost_eur(energy, self.price_eur_per_kwh)

    def _progress_key(self) -> tuple | None:
        if self.progress_at is None:
            return None
        return (self.progress_at, self.progress_meter_wh, self.progress_event_id)

    def merge(self, other: "SessionRow") -> "SessionRow":
        """The row both folds describe; `a.merge(b) == b.merge(a)` and `a.merge(a) == a`."""
        newer = other if _newer(self._progress_key(), other._progress_key()) else self
        return SessionRow(
            id=self.id,
            station_id=min(self.station_id, other.station_id),
            connector_id=min(self.connector_id, other.connector_id),
            start_time=min(self.start_time, other.start_time),
            last_event_at=max(self.last_event_at, other.last_event_at),
            end_time=_least(self.end_time, other.end_time),
            meter_start_wh=_least(self.meter_start_wh, other.meter_start_wh),
            meter_max_wh=_greatest(self.meter_max_wh, other.meter_max_wh),
            meter_stop_wh=_greatest(self.meter_stop_wh, other.meter_stop_wh),
            price_eur_per_kwh=_greatest(self.price_eur_per_kwh, other.price_eur_per_kwh),
            stop_reason=_least(self.stop_reason, other.stop_reason),
            id_tag_hash=_least(self.id_tag_hash, other.id_tag_hash),
            vehicle_battery_kwh=_greatest(self.vehicle_battery_kwh, other.vehicle_battery_kwh),
            soc_start_percent=_least(self.soc_start_percent, other.soc_start_percent),
            progress_at=newer.progress_at,
            progress_meter_wh=newer.progress_meter_wh,
            progress_event_id=newer.progress_event_id,
            power_kw=newer.power_kw,
            soc_percent=newer.soc_percent,
        )


@dataclass(frozen=True, slots=True)
class StationRow:
    id: str
    first_seen_at: datetime
    last_seen_at: datetime
    # profile from the latest station_boot, last writer wins by (boot_at, boot_event_id)
    name: str | None = None
    operator: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    max_power_kw: float | None = None
    connector_count: int | None = None
    price_eur_per_kwh: float | None = None
    vendor: str | None = None
    model: str | None = None
    firmware_version: str | None = None
    boot_at: datetime | None = None
    boot_event_id: str | None = None
    # whole-station status (connector 0), last writer wins by (status_at, status_event_id)
    status: str | None = None
    error_code: str | None = None
    status_at: datetime | None = None
    status_event_id: str | None = None
    last_heartbeat_at: datetime | None = None

    PROFILE = (
        "name",
        "operator",
        "city",
        "latitude",
        "longitude",
        "max_power_kw",
        "connector_count",
        "price_eur_per_kwh",
        "vendor",
        "model",
        "firmware_version",
        "boot_at",
        "boot_event_id",
    )
    LIVE = ("status", "error_code", "status_at", "status_event_id")

    def merge(self, other: "StationRow") -> "StationRow":
        profile = other if _newer((self.boot_at, self.boot_event_id), (other.boot_at, other.boot_event_id)) else self
        live = other if _newer((self.status_at, self.status_event_id), (other.status_at, other.status_event_id)) else self
        return replace(
            self,
            first_seen_at=min(self.first_seen_at, other.first_seen_at),
            last_seen_at=max(self.last_seen_at, other.last_seen_at),
            last_heartbeat_at=_greatest(self.last_heartbeat_at, other.last_heartbeat_at),
            **{name: getattr(profile, name) for name in self.PROFILE},
            **{name: getattr(live, name) for name in self.LIVE},
        )


@dataclass(frozen=True, slots=True)
class ConnectorRow:
    station_id: str
    connector_id: int
    status: str
    error_code: str
    status_at: datetime
    status_event_id: str
    info: str | None = None

    def merge(self, other: "ConnectorRow") -> "ConnectorRow":
        mine = (self.status_at, self.status_event_id)
        theirs = (other.status_at, other.status_event_id)
        return other if theirs > mine else self


@dataclass(frozen=True, slots=True)
class StatusLogRow:
    """One status change (heartbeats excluded), kept for fault and availability history."""

    event_id: str
    station_id: str
    connector_id: int
    status: str
    error_code: str
    ts: datetime
    info: str | None = None


@dataclass(slots=True)
class Fold:
    stations: dict[str, StationRow] = field(default_factory=dict)
    connectors: dict[tuple[str, int], ConnectorRow] = field(default_factory=dict)
    status_log: dict[str, StatusLogRow] = field(default_factory=dict)
    sessions: dict[str, SessionRow] = field(default_factory=dict)

    def add(self, table: dict, key: Any, row: Any) -> None:
        current = table.get(key)
        table[key] = row if current is None else current.merge(row)


def _ts(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _lower(row: dict[str, Any], column: str, value: Any) -> None:
    """`_least` in place: NULL never wins; on a tie the value already there stays."""
    if value is not None:
        current = row.get(column)
        if current is None or value < current:
            row[column] = value


def _raise(row: dict[str, Any], column: str, value: Any) -> None:
    """`_greatest` in place."""
    if value is not None:
        current = row.get(column)
        if current is None or value > current:
            row[column] = value


_BOOT_PROFILE = StationRow.PROFILE[:-2]


@dataclass(slots=True)
class Columns:
    """A fold as plain dicts of columns, one per key: the rows `fold_events` builds, before
    they are built. A column that no event set is absent (NULL)."""

    stations: dict[str, dict[str, Any]] = field(default_factory=dict)
    connectors: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    status_log: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)


def fold_events(events: Iterable[Mapping[str, Any]]) -> Fold:
    """Fold normalised events (`Event.to_wire()` dicts) into one row per key."""
    columns = fold_columns(events)
    return Fold(
        stations={key: StationRow(**c) for key, c in columns.stations.items()},
        connectors={key: ConnectorRow(**c) for key, c in columns.connectors.items()},
        status_log={key: StatusLogRow(**c) for key, c in columns.status_log.items()},
        sessions={key: SessionRow(**c) for key, c in columns.sessions.items()},
    )


def fold_columns(events: Iterable[Mapping[str, Any]]) -> Columns:
    """`fold_events` without building the row objects: for writers that want plain columns.

    The result is the row `merge` would give for any order of the events, computed without
    building a row per event: each key's columns are folded in place by the very rules of
    `StationRow.merge`, `SessionRow.merge` and `ConnectorRow.merge` (least, greatest, and the
    latest reading by its total order, the first one seen winning a tie).
    """
    out = Columns()
    stations, sessions, connectors = out.stations, out.sessions, out.connectors
    for event in events:
        kind = event["event_type"]
        ts = _ts(event["timestamp"])
        station_id = event["station_id"]
        eid = event["event_id"]
        station = stations.get(station_id)
        if station is None:
            station = stations[station_id] = {"id": station_id, "first_seen_at": ts, "last_seen_at": ts}
        if kind == "station_boot":
            boot_at = station.get("boot_at")
            if boot_at is None or (ts, eid) > (boot_at, station["boot_event_id"]):
                for name in _BOOT_PROFILE:
                    station[name] = event.get(name)
                station["boot_at"], station["boot_event_id"] = ts, eid
        elif kind == "station_status":
            connector_id = event["connector_id"]
            if event.get("heartbeat"):
                _raise(station, "last_heartbeat_at", ts)
            else:
                out.status_log[eid] = {
                    "event_id": eid, "station_id": station_id, "connector_id": connector_id,
                    "status": event["status"], "error_code": event["error_code"], "ts": ts, "info": event.get("info"),
                }  # fmt: skip
            if connector_id == 0:
                status_at = station.get("status_at")
                if status_at is None or (ts, eid) > (status_at, station["status_event_id"]):
                    station["status"], station["error_code"] = event["status"], event["error_code"]
                    station["status_at"], station["status_event_id"] = ts, eid
            else:
                key = (station_id, connector_id)
                current = connectors.get(key)
                if current is None or (ts, eid) > (current["status_at"], current["status_event_id"]):
                    connectors[key] = {
                        "station_id": station_id, "connector_id": connector_id, "status": event["status"],
                        "error_code": event["error_code"], "status_at": ts, "status_event_id": eid,
                        "info": event.get("info"),
                    }  # fmt: skip
        elif kind in ("session_started", "session_progress", "session_completed"):
            session_id = event["session_id"]
            connector_id = event["connector_id"]
            session = sessions.get(session_id)
            if session is None:
                session = sessions[session_id] = {
                    "id": session_id, "station_id": station_id, "connector_id": connector_id,
                    "start_time": ts, "last_event_at": ts,
                }  # fmt: skip
            else:
                _lower(session, "station_id", station_id)
                _lower(session, "connector_id", connector_id)
                _lower(session, "start_time", ts)
                _raise(session, "last_event_at", ts)
            if kind == "session_started":
                _lower(session, "meter_start_wh", event["meter_start_wh"])
                _raise(session, "meter_max_wh", event["meter_start_wh"])
                _raise(session, "price_eur_per_kwh", event["price_eur_per_kwh"])
                _lower(session, "id_tag_hash", event.get("id_tag_hash"))
                _raise(session, "vehicle_battery_kwh", event.get("vehicle_battery_kwh"))
                _lower(session, "soc_start_percent", event.get("soc_percent"))
            elif kind == "session_progress":
                meter_wh = event["meter_wh"]
                _raise(session, "meter_max_wh", meter_wh)
                progress_at = session.get("progress_at")
                if progress_at is None or (ts, meter_wh, eid) > (
                    progress_at, session["progress_meter_wh"], session["progress_event_id"]
                ):
                    session["progress_at"], session["progress_meter_wh"], session["progress_event_id"] = ts, meter_wh, eid
                    session["power_kw"], session["soc_percent"] = event["power_kw"], event.get("soc_percent")
            else:
                _lower(session, "end_time", ts)
                _raise(session, "meter_max_wh", event["meter_stop_wh"])
                _raise(session, "meter_stop_wh", event["meter_stop_wh"])
                _lower(session, "stop_reason", event["stop_reason"])
        else:  # the contract admits no other type; a bug upstream must not pass silently
            raise ValueError(f"unknown event_type {kind!r}")
        if ts < station["first_seen_at"]:
            station["first_seen_at"] = ts
        elif ts > station["last_seen_at"]:
            station["last_seen_at"] = ts
    return out


_COLUMNS: dict[type, tuple[str, ...]] = {}


def row_dict(row: Any) -> dict[str, Any]:
    """A row dataclass as a plain dict of its columns."""
    names = _COLUMNS.get(type(row))
    if names is None:
        names = _COLUMNS[type(row)] = tuple(f.name for f in fields(row))
    return {name: getattr(row, name) for name in names}
