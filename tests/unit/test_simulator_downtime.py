"""The simulator's truth of outages per port: hand-made plans, and what real plans guarantee."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from evmonitor.simulator import plan_drain
from evmonitor.simulator.downtime import Downtime, from_us, plan_downtime
from evmonitor.simulator.fleet import build_fleet
from evmonitor.simulator.messages import to_ms
from evmonitor.simulator.schedule import Fault, Maintenance, Outages

DAY = datetime(2024, 5, 1, tzinfo=timezone.utc)
JUDGED = DAY + timedelta(hours=18)
MIN_SESSION_WH = 1  # EVMON_MIN_SESSION_WH's default: below it the monitor counts a session as failed


def at(hours: float) -> int:
    return to_ms(DAY + timedelta(hours=hours))


def hand_made():
    """Three two-port stations: A with overlapping faults and maintenance, B silent, C quiet but alive."""
    a, b, c = (replace(s, connector_count=2) for s in build_fleet(3, seed=1))
    outages = Outages(margin_ms=1)
    outages.faults[(a.index, 1)] = [Fault(a.index, 1, at(10), at(11), "GroundFailure", ""),
                                    Fault(a.index, 1, at(14), at(14.5), "HighTemperature", "")]  # fmt: skip
    outages.maintenance[a.index] = [Maintenance(a.index, at(10.5), at(12))]  # connector 0: both ports
    outages.faults[(b.index, 1)] = [Fault(b.index, 1, at(14 + 2 / 3), at(15), "InternalError", "")]
    outages.silent_at[b.index] = at(15) + 1
    first = {s.index: at(0) for s in (a, b, c)}
    last = {a.index: at(17.9), b.index: at(15), c.index: at(17.25)}  # C: exactly 45 min before JUDGED
    return [a, b, c], outages, first, last


@pytest.fixture(scope="module")
def downtime():
    fleet, outages, first, last = hand_made()
    return plan_downtime(fleet, outages, first_event_ms=first, last_event_ms=last, judged_at=JUDGED,
                         offline_after_s=2700)  # fmt: skip


@pytest.fixture(scope="module")
def demo_day():
    """The demo's shape (50 stations, 2000 sessions, seed 11) over most of a day."""
    return plan_drain(seed=11, stations=50, sessions=2000, start=DAY, end=DAY + timedelta(hours=20))


def test_overlapping_faults_and_maintenance_are_one_outage_per_port(downtime):
    """A fault overlapping a whole-station window is one outage on its port; the window counts on every port."""
    fleet, *_ = hand_made()
    a = next(p for p in downtime.ports if p.station_id == fleet[0].station_id and p.connector_id == 1)
    a2 = next(p for p in downtime.ports if p.station_id == fleet[0].station_id and p.connector_id == 2)
    assert [(from_us(s), from_us(e)) for s, e in a.outages] == [
        (DAY + timedelta(hours=10), DAY + timedelta(hours=12)), (DAY + timedelta(hours=14), DAY + timedelta(hours=14.5))]
    assert (a.total_us, a.outage_us) == (18 * 3600 * 10**6, 150 * 60 * 10**6)
    assert (a.outage_min, a.uptime_pct) == (Decimal("150.000"), Decimal("86.111"))  # 930 / 1080
    assert (a2.outage_min, a2.uptime_pct) == (Decimal("90.000"), Decimal("91.667"))  # 990 / 1080


def test_a_silent_station_is_out_from_its_last_message_on_and_a_touching_fault_joins_it(downtime):
    """Silent for more than offline_after: every port out from the last message, still open; a fault ending there merges."""
    fleet, *_ = hand_made()
    b1, b2 = (next(p for p in downtime.ports if p.station_id == fleet[1].station_id and p.connector_id == c)
              for c in (1, 2))  # fmt: skip
    assert [(from_us(s), e) for s, e in b1.outages] == [(DAY + timedelta(hours=14, minutes=40), None)]
    assert [(from_us(s), e) for s, e in b2.outages] == [(DAY + timedelta(hours=15), None)]
    assert (b1.outage_min, b1.uptime_pct) == (Decimal("200.000"), Decimal("81.481"))  # 880 / 1080
    assert (b2.outage_min, b2.uptime_pct) == (Decimal("180.000"), Decimal("83.333"))


def test_silent_for_exactly_offline_after_is_not_offline(downtime):
    """The monitor opens an offline episode only after MORE than offline_after of silence."""
    fleet, *_ = hand_made()
    c = [p for p in downtime.ports if p.station_id == fleet[2].station_id]
    assert [(p.outages, p.outage_us, p.uptime_pct) for p in c] == [((), 0, Decimal("100.000"))] * 2
    assert downtime.outage_min == Decimal(150 + 90 + 200 + 180)
    assert downtime.outages == 2 + 1 + 1 + 1


def test_downtime_round_trips_through_json(downtime):
    """to_json then from_json gives the same intervals to the microsecond."""
    assert Downtime.from_json(json.loads(json.dumps(downtime.to_json()))) == downtime


def test_a_plan_never_makes_a_failed_session(demo_day):
    """Every session of a plan delivers at least 1 Wh and none runs during an outage of its port.

    The monitor marks a session failed when it delivers under EVMON_MIN_SESSION_WH or ends during
    a fault, and counts a failed session as an outage: the simulator's truth has none to count.
    Checked on the demo's shape and on a window so short that sessions are squeezed.
    """
    squeezed = plan_drain(seed=5, stations=5, sessions=500, start=DAY, end=DAY + timedelta(hours=2))
    for plan in (demo_day, squeezed):
        assert min(s["energy_kwh"] for s in plan.truth.by_session.values()) * 1000 >= MIN_SESSION_WH
        outages = {(p.station_id, p.connector_id): p.outages for p in plan.truth.downtime.ports}
        spans = defaultdict(dict)
        for message in plan.messages:
            event = json.loads(message.value)
            if event["event_type"] in ("session_started", "session_completed"):
                spans[event["session_id"]][event["event_type"]] = event
        for parts in spans.values():
            started, completed = parts["session_started"], parts["session_completed"]
            begin, end = (to_ms(datetime.fromisoformat(e["timestamp"])) * 1000 for e in (started, completed))
            for a, b in outages[(started["station_id"], started["connector_id"])]:
                assert end < a or (b is not None and begin > b), (started["session_id"], a, b)


def test_the_demos_day_has_every_kind_of_outage(demo_day):
    """50 stations over a day: faults, whole-station maintenance windows and silent stations all occur."""
    plan = demo_day
    events = [json.loads(m.value) for m in plan.messages]
    statuses = {(e["connector_id"] == 0, e["status"]) for e in events if e["event_type"] == "station_status"}
    assert {(False, "Faulted"), (True, "Unavailable")} <= statuses
    assert any(b is None for p in plan.truth.downtime.ports for _, b in p.outages)  # a silent station
