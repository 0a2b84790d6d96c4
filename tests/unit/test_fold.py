"""Folding events into rows: order and duplicates never change the result."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from evmonitor.contract import decode
from evmonitor.fold import fold_events, session_cost_eur, session_energy_kwh
from tests.factories import NOW, encode, make_event, session_events


def wire(events):
    return [decode(encode(e), received_at=NOW + timedelta(hours=2)).to_wire() for e in events]


@st.composite
def a_session(draw):
    readings = sorted(draw(st.lists(st.integers(0, 80_000), min_size=0, max_size=6)))
    price = draw(st.sampled_from([0.39, 0.49, 0.59, 0.69, 0.79, 0.555, 0.3333]))
    start = draw(st.integers(0, 1_000_000))
    return wire(session_events(meter_start_wh=start, readings=readings or [0], price=price))


@st.composite
def noisy(draw, events):
    """Any subset-preserving duplication and any order of `events`."""
    dupes = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    rnd = draw(st.randoms(use_true_random=False))
    out = events + dupes
    rnd.shuffle(out)
    return out


@settings(max_examples=300)
@given(st.data())
def test_every_permutation_and_duplication_gives_the_identical_session_row(data):
    """Shuffled, replayed events of one session fold into the same row."""
    events = data.draw(a_session())
    expected = fold_events(events).sessions
    assert fold_events(data.draw(noisy(events))).sessions == expected


@settings(max_examples=200)
@given(st.data())
def test_folding_in_pieces_equals_folding_at_once(data):
    """Splitting events over batches (merged afterwards, in any order) changes nothing."""
    events = data.draw(noisy(data.draw(a_session())))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=4)))
    pieces = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)])]
    rows = [r for p in pieces for r in fold_events(p).sessions.values()]
    random.Random(len(rows)).shuffle(rows)
    merged = reduce(lambda a, b: a.merge(b), rows)
    assert {merged.id: merged} == fold_events(events).sessions


def test_completed_session_is_not_reopened_by_a_late_progress_event():
    """A progress event that arrives after session_completed leaves it completed."""
    events = wire(session_events(readings=[1000, 2000]))
    late_progress = [e for e in events if e["event_type"] == "session_progress"][:1]
    row = fold_events(events + late_progress).sessions.popitem()[1]
    assert row.status == "completed" and row.end_time is not None


def test_completion_before_start_yields_one_correct_session():
    """session_completed first, then session_started: one row with the right energy and money."""
    events = wire(session_events(meter_start_wh=500_000, readings=[12_345], price=0.59))
    completed, started = events[-1], events[0]
    early = fold_events([completed]).sessions.popitem()[1]
    assert early.status == "completed" and early.energy_delivered_kwh is None
    row = early.merge(fold_events([started]).sessions.popitem()[1])
    assert row.energy_delivered_kwh == Decimal("12.345")
    assert row.cost_eur == Decimal("7.28")  # 12.345 * 0.59 = 7.28355
    assert row.start_time == started["timestamp"] or row.start_time.isoformat().startswith(started["timestamp"][:19])


def test_energy_and_cost_follow_the_design_formulas():
    """energy = (max meter - start) / 1000; cost rounded half-up to cents."""
    assert session_energy_kwh(1000, 13_345) == Decimal("12.345")
    assert session_energy_kwh(1000, 900) == Decimal("0")
    assert session_cost_eur(Decimal("1.5"), 0.39) == Decimal("0.59")  # 0.585 rounds up
    assert session_cost_eur(Decimal("10.125"), Decimal("0.4")) == Decimal("4.05")


@settings(max_examples=200)
@given(st.data())
def test_station_rows_ignore_order_and_duplicates(data):
    """Boots, status changes and heartbeats fold into the same station row in any order."""
    ts = [NOW - timedelta(minutes=m) for m in range(6)]
    events = wire([
        make_event("station_boot", at=ts[5], name="Old name"),
        make_event("station_boot", at=ts[1], name="New name", firmware_version="2.1"),
        make_event("station_status", at=ts[4], connector_id=0, status="Faulted", error_code="GroundFailure"),
        make_event("station_status", at=ts[2], connector_id=0, status="Available", error_code="NoError"),
        make_event("station_status", at=ts[3], connector_id=1, status="Charging", error_code="NoError"),
        make_event("station_status", at=ts[0], connector_id=0, status="Available", error_code="NoError", heartbeat=True),
    ])  # fmt: skip
    expected = fold_events(events)
    got = fold_events(data.draw(noisy(events)))
    assert got.stations == expected.stations
    assert got.connectors == expected.connectors
    assert got.status_log == expected.status_log
    station = expected.stations["ST-0001"]
    assert station.name == "New name" and station.status == "Available"
    assert station.last_heartbeat_at is not None and len(expected.status_log) == 3
