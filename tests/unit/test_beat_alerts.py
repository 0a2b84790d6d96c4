"""Alert rules and availability: pure functions of history and a `now` passed in."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from beat.alerts import (
    conflict_alert,
    Kind,
    StatusChange,
    describe,
    fault_episodes,
    iso,
    maintenance_episodes,
    offline_episodes,
    stale_alert,
    stale_closed,
)
from beat.availability import availability
from evmonitor.days import day_bounds, days_overlapping, previous_day

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def change(minute: int, status: str, code: str = "NoError", connector: int = 1, station: str = "ST-1") -> StatusChange:
    return StatusChange(station, connector, T0 + minute * MIN, status, code, str(uuid.UUID(int=minute + 1000 * connector)))


def test_a_fault_opens_at_faulted_and_closes_at_the_next_other_status():
    """Faulted then Available gives one closed episode with the first error code and its duration."""
    history = [change(0, "Available"), change(10, "Faulted", "GroundFailure"), change(15, "Faulted", "OverVoltage"),
               change(52, "Available"), change(60, "Charging")]  # fmt: skip
    [episode] = fault_episodes(history)
    assert episode.kind is Kind.FAULT and episode.status == "closed"
    assert (episode.since, episode.until, episode.error_code) == (T0 + 10 * MIN, T0 + 52 * MIN, "GroundFailure")
    assert episode.duration == 42 * MIN
    assert episode.id == "fault:ST-1:1:2026-11-23T08:10:00Z"


def test_a_fault_without_recovery_stays_open_and_connectors_are_separate():
    """Each connector has its own episodes; an unrecovered one is open."""
    history = [change(0, "Faulted", "PowerMeterFailure", connector=2), change(5, "Faulted", "GroundFailure"),
               change(9, "Available")]  # fmt: skip
    episodes = {e.connector_id: e for e in fault_episodes(history)}
    assert episodes[1].status == "closed" and episodes[2].status == "open"
    assert episodes[2].error_code == "PowerMeterFailure"


@given(st.randoms(use_true_random=False), st.integers(0, 5))
def test_fault_episodes_ignore_order_and_duplicates(rnd, replays):
    """Shuffled and replayed status changes give the same episodes."""
    history = [change(i * 7, rnd.choice(["Available", "Faulted", "Charging", "Faulted"]), "InternalError",
                      connector=rnd.randint(0, 2)) for i in range(20)]  # fmt: skip
    noisy = history + history[:replays]
    rnd.shuffle(noisy)
    assert fault_episodes(noisy) == fault_episodes(history)


def test_maintenance_opens_at_the_threshold_fault_and_closes_when_the_window_drops_below():
    """Three faults within 24 h flag the station from the third until the first leaves the window."""
    starts = [T0, T0 + timedelta(hours=5), T0 + timedelta(hours=20), T0 + timedelta(days=3)]
    [episode] = maintenance_episodes("ST-1", starts, threshold=3, window=timedelta(hours=24))
    assert episode.since == T0 + timedelta(hours=20)
    assert episode.until == T0 + timedelta(hours=24)
    assert episode.details["faults_in_window"] == 3
    assert maintenance_episodes("ST-1", starts[:2], threshold=3, window=timedelta(hours=24)) == []


def heard(*minutes: float) -> list[tuple[datetime, datetime]]:
    """Presence rows of a station heard once at each of `minutes` after T0 (one row per minute)."""
    return [(T0 + m * MIN, T0 + m * MIN) for m in minutes]


def test_offline_after_three_intervals_and_closed_when_the_station_speaks_again():
    """Silent longer than offline_after opens an episode; a later message closes it at that message."""
    rule = dict(offline_after=timedelta(minutes=45))
    assert offline_episodes("ST-1", heard(0), now=T0 + 44 * MIN, **rule) == []
    [opened] = offline_episodes("ST-1", heard(0), now=T0 + 46 * MIN, **rule)
    assert (opened.kind, opened.since, opened.status, opened.id) == (Kind.OFFLINE, T0, "open", f"offline:ST-1:{iso(T0)}")
    [closed] = offline_episodes("ST-1", heard(0, 100, 105), now=T0 + 106 * MIN, **rule)
    assert (closed.id, closed.until, closed.status) == (opened.id, T0 + 100 * MIN, "closed")


def test_a_silence_in_the_past_is_a_closed_episode_from_the_last_message_to_the_next():
    """Heartbeats every 5 min with a hole (25 -> 90), judged after it: one closed episode over the hole."""
    rows = heard(*range(0, 30, 5), *range(90, 150, 5))
    [episode] = offline_episodes("ST-1", rows, now=T0 + 150 * MIN, offline_after=timedelta(minutes=15))
    assert (episode.since, episode.until, episode.status) == (T0 + 25 * MIN, T0 + 90 * MIN, "closed")
    # the station silent at `now` as well: the past episode and an open one
    past, current = offline_episodes("ST-1", rows, now=T0 + 200 * MIN, offline_after=timedelta(minutes=15))
    assert (past.id, current.since, current.until) == (episode.id, T0 + 145 * MIN, None)


def test_a_silence_of_exactly_offline_after_is_not_offline():
    """Strictly more than offline_after: a gap or a silence at `now` of exactly that long is not an episode."""
    after = timedelta(minutes=15)
    assert offline_episodes("ST-1", heard(0, 15, 30), now=T0 + 45 * MIN, offline_after=after) == []
    micro = timedelta(microseconds=1)
    rows = [(T0, T0), (T0 + after + micro, T0 + after + micro)]
    [episode] = offline_episodes("ST-1", rows, now=T0 + after + micro, offline_after=after)
    assert (episode.since, episode.until) == (T0, T0 + after + micro)
    assert offline_episodes("ST-1", [], now=T0, offline_after=after) == []


def test_within_a_minute_the_first_and_last_moments_bound_the_silence():
    """A row's first moment ends the silence before it, its last moment starts the one after it."""
    rows = [(T0, T0 + 50 * timedelta(seconds=1)), (T0 + 20 * MIN + timedelta(seconds=5), T0 + 20 * MIN + timedelta(seconds=55))]
    [episode] = offline_episodes("ST-1", rows, now=T0 + 21 * MIN, offline_after=timedelta(minutes=15))
    assert (episode.since, episode.until) == (T0 + timedelta(seconds=50), T0 + 20 * MIN + timedelta(seconds=5))


@given(st.lists(st.integers(0, 400), min_size=1, max_size=40, unique=True), st.integers(1, 60), st.integers(0, 600))
def test_runs_of_minutes_without_a_silence_give_the_episodes_of_their_minutes(minutes, after_min, now_min):
    """What beat reads is the rows merged into runs without a silence (SQL gaps and islands): the same episodes."""
    after, rows = timedelta(minutes=after_min), heard(*sorted(minutes))
    runs: list[tuple[datetime, datetime]] = []
    for first, last in rows:
        if runs and first - runs[-1][1] <= after:
            runs[-1] = (runs[-1][0], last)
        else:
            runs.append((first, last))
    now = T0 + now_min * MIN
    assert offline_episodes("ST-1", runs, now=now, offline_after=after) == offline_episodes(
        "ST-1", rows, now=now, offline_after=after)


def test_a_stale_alert_closes_at_completion_or_when_the_session_speaks_again():
    """Completion closes at end_time; a new event closes at that event; otherwise it stays open."""
    alert = stale_alert("s-1", "ST-1", 2, T0)
    assert alert.id == f"stale:s-1:{iso(T0)}"
    assert stale_closed(alert, status="stale", end_time=None, last_event_at=T0) is None
    assert stale_closed(alert, status="completed", end_time=T0 + 90 * MIN, last_event_at=T0).until == T0 + 90 * MIN
    assert stale_closed(alert, status="active", end_time=None, last_event_at=T0 + 40 * MIN).until == T0 + 40 * MIN


def test_describe_says_what_an_operator_needs():
    """Messages name the station, the connector, the code and the duration."""
    [episode] = fault_episodes([change(0, "Faulted", "GroundFailure"), change(75, "Available")])
    text = describe(episode, "Hauptbahnhof")
    assert "Hauptbahnhof (ST-1) connector 1 Faulted (GroundFailure)" in text and "1 h 15 min" in text


def test_availability_counts_faults_per_connector_and_offline_once():
    """Two connectors, one faulted 1 h, station offline 2 h overlapping it: 3 h down of 48 connector-hours."""
    start, end = T0, T0 + timedelta(hours=24)
    result = availability(start=start, end=end, connectors=2,
                          faults={1: [(T0 + timedelta(hours=2), T0 + timedelta(hours=3))]},
                          offline=[(T0 + timedelta(hours=2), T0 + timedelta(hours=4))])  # fmt: skip
    assert result.measured_connector_min == Decimal("2880.000")
    assert result.faulted_connector_min == Decimal("60.000")
    assert result.offline_connector_min == Decimal("180.000")  # 60 on connector 1 + 120 on connector 2
    assert result.availability_pct == Decimal("91.67")


def test_availability_whole_station_faults_and_open_episodes_run_to_the_end():
    """A connector 0 fault takes every connector down; an open episode lasts until `end`."""
    result = availability(start=T0, end=T0 + timedelta(hours=10), connectors=2,
                          faults={0: [(T0 + timedelta(hours=5), None)]}, offline=[])  # fmt: skip
    assert result.availability_pct == Decimal("50.00")
    assert availability(start=T0, end=T0, connectors=1, faults={}, offline=[]).availability_pct is None


def test_local_days_follow_the_time_zone_including_daylight_saving():
    """A Berlin day starts at 23:00 UTC in winter and is 23 h long when the clocks go forward."""
    berlin = ZoneInfo("Europe/Berlin")
    assert day_bounds(date(2026, 11, 23), berlin) == (datetime(2026, 11, 22, 23, tzinfo=timezone.utc),
                                                      datetime(2026, 11, 23, 23, tzinfo=timezone.utc))  # fmt: skip
    start, end = day_bounds(date(2026, 3, 29), berlin)
    assert end - start == timedelta(hours=23)
    assert days_overlapping([datetime(2026, 11, 22, 23, tzinfo=timezone.utc)], berlin) == {date(2026, 11, 23)}
    kolkata = ZoneInfo("Asia/Kolkata")  # +05:30: the UTC hour 18:00 straddles two local days
    assert days_overlapping([datetime(2026, 11, 22, 18, tzinfo=timezone.utc)], kolkata) == {date(2026, 11, 22),
                                                                                            date(2026, 11, 23)}
    assert previous_day(datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc), berlin) == date(2026, 11, 23)


def test_episodes_are_the_same_whatever_the_batch_boundaries():
    """Folding a history in two pieces (anchor = last healthy change) gives the same episodes as whole."""
    rnd = random.Random(3)
    history = [change(i * 3, rnd.choice(["Available", "Faulted", "Faulted", "Charging"]), "InternalError")
               for i in range(40)]  # fmt: skip
    cut = 20
    healthy_before = [c for c in history[:cut] if c.status != "Faulted"]
    anchor = healthy_before[-1] if healthy_before else None
    tail = [c for c in history if anchor is None or c.ts >= anchor.ts]
    whole = {e.id: e for e in fault_episodes(history)}
    redrawn = {e.id: e for e in fault_episodes(tail)}
    assert all(whole[i] == e for i, e in redrawn.items())
    assert {i for i, e in whole.items() if anchor is None or e.since >= anchor.ts} == set(redrawn)


def test_a_held_session_alert_names_the_events_that_disagree():
    """Another station and a reading below the start: both disputes named with their two events."""
    start = datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    row = {"id": "6f1c0a4e-0000-4000-8000-000000000001", "held_reason": "station_mismatch",
           "station_id": "ST-A", "station_id_max": "ST-B", "connector_id": 1, "connector_id_max": 1,
           "place_min_event_id": "e-low", "place_max_event_id": "e-high",
           "meter_start_wh": 5000, "meter_start_max_wh": 5000, "meter_start_event_id": "e-start",
           "meter_start_max_event_id": "e-start", "meter_min_wh": 4000, "meter_min_event_id": "e-below",
           "meter_max_wh": 9000, "start_time": start, "last_event_at": start + timedelta(minutes=30),
           "power_limit_kw": 22.0}  # fmt: skip
    alert = conflict_alert(row)
    assert (alert.id, alert.kind, alert.severity, alert.status) == (f"conflict:{row['id']}", Kind.CONFLICT,
                                                                    "critical", "open")  # fmt: skip
    assert alert.details["events"] == ["e-below", "e-high", "e-low", "e-start"]
    assert [d["fact"] for d in alert.details["disputed"]] == ["station_id", "meter_wh"]
    text = describe(alert, "Hauptbahnhof")
    assert "held, not billed (station_mismatch)" in text and "ST-A (event e-low) vs ST-B (event e-high)" in text
    assert conflict_alert(dict(row)) == alert  # a pure function of the row: the same id every run
