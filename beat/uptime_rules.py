"""Outages per charging port and uptime the regulator's way (23 CFR 680.116(b)). Pure.

A port (station, connector >= 1) is out while any of these signals says so:

    Faulted, Unavailable   a status change of the connector, or of connector 0 (the whole
                           station: every port is out); the next other status ends it
    connection_closed      an Unavailable whose `info` starts with "connection_closed" (what the
                           OCPP gateway publishes when a charger's websocket closes; see
                           `evmonitor.names.StatusInfo`), instead of Unavailable; it ends at the
                           station's next status on any connector (it is connected again)
    station_offline        the station fell silent after missed heartbeats (the `station_offline`
                           alert episodes of `beat.faults`): every port is out
    failed_session         a session on the port that failed to deliver energy (`beat.sessions`):
                           the port is out from the session's start to its end

Overlapping or touching signals on one port are ONE outage: the union of their intervals. An
outage's id is its port and start, so recomputing the same history gives the same ids, and an
operator's cause recorded on an outage survives a recompute.

The uptime arithmetic on these outages is `evmonitor.ledger.figures`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

from beat.alerts import StatusChange
from evmonitor.contract import ChargePointStatus
from evmonitor.names import StatusInfo

__all__ = [
    "DOWN_STATUSES",
    "Outage",
    "Signal",
    "StatusChange",
    "outage_id",
    "port_outages",
]

DOWN_STATUSES = frozenset({ChargePointStatus.FAULTED, ChargePointStatus.UNAVAILABLE})
_FOREVER = datetime.max.replace(tzinfo=timezone.utc)


class Signal(StrEnum):
    """What showed an outage (a ledger row lists every signal merged into it)."""

    FAULTED = ChargePointStatus.FAULTED
    UNAVAILABLE = ChargePointStatus.UNAVAILABLE
    OFFLINE = "station_offline"
    CONNECTION_CLOSED = StatusInfo.CONNECTION_CLOSED
    FAILED_SESSION = "failed_session"


# the gateway wrote "connection closed: <reason>" before StatusInfo existed
_CLOSED_PREFIXES = (str(StatusInfo.CONNECTION_CLOSED), "connection closed")


def _signal(change: StatusChange) -> Signal:
    """What a down status shows: connection_closed when its info says so, else its status."""
    if change.status == ChargePointStatus.UNAVAILABLE and (change.info or "").startswith(_CLOSED_PREFIXES):
        return Signal.CONNECTION_CLOSED
    return Signal(change.status)


@dataclass(frozen=True, slots=True)
class Outage:
    """One port's outage: [started_at, ended_at), ended_at None while it lasts."""

    station_id: str
    connector_id: int
    started_at: datetime
    ended_at: datetime | None
    signals: tuple[Signal, ...]
    error_code: str | None = None

    @property
    def id(self) -> str:
        return outage_id(self.station_id, self.connector_id, self.started_at)


def outage_id(station_id: str, connector_id: int, started_at: datetime) -> str:
    """`outage:<station>:<connector>:<start, UTC>`: the same port and start give the same id."""
    text = started_at.astimezone(timezone.utc).isoformat(timespec="microseconds" if started_at.microsecond else "seconds")
    return f"outage:{station_id}:{connector_id}:{text.replace('+00:00', 'Z')}"


@dataclass(frozen=True, slots=True)
class _Span:
    start: datetime
    end: datetime | None
    signals: frozenset[Signal]
    error_code: str | None  # the first error code of a Faulted signal in it


def _status_spans(history: Iterable[StatusChange], heard_at: Iterable[datetime] = ()) -> list[_Span]:
    """One connector's down spans. Duplicates (same event_id) count once; order is (ts, event_id).

    `heard_at`: times the station spoke on another connector. A span that only a closed connection
    opened ends at the first of them (the charger is connected again), even if it never resends
    its connector-0 status; a span the charger itself reported (Faulted, Unavailable) does not.
    """
    unique = {c.event_id: c for c in history}
    spans: list[_Span] = []
    opened: StatusChange | None = None
    signals: set[Signal] = set()
    error_code: str | None = None
    heard = [StatusChange("", 0, ts, "", "", "") for ts in set(heard_at)]  # event_id "" sorts first at a tie
    for change in sorted([*unique.values(), *heard], key=lambda c: (c.ts, c.event_id)):
        if not change.event_id:
            if opened is not None and signals == {Signal.CONNECTION_CLOSED} and change.ts > opened.ts:
                spans.append(_Span(opened.ts, change.ts, frozenset(signals), error_code))
                opened = None
            continue
        if change.status in DOWN_STATUSES:
            if opened is None:
                opened, signals, error_code = change, set(), None
            signals.add(_signal(change))
            if change.status == ChargePointStatus.FAULTED and error_code is None:
                error_code = change.error_code
        elif opened is not None:
            spans.append(_Span(opened.ts, change.ts, frozenset(signals), error_code))
            opened = None
    if opened is not None:
        spans.append(_Span(opened.ts, None, frozenset(signals), error_code))
    return spans


def _merge(spans: Iterable[_Span]) -> list[_Span]:
    """The union of spans: overlapping or touching spans become one (signals united, first error code)."""
    out: list[_Span] = []
    spans = [s for s in spans if s.end is None or s.end > s.start]  # a status undone at the same instant
    order = sorted(spans, key=lambda s: (s.start, s.end or _FOREVER, sorted(s.signals), s.error_code or ""))
    for span in order:
        if out and (out[-1].end is None or span.start <= out[-1].end):
            last = out[-1]
            end = None if last.end is None or span.end is None else max(last.end, span.end)
            out[-1] = _Span(last.start, end, last.signals | span.signals, last.error_code or span.error_code)
        else:
            out.append(span)
    return out


def port_outages(
    station_id: str,
    *,
    connectors: int,
    changes: Iterable[StatusChange],
    offline: Sequence[tuple[datetime, datetime | None]] = (),
    failed_sessions: Sequence[tuple[int, datetime, datetime, str | None]] = (),
) -> list[Outage]:
    """Every port's outages of one station, merged per port; order and duplicates of `changes` do not matter.

    `connectors` is the station's connector count (ports 1..connectors; a port seen in `changes`
    beyond it counts too). `failed_sessions` are (port, start, end, the error code active at its
    end or None): each is out on its port for [start, end]. A history that begins inside an outage must start with the last status
    before it that was not down, or the outage starts late.
    """
    by_connector: dict[int, list[StatusChange]] = defaultdict(list)
    for change in changes:
        if change.station_id == station_id:
            by_connector[change.connector_id].append(change)
    heard_at = [c.ts for connector, history in by_connector.items() if connector != 0 for c in history]
    whole = _status_spans(by_connector.get(0, ()), heard_at)
    whole += [_Span(since, until, frozenset({Signal.OFFLINE}), None) for since, until in offline]
    failed: dict[int, list[_Span]] = defaultdict(list)
    for port, start, end, code in failed_sessions:
        failed[port].append(_Span(start, end, frozenset({Signal.FAILED_SESSION}), code))
    ports = set(range(1, max(connectors, 1) + 1)) | {c for c in by_connector if c > 0} | {p for p in failed if p > 0}
    out: list[Outage] = []
    for port in sorted(ports):
        for span in _merge([*_status_spans(by_connector.get(port, ())), *failed.get(port, ()), *whole]):
            out.append(Outage(station_id, port, span.start, span.end,
                              tuple(sorted(span.signals)), span.error_code))  # fmt: skip
    return out
