"""Drain mode: a whole window of a fleet's life planned up front, then sent as fast as possible.

`plan_drain` is pure: the same arguments give byte-identical messages and truth. Each concern
draws from its own generator seeded from (seed, concern), so turning a chaos knob never changes
the valid events, and the truth of a plan is independent of its chaos.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from evmonitor.config import Settings
from evmonitor.simulator.bad import bad_messages
from evmonitor.simulator.demand import arrival_times
from evmonitor.simulator.disorder import add_duplicates, mix_in, reorder_sessions
from evmonitor.simulator.downtime import plan_downtime
from evmonitor.simulator.fleet import build_fleet
from evmonitor.simulator.messages import Message, RunRandom, event_message, to_ms
from evmonitor.simulator.scenario import build_timeline
from evmonitor.simulator.schedule import plan_maintenance, plan_outages, schedule_sessions
from evmonitor.simulator.truth import GroundTruth, iso_window, session_truth

__all__ = ["Plan", "default_window", "plan_drain"]


@dataclass
class Plan:
    messages: list[Message]
    truth: GroundTruth


def default_window(now: datetime) -> tuple[datetime, datetime]:
    """Today so far in UTC, and at least the last two hours: (start, end=now)."""
    now = now.astimezone(timezone.utc)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if now - start < timedelta(hours=2):
        start = now - timedelta(hours=2)
    return start, now


def _rng(seed: int, concern: str) -> random.Random:
    return random.Random(f"{seed}:{concern}")


# the monitor's default: a station is offline after this many heartbeat intervals of silence
_MISSED_HEARTBEATS = Settings.model_fields["offline_after_heartbeats"].default


def plan_drain(
    *,
    stations: int,
    sessions: int,
    seed: int,
    start: datetime,
    end: datetime,
    bad_ratio: float = 0.0,
    duplicate_ratio: float = 0.0,
    reorder: bool = False,
    meter_interval_s: float = 300,
    heartbeat_interval_s: float = 900,
    now: datetime | None = None,
    run_id: str | None = None,
    offline_after_s: float | None = None,
) -> Plan:
    """Every message of `sessions` sessions on `stations` stations between `start` and `end`.

    All timestamps lie in [start, end] (milliseconds, UTC). `now` (default: `end`) is the
    receive time the bad events are aimed at: "five years away" means from `now`, and every
    valid event is valid when received at `now` with the contract's default limits, as long as
    the window lies within the last 30 days before `now`.

    Raises ValueError for an empty window, negative counts or ratios outside [0, 1], or a
    window too short to hold the sessions even when squeezed to a few seconds each.

    `run_id` (see `RunRandom`) keeps the same fleet and day but mints other session and event
    ids; without it the ids repeat for the seed (tests rely on that).

    The truth's outages per port (`evmonitor.simulator.downtime`) are judged at `end`, with a
    station offline once silent for more than `offline_after_s` (default: the monitor's default,
    `EVMON_OFFLINE_AFTER_HEARTBEATS` heartbeat intervals).
    """
    start_ms, end_ms = to_ms(start), to_ms(end)
    if start.microsecond % 1000:
        start_ms += 1  # the first millisecond not before `start`
    if end_ms <= start_ms:
        raise ValueError("end must be after start")
    if sessions < 0:
        raise ValueError("sessions must be >= 0")
    if bad_ratio < 0:
        raise ValueError("bad_ratio must be >= 0")
    now_ms = to_ms(now) if now is not None else end_ms

    fleet = build_fleet(stations, seed)
    outages = plan_outages(_rng(seed, "outages"), fleet, start_ms, end_ms)
    plan_maintenance(_rng(seed, "maintenance"), fleet, outages, start_ms, end_ms)
    session_rng = _rng(seed, "sessions")
    margin = outages.margin_ms
    arrivals = arrival_times(session_rng, sessions, start_ms + margin, end_ms - margin) if sessions else []
    slots = schedule_sessions(session_rng, fleet, arrivals, outages, start_ms, end_ms)
    line = build_timeline(RunRandom(f"{seed}:events", run_id), fleet, outages, slots, start_ms, end_ms,
                          meter_interval_s, heartbeat_interval_s)

    messages = [event_message(record.event) for record in line.records]
    index_of = {s.station_id: s.index for s in fleet}
    first_ms: dict[int, int] = {}
    last_ms: dict[int, int] = {}
    for record in line.records:  # in time order
        i = index_of[record.event["station_id"]]
        first_ms.setdefault(i, record.ts_ms)
        last_ms[i] = record.ts_ms
    downtime = plan_downtime(fleet, outages, first_event_ms=first_ms, last_event_ms=last_ms, judged_at=end,
                             offline_after_s=offline_after_s if offline_after_s is not None
                             else heartbeat_interval_s * _MISSED_HEARTBEATS)  # fmt: skip
    valid_events = len(messages)
    if reorder:
        messages = reorder_sessions(messages, [r.session_id for r in line.records], _rng(seed, "reorder"))
    bad_rng = _rng(seed, "bad")
    bad = bad_messages(bad_rng, [r.event for r in line.records], round(bad_ratio * valid_events), now_ms)
    messages, duplicates = add_duplicates(messages, duplicate_ratio, _rng(seed, "duplicates"))
    messages = mix_in(messages, bad, bad_rng)

    truth = GroundTruth(
        seed=seed,
        run_id=run_id,
        station_ids=[s.station_id for s in fleet],
        by_session={
            m.session_id: session_truth(m.station_id, m.meter_start_wh, m.meter_stop_wh, m.price_eur_per_kwh)
            for m in line.sessions
        },
        valid_events=valid_events,
        messages=len(messages),
        window=iso_window(start, end),
        duplicates=duplicates,
        bad_events=len(bad),
        deadletters=GroundTruth.count_reasons([m.expected for m in bad]),
        downtime=downtime,
    )
    return Plan(messages, truth)
