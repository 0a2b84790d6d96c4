"""Folding events into rows: order and duplicates never change the result."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from evmonitor.contract import decode
from evmonitor.fold import (
    SESSIONS,
    TABLES,
    WRITES,
    Columns,
    HeldReason,
    SessionStatus,
    Write,
    complete_rows,
    fold_columns,
    fold_source,
    held_reason,
    merge_columns,
    session_cost_eur,
    session_energy_kwh,
)
from evmonitor.fold.rules import LEAST, TS, Merge, Rule, Table, check_rules, first, latest, table
from tests.factories import NOW, encode, make_event, session_events, session_money


def wire(events):
    return [decode(encode(e), received_at=NOW + timedelta(hours=2)).to_wire() for e in events]


@st.composite
def a_session(draw):
    readings = sorted(draw(st.lists(st.integers(0, 80_000), min_size=0, max_size=6)))
    price = draw(st.sampled_from([0.39, 0.49, 0.59, 0.69, 0.79, 0.555, 0.3333]))
    start = draw(st.integers(0, 1_000_000))
    return wire(session_events(meter_start_wh=start, readings=readings or [0], price=price))


def station_events():
    ts = [NOW - timedelta(minutes=m) for m in range(6)]
    return wire([
        make_event("station_boot", at=ts[5], name="Old name"),
        make_event("station_boot", at=ts[1], name="New name", firmware_version="2.1"),
        make_event("station_status", at=ts[4], connector_id=0, status="Faulted", error_code="GroundFailure"),
        make_event("station_status", at=ts[2], connector_id=0, status="Available", error_code="NoError"),
        make_event("station_status", at=ts[3], connector_id=1, status="Charging", error_code="NoError"),
        make_event("station_status", at=ts[0], connector_id=0, status="Available", error_code="NoError",
                   heartbeat=True),
    ])  # fmt: skip


@st.composite
def noisy(draw, events):
    """Any subset-preserving duplication and any order of `events`."""
    dupes = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    rnd = draw(st.randoms(use_true_random=False))
    out = events + dupes
    rnd.shuffle(out)
    return out


def rows(columns: Columns, table=SESSIONS) -> dict:
    """The rows of one table, a NULL column as absent (as the database sees it)."""
    return {key: {c: v for c, v in row.items() if v is not None} for key, row in columns.table(table).items()}


def every_table(columns: Columns) -> dict[str, dict]:
    return {table.name: rows(columns, table) for table in TABLES}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_permutation_and_duplication_gives_the_identical_session_row(data):
    """Shuffled, replayed events of one session fold into the same row."""
    events = data.draw(a_session())
    expected = rows(fold_columns(events))
    assert rows(fold_columns(data.draw(noisy(events)))) == expected


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_folding_in_pieces_equals_folding_at_once(data):
    """Splitting events over batches (merged afterwards, in any order) changes no row of any table."""
    events = data.draw(noisy(data.draw(a_session()) + data.draw(a_session()) + station_events()))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=4)))
    pieces = [fold_columns(events[a:b]) for a, b in zip([0, *cuts], [*cuts, len(events)])]
    random.Random(len(pieces)).shuffle(pieces)
    merged = Columns()
    for piece in pieces:
        merge_columns(merged, piece)
    assert every_table(merged) == every_table(fold_columns(events))


def test_merging_a_fold_into_itself_changes_nothing():
    """merge_columns is idempotent: a batch written twice leaves the rows as they were."""
    events = wire(session_events(readings=[1000, 2000])) + station_events()
    twice = merge_columns(fold_columns(events), fold_columns(events))
    assert every_table(twice) == every_table(fold_columns(events))


def test_completed_session_is_not_reopened_by_a_late_progress_event():
    """A progress event that arrives after session_completed leaves it completed."""
    events = wire(session_events(readings=[1000, 2000]))
    late_progress = [e for e in events if e["event_type"] == "session_progress"][:1]
    row = complete_rows(fold_columns(events + late_progress)).sessions.popitem()[1]
    assert row["status"] == SessionStatus.COMPLETED and row["end_time"] is not None


def test_completion_before_start_yields_one_correct_session():
    """session_completed first, then session_started: one row with the right energy and money."""
    events = wire(session_events(meter_start_wh=500_000, readings=[12_345], price=0.59))
    completed, started = events[-1], events[0]
    early = complete_rows(fold_columns([completed]))
    assert early.sessions[completed["session_id"]]["status"] == SessionStatus.COMPLETED
    assert session_money(early.sessions[completed["session_id"]]) == (None, None)
    row = complete_rows(merge_columns(fold_columns([completed]), fold_columns([started]))).sessions.popitem()[1]
    assert row["status"] == SessionStatus.COMPLETED
    assert session_money(row) == (Decimal("12.345"), Decimal("7.28"))  # 12.345 * 0.59 = 7.28355
    assert row["start_time"].isoformat().startswith(started["timestamp"][:19])


def test_energy_and_cost_follow_the_design_formulas():
    """energy = (max meter - start) / 1000; cost rounded half-up to cents."""
    assert session_energy_kwh(1000, 13_345) == Decimal("12.345")
    assert session_energy_kwh(1000, 900) == Decimal("0")
    assert session_cost_eur(Decimal("1.5"), 0.39) == Decimal("0.59")  # 0.585 rounds up
    assert session_cost_eur(Decimal("10.125"), Decimal("0.4")) == Decimal("4.05")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_station_rows_ignore_order_and_duplicates(data):
    """Boots, status changes and heartbeats fold into the same station row in any order."""
    events = station_events()
    expected = fold_columns(events)
    got = fold_columns(data.draw(noisy(events)))
    assert every_table(got) == every_table(expected)
    station = expected.stations["ST-0001"]
    assert station["name"] == "New name" and station["status"] == "Available"
    assert station["last_heartbeat_at"] is not None and len(expected.status_log) == 3


def test_a_station_is_named_by_its_id_until_it_boots():
    """Before any station_boot the row's name is the station id; the boot's name replaces it."""
    status = wire([make_event("station_status", station_id="ST-9", connector_id=0)])
    assert complete_rows(fold_columns(status)).stations["ST-9"]["name"] == "ST-9"
    boot = wire([make_event("station_boot", station_id="ST-9", name="Hauptbahnhof")])
    merged = complete_rows(merge_columns(complete_rows(fold_columns(status)), fold_columns(boot)))
    assert merged.stations["ST-9"]["name"] == "Hauptbahnhof"


def test_an_unknown_event_type_is_a_bug_not_a_silent_skip():
    """The contract admits five event types; anything else raises."""
    with pytest.raises(ValueError, match="unknown event_type"):
        fold_columns([{**wire([make_event("station_status")])[0], "event_type": "station_reboot"}])


def test_every_written_column_has_a_rule_and_every_event_type_writes():
    """Every event type has writes; every column an event writes has a rule of its table."""
    assert set(WRITES) == {"station_boot", "station_status", "session_started", "session_progress", "session_completed"}
    for writes in WRITES.values():
        for write in writes:
            assert set(write.values) <= set(write.table.written())


def test_the_generator_refuses_a_column_without_a_rule():
    """A write into a column that has no rule fails when the fold is generated, not in a batch."""
    writes = {**WRITES, "session_progress": (Write(SESSIONS, {"id": TS, "voltage_v": TS}),)}
    with pytest.raises(ValueError, match="voltage_v: written, but has no rule"):
        fold_source(writes)


def test_a_table_written_again_after_another_tables_row_writes_its_own_row():
    """An event's writes may interleave tables: a later write into the first table goes to its row, not the
    other table's (the generated fold looks it up again)."""
    from evmonitor.fold.rules import MINUTE, PRESENCE, STAMP, STATIONS, Value

    station = Value("event['station_id']")
    writes = {"station_status": (
        Write(STATIONS, {"id": station, "first_seen_at": TS, "last_seen_at": TS}),
        Write(PRESENCE, {"station_id": station, "minute": MINUTE, "first_ts": STAMP, "last_ts": STAMP}),
        Write(STATIONS, {"id": station, "last_heartbeat_at": TS}, when="event.get('heartbeat')"),
    )}  # fmt: skip
    from evmonitor.fold.generate import _stamp, _ts

    namespace = {"_ts": _ts, "_stamp": _stamp}
    exec(fold_source(writes), namespace)
    out = Columns()
    [event] = wire([make_event("station_status", station_id="ST-1", connector_id=0, status="Available",
                               error_code="NoError", heartbeat=True)])  # fmt: skip
    namespace["_fold_into"]([event, event], out)
    ts = datetime.fromisoformat(event["timestamp"])
    assert out.stations["ST-1"]["last_heartbeat_at"] == ts
    stamp, minute = f"{ts:%Y-%m-%dT%H:%M:%S.%f}Z", f"{ts:%Y-%m-%dT%H:%M}:00Z"
    assert out.presence[("ST-1", minute)] == {"station_id": "ST-1", "minute": minute, "first_ts": stamp, "last_ts": stamp}


@pytest.mark.parametrize("text", ["2026-11-24T09:33:07Z", "2026-11-24T09:33:07.000120Z", "2026-11-24T10:33:07+01:00"])
def test_stamps_are_fixed_width_utc_text_that_sorts_as_time_does(text):
    """The presence history's times as text: one width, UTC, whatever the wire's spelling."""
    from evmonitor.fold.generate import _stamp, _ts

    stamp = _stamp(text, _ts(text))
    assert len(stamp) == 27 and stamp.startswith("2026-11-24T09:33:07.") and stamp.endswith("Z")
    assert datetime.fromisoformat(stamp) == _ts(text)
    later = _stamp("2026-11-24T09:33:07.5Z", _ts("2026-11-24T09:33:07.500000Z"))
    assert stamp < later == "2026-11-24T09:33:07.500000Z"


def test_the_generator_refuses_half_a_group():
    """A write gives a last-writer-wins group whole, with its ordering columns, or not at all."""
    writes = {**WRITES, "session_progress": (Write(SESSIONS, {"id": TS, "power_kw": TS}),)}
    with pytest.raises(ValueError, match="every column of the group"):
        fold_source(writes)


def test_a_group_must_be_ordered_by_its_own_columns():
    """A LATEST rule whose ordering columns are not of its group is refused."""
    wrong = Table("t", "sessions", ("id",), {"id": Rule(Merge.KEY), "a": Rule(Merge.LATEST, ("at",)), "at": LEAST})
    with pytest.raises(ValueError, match="must be of the group"):
        check_rules([wrong])
    check_rules([Table("t", "sessions", ("id",), {"id": Rule(Merge.KEY), **latest(("at",), "a")})])


def test_a_column_cannot_have_two_rules():
    """Two parts of a table that both give `at` a rule are refused."""
    with pytest.raises(ValueError, match="have two rules"):
        table("t", "sessions", ("id",), {"id": Rule(Merge.KEY), "at": LEAST}, latest(("at",), "a"))


# --- held sessions (DESIGN.md invariant 5) ----------------------------------------------------

DISPUTES = ("station", "connector", "meter_start", "reading_below_start", "stop_below_start")


def disputed(kind: str, events: list[dict]) -> tuple[dict, HeldReason]:
    """An event of `events`' session that disagrees on one fact, and the reason it holds the session."""
    started = events[0]
    common = dict(session_id=started["session_id"], station_id=started["station_id"],
                  connector_id=started["connector_id"])  # fmt: skip
    at = NOW + timedelta(minutes=2)
    if kind == "station":
        event = make_event("session_progress", at=at, **{**common, "station_id": "ST-0000"},
                           meter_wh=started["meter_start_wh"] + 10)  # fmt: skip
        return event, HeldReason.STATION_MISMATCH
    if kind == "connector":
        event = make_event("session_progress", at=at, **{**common, "connector_id": common["connector_id"] + 1},
                           meter_wh=started["meter_start_wh"] + 10)  # fmt: skip
        return event, HeldReason.CONNECTOR_MISMATCH
    if kind == "meter_start":
        event = make_event("session_started", at=at, **common, meter_start_wh=started["meter_start_wh"] + 1)
        return event, HeldReason.METER_START_MISMATCH
    if kind == "reading_below_start":
        event = make_event("session_progress", at=at, **common, meter_wh=started["meter_start_wh"] - 1)
        return event, HeldReason.METER_BELOW_START
    event = make_event("session_completed", at=at, **common, meter_stop_wh=started["meter_start_wh"] - 1)
    return event, HeldReason.METER_BELOW_START


@st.composite
def a_disputed_session(draw):
    """A session's events plus one event that disagrees with them, the reason, and that event."""
    events = draw(a_session())
    assume(events[0]["meter_start_wh"] > 0)  # the contract refuses a negative meter below a start of 0
    event, reason = disputed(draw(st.sampled_from(DISPUTES)), events)
    (event,) = wire([event])
    return events + [event], reason, event


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_disagreement_holds_the_session_in_every_order_duplication_and_split(data):
    """Any order, duplication and split into batches: the session is held, unbilled, for the same reason."""
    events, reason, odd = data.draw(a_disputed_session())
    noisy_events = data.draw(noisy(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(noisy_events)), max_size=4)))
    pieces = [fold_columns(noisy_events[a:b]) for a, b in zip([0, *cuts], [*cuts, len(noisy_events)])]
    data.draw(st.randoms(use_true_random=False)).shuffle(pieces)
    merged = Columns()
    for piece in pieces:
        merge_columns(merged, piece)
    row = complete_rows(merged).sessions[events[0]["session_id"]]
    assert rows(merged) == rows(complete_rows(fold_columns(events)))
    assert held_reason(row) == reason
    assert session_money(row) == (None, None)
    named = {row[c] for c in row if c.endswith("_event_id") and c != "progress_event_id"}
    assert odd["event_id"] in named  # the alert can name the event that disagrees


def test_the_extremes_name_the_events_that_disagree():
    """Two stations for one session: the least and greatest place each carry their event's id."""
    events = wire(session_events(readings=[1000], station_id="ST-B"))
    other, _ = disputed("station", events)
    (other,) = wire([other])
    row = complete_rows(fold_columns(events + [other])).sessions[events[0]["session_id"]]
    assert (row["station_id"], row["place_min_event_id"]) == ("ST-0000", other["event_id"])
    assert row["station_id_max"] == "ST-B" and row["place_max_event_id"] in {e["event_id"] for e in events}


def test_an_agreeing_session_is_not_held_and_is_billed():
    """Repeated facts that agree hold nothing: energy and cost as DESIGN.md defines them."""
    events = wire(session_events(meter_start_wh=500_000, readings=[12_345], price=0.59))
    row = complete_rows(fold_columns(events + events)).sessions.popitem()[1]
    assert held_reason(row) is None
    assert session_money(row) == (Decimal("12.345"), Decimal("7.28"))


def test_more_energy_than_the_station_can_deliver_holds_the_session():
    """50 kWh in 15 minutes: fine at 350 kW, held at 22 kW; unknown max power holds nothing."""
    events = wire(session_events(readings=[10_000, 30_000, 50_000]))  # 20 minutes, first to last event
    row = complete_rows(fold_columns(events)).sessions.popitem()[1]
    assert held_reason({**row, "power_limit_kw": None}) is None
    assert held_reason({**row, "power_limit_kw": 350.0}) is None
    assert held_reason({**row, "power_limit_kw": 22.0}) == HeldReason.EXCEEDS_MAX_POWER
    assert session_money({**row, "power_limit_kw": 22.0}) == (None, None)
    # the grace: 150 kW over 20 minutes and one more is 52.5 kWh
    assert held_reason({**row, "meter_max_wh": row["meter_start_wh"] + 52_500, "power_limit_kw": 150.0}) is None
    assert held_reason({**row, "meter_max_wh": row["meter_start_wh"] + 52_501, "power_limit_kw": 150.0}) is not None


def test_a_first_group_keeps_the_least_tuple_whole():
    """A FIRST group is LATEST's mirror: the side with the least ordering columns gives every column."""
    t = Table("t", "sessions", ("id",), {"id": Rule(Merge.KEY), **first(("v", "e"), "w")})
    check_rules([t])
    assert t.groups() == {("v", "e"): ("w", "v", "e")}
