"""Alerts and availability as pure functions of event history and a `now` passed in.

An alert is an episode: a condition that began at `since` (event time) and, once closed, ended
at `until`. Its id is derived from what it is about (kind, subject, since), so recomputing the
same history yields the same ids and an upsert of them changes nothing.

    connector_fault   a connector (or connector 0, the whole station) went Faulted; the next
                      status that is not Faulted closes it. The error code is the first one.
                      Debounced (EVMON_ALERT_DEBOUNCE_S): a fault that returns less than the
                      debounce after it cleared continues the same episode (one alert, however
                      often the status toggles), and an episode is closed only once its connector
                      has stayed healthy that long (until = when it cleared, the real end); the
                      faulted spans of a merged episode are kept in details["spans"].
    station_offline   no message for more than `offline_after`; since = the last message; closed
                      when the station speaks again (until = that message). Read from the presence
                      history, so a silence in the past is an episode too, not only the current one.
    session_stale     an active session with no event for `stale_after`; closed when it
                      completes (until = end_time) or speaks again.
    maintenance_due   `threshold` faults of one station starting within one `window`; open
                      while the sliding window holds that many, closed when it no longer does.
    uptime_below_target  a port's trailing uptime fell below the target (EVMON_UPTIME_TARGET_PCT);
                      since = the run that saw it, closed by the run that sees it back at target.
    session_conflict  a session is held (`held_reason`: its events disagree on a fact, or it is
                      physically impossible); names the events that carried each disputed value;
                      since = the session's start; closed once it is no longer held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

from evmonitor.contract import ChargePointStatus

__all__ = [
    "Alert",
    "Kind",
    "StatusChange",
    "conflict_alert",
    "describe",
    "fault_episodes",
    "fault_spans",
    "iso",
    "maintenance_episodes",
    "offline_episodes",
    "stale_alert",
    "stale_closed",
    "uptime_alerts",
]

class Kind(StrEnum):
    FAULT = "connector_fault"
    OFFLINE = "station_offline"
    STALE = "session_stale"
    MAINTENANCE = "maintenance_due"
    CONFLICT = "session_conflict"
    UPTIME = "uptime_below_target"


SEVERITY = {Kind.FAULT: "warning", Kind.OFFLINE: "critical", Kind.STALE: "info", Kind.MAINTENANCE: "warning",
            Kind.CONFLICT: "critical", Kind.UPTIME: "warning"}  # fmt: skip


def iso(moment: datetime) -> str:
    """UTC, microseconds only when present, `Z`: the stable spelling used inside alert ids."""
    text = moment.astimezone(timezone.utc).isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StatusChange:
    station_id: str
    connector_id: int
    ts: datetime
    status: str
    error_code: str
    event_id: str
    info: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    kind: Kind
    station_id: str
    since: datetime
    until: datetime | None = None
    connector_id: int | None = None
    session_id: str | None = None
    error_code: str | None = None
    info: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "open" if self.until is None else "closed"

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    @property
    def duration(self) -> timedelta | None:
        return None if self.until is None else self.until - self.since


def _minutes(span: timedelta) -> str:
    total = int(span.total_seconds() // 60)
    return f"{total // 60} h {total % 60:02d} min" if total >= 60 else f"{total} min"


def describe(alert: Alert, station_name: str | None = None) -> str:
    """One sentence an operator reads in Kibana or the report."""
    who = f"{station_name} ({alert.station_id})" if station_name and station_name != alert.station_id else alert.station_id
    since = alert.since.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ended = f", recovered after {_minutes(alert.duration)}" if alert.duration is not None else ", still open"
    if alert.kind is Kind.FAULT:
        where = "whole station" if alert.connector_id == 0 else f"connector {alert.connector_id}"
        return f"{who} {where} Faulted ({alert.error_code}) since {since}{ended}"
    if alert.kind is Kind.OFFLINE:
        back = f", spoke again after {_minutes(alert.duration)}" if alert.duration is not None else ", still silent"
        return f"{who} offline: no message since {since}{back}"
    if alert.kind is Kind.STALE:
        done = f", closed after {_minutes(alert.duration)}" if alert.duration is not None else ""
        return f"Session {alert.session_id} on {who} connector {alert.connector_id}: no event since {since}{done}"
    if alert.kind is Kind.UPTIME:
        pct, target = alert.details.get("uptime_pct"), alert.details.get("target_pct")
        done = f", back at target after {_minutes(alert.duration)}" if alert.duration is not None else ""
        return (f"{who} connector {alert.connector_id} uptime {pct} % over the last {alert.details.get('window_days')} "
                f"days, below the target {target} % (since {since}){done}")
    if alert.kind is Kind.CONFLICT:
        done = f", resolved after {_minutes(alert.duration)}" if alert.duration is not None else ""
        disputed = "; ".join(f"{d['fact']} {d['least']['value']} (event {d['least']['event_id']}) vs "
                             f"{d['greatest']['value']} (event {d['greatest']['event_id']})"
                             for d in alert.details.get("disputed", ()))  # fmt: skip
        return (f"Session {alert.session_id} on {who} held, not billed ({alert.info}): "
                f"{disputed or alert.details.get('why', '')}{done}")
    faults = alert.details.get("faults_in_window")
    window_h = alert.details.get("window_h")
    done = f", cleared after {_minutes(alert.duration)}" if alert.duration is not None else ""
    return f"{who} needs maintenance: {faults} faults within {window_h} h (since {since}){done}"


# --- connector faults ---------------------------------------------------------------------------


def fault_episodes(
    changes: Iterable[StatusChange], *, debounce: timedelta = timedelta(0), now: datetime | None = None
) -> list[Alert]:
    """Fault episodes in a station's status history, each connector on its own, debounced.

    Order-insensitive: changes are sorted by (ts, event_id). A history that begins inside an
    episode (or within `debounce` after one) must start with the last healthy change before it,
    or the episode starts late. Faults less than `debounce` apart are one episode; the last one
    stays open until `now` is `debounce` past its end (without `now`, it closes at once).
    """
    by_connector: dict[tuple[str, int], list[StatusChange]] = defaultdict(list)
    for change in changes:
        by_connector[(change.station_id, change.connector_id)].append(change)
    out: list[Alert] = []
    for (station_id, connector_id), history in sorted(by_connector.items()):
        spans: list[tuple[StatusChange, datetime | None]] = []
        opened: StatusChange | None = None
        for change in sorted(history, key=lambda c: (c.ts, c.event_id)):
            if change.status == ChargePointStatus.FAULTED and opened is None:
                opened = change
            elif change.status != ChargePointStatus.FAULTED and opened is not None:
                spans.append((opened, change.ts))
                opened = None
        if opened is not None:
            spans.append((opened, None))
        out += _debounced(spans, debounce, now)
    return out


def _debounced(spans: list[tuple[StatusChange, datetime | None]], debounce: timedelta,
               now: datetime | None) -> list[Alert]:  # fmt: skip
    groups: list[list[tuple[StatusChange, datetime | None]]] = []
    for start, until in spans:
        last_until = groups[-1][-1][1] if groups else None
        if last_until is not None and start.ts - last_until < debounce:
            groups[-1].append((start, until))
        else:
            groups.append([(start, until)])
    out = []
    for group in groups:
        until = group[-1][1]
        deferred = until is not None and now is not None and now - until < debounce
        alert = _fault(group[0][0], until=None if deferred else until)  # deferred: cleared, not for long enough yet
        if len(group) > 1 or deferred:
            alert = replace(alert, details={"spans": [[iso(s.ts), iso(u) if u else None] for s, u in group]})
        out.append(alert)
    return out


def fault_spans(alert: Alert) -> list[tuple[datetime, datetime | None]]:
    """The time a (possibly debounced) fault episode was really Faulted: its spans."""
    spans = alert.details.get("spans")
    if not spans:
        return [(alert.since, alert.until)]
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None) for a, b in spans]


def _fault(start: StatusChange, until: datetime | None) -> Alert:
    return Alert(
        id=f"fault:{start.station_id}:{start.connector_id}:{iso(start.ts)}",
        kind=Kind.FAULT,
        station_id=start.station_id,
        connector_id=start.connector_id,
        since=start.ts,
        until=until,
        error_code=start.error_code,
        info=start.info,
    )


# --- maintenance --------------------------------------------------------------------------------


def maintenance_episodes(
    station_id: str, fault_starts: Sequence[datetime], *, threshold: int, window: timedelta
) -> list[Alert]:
    """When `threshold` or more faults started within the last `window`, as episodes.

    A fault at s counts for t in [s, s + window). The episode opens at the fault that reaches
    the threshold and closes when the count falls below it (a time that may lie after `now`: the
    caller treats such an episode as open).
    """
    steps = sorted([(s + window, -1) for s in fault_starts] + [(s, +1) for s in fault_starts])
    out: list[Alert] = []
    count, peak, opened = 0, 0, None
    for moment, delta in steps:  # -1 sorts before +1 at the same moment: a fault leaves first
        count += delta
        if opened is None and count >= threshold:
            opened, peak = moment, count
        elif opened is not None:
            peak = max(peak, count)
            if count < threshold:
                out.append(_maintenance(station_id, opened, moment, peak, threshold, window))
                opened = None
    return out


def _maintenance(
    station_id: str, since: datetime, until: datetime, peak: int, threshold: int, window: timedelta
) -> Alert:
    return Alert(
        id=f"maintenance:{station_id}:{iso(since)}",
        kind=Kind.MAINTENANCE,
        station_id=station_id,
        since=since,
        until=until,
        details={"faults_in_window": peak, "threshold": threshold, "window_h": round(window.total_seconds() / 3600, 2)},
    )


# --- offline stations ---------------------------------------------------------------------------


def offline_episodes(
    station_id: str, heard: Iterable[tuple[datetime, datetime]], *, now: datetime, offline_after: timedelta
) -> list[Alert]:
    """The offline episodes of one station's presence history, judged at `now`.

    `heard`: the (first, last) moments the station was heard within each minute of its presence
    history (`station_presence`; consecutive minutes without a silence may come merged into one
    pair), in time order. Two consecutive moments more than `offline_after` apart are a closed
    episode [the last message before the silence, the first after it]; a station silent at `now`
    for more than `offline_after` has an open one since its last message. Exactly `offline_after`
    is not offline. The ids depend on the history only, so a rerun yields the same alerts.
    """
    out: list[Alert] = []
    last: datetime | None = None

    def episode(since: datetime, until: datetime | None) -> Alert:
        return Alert(id=f"offline:{station_id}:{iso(since)}", kind=Kind.OFFLINE, station_id=station_id, since=since,
                     until=until, details={"silent_for_s": offline_after.total_seconds()})  # fmt: skip

    for first, latest in heard:
        if last is not None and first - last > offline_after:
            out.append(episode(last, first))
        last = latest if last is None else max(last, latest)
    if last is not None and now - last > offline_after:
        out.append(episode(last, None))
    return out


# --- stale sessions -----------------------------------------------------------------------------


def stale_alert(session_id: str, station_id: str, connector_id: int, last_event_at: datetime) -> Alert:
    return Alert(
        id=f"stale:{session_id}:{iso(last_event_at)}",
        kind=Kind.STALE,
        station_id=station_id,
        connector_id=connector_id,
        session_id=session_id,
        since=last_event_at,
    )


def stale_closed(alert: Alert, *, status: str, end_time: datetime | None, last_event_at: datetime) -> Alert | None:
    """The closed form of an open stale alert once its session completed or spoke again."""
    if status == "completed" and end_time is not None:
        return replace(alert, until=max(end_time, alert.since))
    if status == "active" and last_event_at > alert.since:
        return replace(alert, until=last_event_at)
    return None


# --- uptime below target ------------------------------------------------------------------------


def uptime_alerts(
    station_id: str,
    connector_id: int,
    uptime_pct: Decimal | None,
    *,
    target_pct: Decimal,
    window_days: int,
    open_alert: Alert | None,
    now: datetime,
) -> list[Alert]:
    """The uptime alert to record for one port: a new open one, the open one closed, or none.

    A port with nothing measured (`uptime_pct` None) neither opens nor closes one. The open alert
    keeps the figures it opened with, so a run that changes nothing rewrites nothing.
    """
    if uptime_pct is None:
        return []
    if open_alert is not None:
        return [replace(open_alert, until=now)] if uptime_pct >= target_pct else []
    if uptime_pct >= target_pct:
        return []
    return [Alert(
        id=f"uptime:{station_id}:{connector_id}:{iso(now)}",
        kind=Kind.UPTIME,
        station_id=station_id,
        connector_id=connector_id,
        since=now,
        details={"uptime_pct": str(uptime_pct), "target_pct": str(target_pct), "window_days": window_days},
    )]  # fmt: skip


# --- held sessions ------------------------------------------------------------------------------

# the facts whose two extremes a session row keeps: (fact, least value/event, greatest value/event)
_EXTREMES = {
    "station_mismatch": ("station_id", ("station_id", "place_min_event_id"), ("station_id_max", "place_max_event_id")),
    "connector_mismatch": ("connector_id", ("connector_id", "place_min_event_id"),
                           ("connector_id_max", "place_max_event_id")),
    "meter_start_mismatch": ("meter_start_wh", ("meter_start_wh", "meter_start_event_id"),
                             ("meter_start_max_wh", "meter_start_max_event_id")),
    "meter_below_start": ("meter_wh", ("meter_min_wh", "meter_min_event_id"),
                          ("meter_start_wh", "meter_start_event_id")),
}  # fmt: skip


def conflict_alert(session: Mapping[str, Any]) -> Alert:
    """The alert of a held session: a row of charging_sessions with `held_reason` set.

    Every fact whose extremes disagree is named with the two events that carried them (more than
    the first one, `held_reason`, may disagree).
    """
    disputed = []
    for fact, low, high in _EXTREMES.values():
        lo, hi = session.get(low[0]), session.get(high[0])
        if lo is None or hi is None or (lo == hi if fact != "meter_wh" else lo >= hi):
            continue
        disputed.append({"fact": fact, "least": {"value": lo, "event_id": session.get(low[1])},
                         "greatest": {"value": hi, "event_id": session.get(high[1])}})  # fmt: skip
    details: dict[str, Any] = {"reason": session["held_reason"], "disputed": disputed,
                               "events": sorted({e for d in disputed for side in ("least", "greatest")
                                                 if (e := d[side]["event_id"]) is not None})}  # fmt: skip
    if session["held_reason"] == "exceeds_max_power":
        hours = (session["last_event_at"] - session["start_time"]).total_seconds() / 3600
        energy_kwh = (session["meter_max_wh"] - session["meter_start_wh"]) / 1000
        details["why"] = (f"{energy_kwh:.3f} kWh in {hours:.2f} h is more than "
                          f"{session['power_limit_kw']} kW allows")  # fmt: skip
    return Alert(
        id=f"conflict:{session['id']}",
        kind=Kind.CONFLICT,
        station_id=session["station_id"],
        connector_id=session["connector_id"],
        session_id=str(session["id"]),
        since=session["start_time"],
        info=session["held_reason"],
        details=details,
    )
