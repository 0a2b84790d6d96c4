"""Outage intervals per port and the uptime arithmetic (beat.uptime_rules): pure, hand-checked and property-tested."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from beat.uptime_rules import Outage, Signal, StatusChange, port_outages
from evmonitor.ledger.figures import Uptime, uptime

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
STATUSES = ["Available", "Charging", "Faulted", "Unavailable", "Preparing"]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def change(connector: int, minute: int, status: str, n: int, error: str = "NoError") -> StatusChange:
    return StatusChange("S1", connector, at(minute), status, error, f"e{n:04d}")


def spans(outages: list[Outage]) -> list[tuple[int, int, int | None]]:
    return [(o.connector_id, int((o.started_at - T0) / timedelta(minutes=1)),
             None if o.ended_at is None else int((o.ended_at - T0) / timedelta(minutes=1))) for o in outages]  # fmt: skip


def test_a_fault_is_one_outage_from_faulted_to_the_next_other_status():
    """Faulted at 10, Available at 40 on connector 1: one outage [10, 40) on port 1 and none on port 2."""
    changes = [change(1, 0, "Available", 1), change(1, 10, "Faulted", 2, "GroundFailure"), change(1, 40, "Available", 3)]
    outages = port_outages("S1", connectors=2, changes=changes)
    assert spans(outages) == [(1, 10, 40)]
    assert outages[0].signals == (Signal.FAULTED,) and outages[0].error_code == "GroundFailure"
    assert outages[0].id == "outage:S1:1:2026-11-01T00:10:00Z"


def test_a_station_wide_outage_overlapping_a_fault_merges_into_one_outage_on_that_port():
    """Connector 1 Faulted [10, 40), connector 0 Unavailable [30, 70): port 1 [10, 70) once, port 2 [30, 70)."""
    changes = [change(1, 10, "Faulted", 1, "GroundFailure"), change(1, 40, "Available", 2),
               change(0, 30, "Unavailable", 3), change(0, 70, "Available", 4)]  # fmt: skip
    outages = port_outages("S1", connectors=2, changes=changes)
    assert spans(outages) == [(1, 10, 70), (2, 30, 70)]
    assert outages[0].signals == (Signal.FAULTED, Signal.UNAVAILABLE)


def test_offline_episodes_take_every_port_down_and_an_open_one_keeps_the_outage_open():
    """A station_offline episode from 100 still open is an open outage on every port, merged with a fault in it."""
    changes = [change(2, 90, "Faulted", 1), change(2, 120, "Available", 2)]
    outages = port_outages("S1", connectors=2, changes=changes, offline=[(at(100), None)])
    assert spans(outages) == [(1, 100, None), (2, 90, None)]
    assert outages[1].signals == (Signal.FAULTED, Signal.OFFLINE)


def test_a_closed_connection_is_its_own_signal_and_merges_with_a_fault():
    """Unavailable with info "connection_closed: ..." shows connection_closed (not Unavailable); a fault in it is one outage."""
    closed = StatusChange("S1", 0, at(30), "Unavailable", "NoError", "e0003", "connection_closed: code 1006")
    legacy = StatusChange("S1", 0, at(200), "Unavailable", "NoError", "e0005", "connection closed: going away")
    changes = [change(1, 10, "Faulted", 1, "GroundFailure"), change(1, 80, "Available", 2), closed,
               change(0, 70, "Available", 4), legacy, change(0, 210, "Available", 6)]  # fmt: skip
    outages = port_outages("S1", connectors=2, changes=changes)
    assert spans(outages) == [(1, 10, 80), (1, 200, 210), (2, 30, 70), (2, 200, 210)]
    assert outages[0].signals == (Signal.FAULTED, Signal.CONNECTION_CLOSED)
    assert {o.signals for o in outages[1:]} == {(Signal.CONNECTION_CLOSED,)}


def test_a_closed_connection_ends_when_the_station_speaks_again_on_any_connector():
    """Closed at 30, connector 1 reports at 50 (connected again): [30, 50); a charger-reported Unavailable is not cut."""
    closed = StatusChange("S1", 0, at(30), "Unavailable", "NoError", "e0001", "connection_closed: code 1006")
    changes = [closed, change(1, 50, "Charging", 2), change(0, 100, "Unavailable", 3), change(2, 110, "Available", 4),
               change(0, 120, "Available", 5)]  # fmt: skip
    outages = port_outages("S1", connectors=2, changes=changes)
    assert spans(outages) == [(1, 30, 50), (1, 100, 120), (2, 30, 50), (2, 100, 120)]
    assert [o.signals for o in outages[:2]] == [(Signal.CONNECTION_CLOSED,), (Signal.UNAVAILABLE,)]


def test_a_failed_session_is_an_outage_of_its_port_merged_with_overlapping_signals():
    """A failed session [50, 80) on port 2 joins a station-wide Unavailable [70, 90): port 2 [50, 90), both signals."""
    changes = [change(0, 70, "Unavailable", 1), change(0, 90, "Available", 2)]
    outages = port_outages("S1", connectors=2, changes=changes, failed_sessions=[(2, at(50), at(80), "OverCurrentFailure")])
    assert spans(outages) == [(1, 70, 90), (2, 50, 90)]
    assert outages[1].signals == (Signal.UNAVAILABLE, Signal.FAILED_SESSION)
    assert outages[1].error_code == "OverCurrentFailure"


def test_faulted_then_unavailable_is_one_outage():
    """A port that goes Faulted, then Unavailable, then Available was out once, from the first to the last."""
    changes = [change(1, 5, "Faulted", 1), change(1, 8, "Unavailable", 2), change(1, 20, "Available", 3)]
    assert spans(port_outages("S1", connectors=1, changes=changes)) == [(1, 5, 20)]


def test_uptime_by_hand():
    """A 30-day month, one port: 90 min out, 30 of them excluded -> (43200 - 60) / 43200 = 99.861 %."""
    month_end = T0 + timedelta(days=30)
    result = uptime(start=T0, end=month_end, first_seen_at=None,
                    outages=[(at(10), at(70), False), (at(200), at(230), True)])  # fmt: skip
    assert (result.total_min, result.outage_min, result.excluded_min) == (Decimal("43200.000"), Decimal("90.000"), Decimal("30.000"))
    assert result.uptime_pct == Decimal("99.861")


def test_uptime_counts_from_first_seen_and_runs_an_open_outage_to_the_end():
    """A port first seen mid-period counts from then; an open outage counts to the period's end."""
    result = uptime(start=T0, end=at(100), first_seen_at=at(40), outages=[(at(90), None, False), (at(0), at(50), False)])
    assert (result.total_us, result.outage_us, result.excluded_us) == (60 * 60_000_000, 20 * 60_000_000, 0)
    assert result.uptime_pct == Decimal("66.667")
    assert uptime(start=T0, end=at(10), first_seen_at=at(20), outages=[]).uptime_pct is None


def test_station_uptime_is_the_sum_of_its_ports():
    """Adding ports adds their microseconds; the percentage comes from the sums."""
    total = Uptime(100, 10, 0) + Uptime(100, 30, 10)
    assert total == Uptime(200, 40, 10) and total.uptime_pct == Decimal("85.000")


# --- properties ---------------------------------------------------------------------------------

changes_st = st.lists(
    st.builds(
        lambda c, m, s, n: change(c, m, s, n, "GroundFailure" if s == "Faulted" else "NoError"),
        st.integers(0, 3), st.integers(0, 500), st.sampled_from(STATUSES), st.integers(0, 10_000),
    ),
    max_size=40,
    unique_by=lambda c: c.event_id,
)  # fmt: skip
offline_st = st.lists(
    st.tuples(st.integers(0, 500), st.one_of(st.none(), st.integers(0, 200))).map(
        lambda p: (at(p[0]), None if p[1] is None else at(p[0] + p[1]))
    ),
    max_size=3,
)


@given(changes_st, offline_st, st.randoms())
def test_order_and_duplicates_do_not_change_the_ledger(changes, offline, rnd):
    """Shuffled, replayed status changes and offline episodes give the same outages."""
    noisy = changes + changes[: len(changes) // 2]
    rnd.shuffle(noisy)
    shuffled_offline = list(offline)
    rnd.shuffle(shuffled_offline)
    assert port_outages("S1", connectors=2, changes=noisy, offline=shuffled_offline) == port_outages(
        "S1", connectors=2, changes=changes, offline=offline
    )


@given(changes_st, offline_st)
def test_outages_on_one_port_never_overlap_or_touch(changes, offline):
    """Overlapping signals are merged: a port's outages are disjoint, sorted, separated by up time."""
    outages = port_outages("S1", connectors=2, changes=changes, offline=offline)
    ports: dict[int, list[Outage]] = {}
    for outage in outages:
        ports.setdefault(outage.connector_id, []).append(outage)
    for port_outages_ in ports.values():
        for before, after in zip(port_outages_, port_outages_[1:]):
            assert before.ended_at is not None and before.ended_at < after.started_at
    assert len({o.id for o in outages}) == len(outages)


@given(changes_st, offline_st)
def test_a_port_is_down_exactly_when_a_signal_says_so(changes, offline):
    """At every minute, a port is inside an outage iff its own or connector 0's status is down, or the station is offline."""
    outages = port_outages("S1", connectors=2, changes=changes, offline=offline)

    def status_down(connector: int, minute: int) -> bool:
        seen = sorted((c for c in changes if c.connector_id == connector and c.ts <= at(minute)), key=lambda c: (c.ts, c.event_id))
        return bool(seen) and seen[-1].status in ("Faulted", "Unavailable")

    for port in (1, 2, 3):
        for minute in range(0, 720, 7):
            moment = at(minute)
            expected = status_down(port, minute) or status_down(0, minute) or any(
                a <= moment and (b is None or moment < b) for a, b in offline)  # fmt: skip
            inside = any(o.connector_id == port and o.started_at <= moment and (o.ended_at is None or moment < o.ended_at)
                         for o in outages)  # fmt: skip
            if port == 3 and not any(c.connector_id == 3 for c in changes):
                continue  # port 3 exists only when the station reports it
            assert inside == expected, (port, minute)


def test_trailing_twelve_months_of_a_non_leap_year_are_525600_minutes():
    """12 months ending 2026-11 run 2025-12-01..2026-11-30: 365 days = 525,600 min; 1,000 min counted -> 99.810 %."""
    from evmonitor.days import day_bounds
    from evmonitor.ledger import trailing_months

    first, last = trailing_months("2026-11")
    assert (first.isoformat(), last.isoformat()) == ("2025-12-01", "2026-11-30")
    assert trailing_months("2026-01")[0].isoformat() == "2025-02-01"
    start, end = day_bounds(first, timezone.utc)[0], day_bounds(last, timezone.utc)[1]
    outages = [(datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 1, 16, 40, tzinfo=timezone.utc), False),
               (datetime(2026, 7, 4, tzinfo=timezone.utc), datetime(2026, 7, 4, 3, 20, tzinfo=timezone.utc), True)]  # fmt: skip
    year = uptime(start=start, end=end, first_seen_at=None, outages=outages)
    # 1,200 min out (16 h 40 + 3 h 20), 200 of them excluded: (525600 - (1200 - 200)) / 525600 = 99.8097 %
    assert (year.total_min, year.outage_min, year.excluded_min) == (Decimal("525600.000"), Decimal("1200.000"), Decimal("200.000"))
    assert year.uptime_pct == Decimal("99.810")
    # first seen 2026-06-01: June..November = 30+31+31+30+31+30 = 183 days = 263,520 min
    late = uptime(start=start, end=end, first_seen_at=datetime(2026, 6, 1, tzinfo=timezone.utc), outages=outages)
    assert (late.total_min, late.outage_min) == (Decimal("263520.000"), Decimal("200.000"))
    assert late.uptime_pct == Decimal("100.000")
