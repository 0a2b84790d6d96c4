"""The simulator: valid events pass the contract, bad ones fail it as tagged, truth is exact."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evmonitor.contract import TOPIC_BY_TYPE, EventType, Rejection, validate
from evmonitor.errors import Reason, TransientError
from evmonitor.fold import fold_columns, held_reason
from evmonitor.simulator import GroundTruth, Message, default_window, plan_drain, run_live, send
from tests.factories import session_money

START = datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)
END = datetime(2024, 5, 1, 18, 0, tzinfo=timezone.utc)
SMALL = dict(stations=12, sessions=150, start=START, end=END)
CHAOS = dict(bad_ratio=0.08, duplicate_ratio=0.1, reorder=True)
few = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def plan():
    return plan_drain(seed=7, **SMALL, **CHAOS)


@pytest.fixture(scope="module")
def calm():
    return plan_drain(seed=7, **SMALL)


def wire_events(messages, received_at):
    """event_id -> normalised event, for every valid message (asserting it is valid)."""
    out = {}
    for message in messages:
        if message.expected is None:
            event = validate(message.value, received_at=received_at)
            assert not isinstance(event, Rejection), (event, message.value[:300])
            out[event.event_id] = event.to_wire()
    return out


def payloads(messages):
    return [json.loads(m.value) for m in messages if m.expected is None]


def session_spans(events):
    """(station, connector) -> [(started_at, completed_at, meter_start, meter_stop, [progress meters])]."""
    by_session = defaultdict(dict)
    for e in events:
        if "session_id" in e:
            by_session[e["session_id"]].setdefault(e["event_type"], []).append(e)
    spans = defaultdict(list)
    for parts in by_session.values():
        started, completed = parts["session_started"][0], parts["session_completed"][0]
        spans[(started["station_id"], started["connector_id"])].append((
            started["timestamp"], completed["timestamp"], started["meter_start_wh"], completed["meter_stop_wh"],
            [p["meter_wh"] for p in parts.get("session_progress", [])],
        ))
    return {key: sorted(v) for key, v in spans.items()}


def test_every_valid_message_passes_the_contract(plan):
    """Each valid message validates at the plan's `now`, on its type's topic, keyed by its station."""
    for message in plan.messages:
        if message.expected is None:
            event = validate(message.value, received_at=END)
            assert not isinstance(event, Rejection), event
            assert message.topic == TOPIC_BY_TYPE[EventType(event.event_type)]
            assert message.key == event.station_id.encode()


@few
@given(seed=st.integers(0, 2**32))
def test_every_bad_message_gets_exactly_its_reason(seed):
    """validate() rejects each bad message with the Reason it is tagged with."""
    plan = plan_drain(stations=4, sessions=20, seed=seed, start=START, end=START + timedelta(hours=3),
                      bad_ratio=0.5)
    bad = [m for m in plan.messages if m.expected is not None]
    assert bad
    for message in bad:
        result = validate(message.value, received_at=START + timedelta(hours=3))
        assert isinstance(result, Rejection) and result.reason == message.expected, (result, message.value[:300])
        assert message.topic in set(TOPIC_BY_TYPE.values())


def test_bad_messages_cover_every_contract_reason():
    """Bad messages come in many kinds: together they exercise every contract rejection reason."""
    plan = plan_drain(seed=1, **SMALL, bad_ratio=0.3)
    reasons = Counter(m.expected for m in plan.messages if m.expected is not None)
    assert set(reasons) == set(Reason) - {Reason.SINK_REJECTED, Reason.INTERNAL_ERROR}
    assert plan.truth.deadletters == {str(r): n for r, n in reasons.items()}
    assert any(len(m.value) > 64 * 1024 and len(m.value) < 1024 * 1024 for m in plan.messages)
    assert {m.topic for m in plan.messages if m.expected} == set(TOPIC_BY_TYPE.values())


def test_bad_count_follows_ratio_and_bad_messages_are_never_duplicated(plan):
    """round(bad_ratio x valid events) bad messages, keyed by real stations, each sent once."""
    truth = plan.truth
    bad = [m for m in plan.messages if m.expected is not None]
    assert len(bad) == truth.bad_events == round(CHAOS["bad_ratio"] * truth.valid_events)
    assert len({id(m) for m in bad}) == len(bad)
    assert {m.key.decode() for m in bad} <= set(truth.station_ids)
    assert truth.messages == len(plan.messages) == truth.valid_events + truth.duplicates + truth.bad_events


def test_truth_equals_the_fold_of_the_messages(plan):
    """Per-session kWh and EUR, totals and counts in the truth equal a fold of what is sent."""
    events = wire_events(plan.messages, END)
    fold = fold_columns(events.values())
    truth = plan.truth
    assert truth.valid_events == len(events)
    assert set(fold.sessions) == set(truth.by_session)
    for session_id, row in fold.sessions.items():
        expected = truth.by_session[session_id]
        assert row["end_time"] is not None
        assert (row["station_id"], *session_money(row)) == (
            expected["station_id"], expected["energy_kwh"], expected["cost_eur"])
    assert truth.energy_kwh == sum(session_money(r)[0] for r in fold.sessions.values())
    assert truth.cost_eur == sum(session_money(r)[1] for r in fold.sessions.values())
    assert sorted(fold.stations) == sorted(truth.station_ids)
    assert truth.sessions == SMALL["sessions"] and truth.stations == SMALL["stations"]


def test_the_simulator_never_makes_a_held_session():
    """Its facts always agree and no session beats its station's max power: `demo` stays exact."""
    plan = plan_drain(seed=11, stations=30, sessions=800, start=START, end=START + timedelta(days=2))
    fold = fold_columns(wire_events(plan.messages, START + timedelta(days=3)).values())
    for row in fold.sessions.values():
        limit = fold.stations[row["station_id"]]["max_power_kw"]
        assert held_reason({**row, "power_limit_kw": limit}) is None, row


def test_chaos_knobs_do_not_change_the_valid_events_or_the_truth(plan, calm):
    """Bad events, duplicates and reordering only add or move messages; the truth stays the same."""
    valid = [m for m in plan.messages if m.expected is None]
    assert set(valid) == set(calm.messages)
    assert plan.truth.by_session == calm.truth.by_session
    assert plan.truth.downtime == calm.truth.downtime
    assert plan.truth.valid_events == calm.truth.valid_events == len(calm.messages)


def test_same_seed_same_plan_other_seed_other_plan():
    """A plan is byte-identical for the same seed and knobs, and differs for another seed."""
    first = plan_drain(seed=3, **SMALL, **CHAOS)
    again = plan_drain(seed=3, **SMALL, **CHAOS)
    other = plan_drain(seed=4, **SMALL, **CHAOS)
    assert first.messages == again.messages
    assert first.truth.to_json() == again.truth.to_json()
    assert [m.value for m in first.messages] != [m.value for m in other.messages]
    assert first.truth.station_ids != other.truth.station_ids


def test_all_timestamps_lie_within_the_window(plan):
    """No valid event is stamped before `start` or after `end`; stations boot at `start`."""
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in payloads(plan.messages)]
    assert min(stamps) == START and max(stamps) <= END
    boots = [e for e in payloads(plan.messages) if e["event_type"] == "station_boot"]
    assert len({e["station_id"] for e in boots}) == SMALL["stations"]
    assert all(datetime.fromisoformat(e["timestamp"]) == START for e in boots)


def test_meters_never_run_backwards_on_a_connector(calm):
    """Within a session meters stay in [meter_start, meter_stop]; across sessions the register only grows."""
    for spans in session_spans(payloads(calm.messages)).values():
        previous_stop = 0
        for _, _, meter_start, meter_stop, progress in spans:
            assert meter_start >= previous_stop
            assert all(meter_start <= m <= meter_stop for m in progress)
            assert progress == sorted(progress)
            previous_stop = meter_stop


def test_sessions_never_overlap_on_a_connector_nor_run_while_it_is_faulted():
    """One session at a time per connector, none between a Faulted status and the recovery."""
    plan = plan_drain(seed=11, stations=30, sessions=800, start=START, end=START + timedelta(days=2))
    events = payloads(plan.messages)
    faults = defaultdict(list)
    for e in sorted(events, key=lambda e: e["timestamp"]):
        if e["event_type"] == "station_status" and e["connector_id"]:
            key = (e["station_id"], e["connector_id"])
            if e["status"] == "Faulted":
                assert e["error_code"] != "NoError"
                faults[key].append([e["timestamp"], None])
            elif faults[key] and faults[key][-1][1] is None:
                assert e["status"] == "Available"
                faults[key][-1][1] = e["timestamp"]
    assert faults, "a two-day window should show some faults"
    for key, spans in session_spans(events).items():
        for (_, end, *_), (begin, *_) in zip(spans, spans[1:]):
            assert end < begin
        for fault_start, fault_end in faults.get(key, ()):
            assert all(end < fault_start or start > fault_end for start, end, *_ in spans)


def test_a_window_too_short_shortens_sessions_instead_of_dropping_them():
    """2000 sessions on 5 stations in 2 h all happen, inside the window."""
    end = START + timedelta(hours=2)
    plan = plan_drain(seed=5, stations=5, sessions=2000, start=START, end=end)
    assert plan.truth.sessions == 2000
    assert max(datetime.fromisoformat(e["timestamp"]) for e in payloads(plan.messages)) <= end
    assert len(wire_events(plan.messages, end)) == plan.truth.valid_events


def test_duplicates_resend_same_bytes_later_within_the_station(calm):
    """duplicate_ratio resends about that share of messages, each after its original, same key."""
    plan = plan_drain(seed=7, **SMALL, duplicate_ratio=0.3)
    assert plan.truth.duplicates == len(plan.messages) - len(calm.messages)
    assert 0.25 < plan.truth.duplicates / len(calm.messages) < 0.35
    first_at: dict[bytes, int] = {}
    spread = 0
    for i, message in enumerate(plan.messages):
        if message.value not in first_at:
            first_at[message.value] = i
            continue
        between = plan.messages[first_at[message.value] + 1 : i]
        spread += any(m.key == message.key for m in between)
    # dropping every repeat gives back the calm plan, order included: copies only come later
    assert [plan.messages[i] for i in sorted(first_at.values())] == calm.messages
    assert spread > plan.truth.duplicates / 2  # copies land at random later places, not just next


def test_reorder_permutes_each_session_within_its_own_positions(calm):
    """reorder moves only session_* events, among their session's positions; some complete before start."""
    plan = plan_drain(seed=7, **SMALL, reorder=True)
    assert sorted(m.value for m in plan.messages) == sorted(m.value for m in calm.messages)
    completed_first = 0
    positions = defaultdict(lambda: ([], []))
    for side, messages in ((0, calm.messages), (1, plan.messages)):
        seen_started = set()
        for i, message in enumerate(messages):
            event = json.loads(message.value)
            if "session_id" not in event:
                assert plan.messages[i] == calm.messages[i]
                continue
            positions[event["session_id"]][side].append(i)
            if event["event_type"] == "session_started":
                seen_started.add(event["session_id"])
            if side and event["event_type"] == "session_completed" and event["session_id"] not in seen_started:
                completed_first += 1
    assert all(before == after for before, after in positions.values())
    assert completed_first > 0


def test_fleet_is_realistic():
    """Station ids like DE-BER-0007, real coordinates, power classes with their prices and connectors."""
    boots = [e for e in payloads(plan_drain(seed=2, stations=200, sessions=0, start=START, end=END).messages)
             if e["event_type"] == "station_boot"]
    assert len({e["station_id"] for e in boots}) == 200
    classes = Counter(e["max_power_kw"] for e in boots)
    assert set(classes) == {11.0, 22.0, 50.0, 150.0, 350.0}
    assert classes[11.0] + classes[22.0] > classes[50.0] + classes[150.0] + classes[350.0]
    price_range = {11.0: (0.39, 0.49), 22.0: (0.39, 0.49), 50.0: (0.54, 0.64), 150.0: (0.64, 0.74),
                   350.0: (0.74, 0.84)}
    for e in boots:
        assert re.fullmatch(r"[A-Z]{2}-[A-Z]{3}-\d{4}", e["station_id"])
        assert 35 < e["latitude"] < 62 and -10 < e["longitude"] < 26
        low, high = price_range[e["max_power_kw"]]
        assert low <= e["price_eur_per_kwh"] <= high and round(e["price_eur_per_kwh"], 2) == e["price_eur_per_kwh"]
        assert e["connector_count"] == 2 if e["max_power_kw"] < 50 else 1 <= e["connector_count"] <= 4
        assert e["vendor"] and e["model"] and e["firmware_version"]


def test_some_stations_go_silent_and_heartbeats_are_regular():
    """A few stations stop sending mid-window; the rest heartbeat every interval to the end."""
    end = START + timedelta(days=1)
    events = payloads(plan_drain(seed=9, stations=100, sessions=500, start=START, end=end).messages)
    last = defaultdict(lambda: START)
    for e in events:
        last[e["station_id"]] = max(last[e["station_id"]], datetime.fromisoformat(e["timestamp"]))
    silent = [s for s, t in last.items() if t < end - timedelta(minutes=16)]
    assert 1 <= len(silent) <= 6
    beats = [e for e in events if e.get("heartbeat")]
    assert all(e["connector_id"] == 0 and e["status"] == "Available" for e in beats)
    assert len(beats) > 90 * 24 * 4 - 200


def test_default_window_is_today_or_the_last_two_hours():
    """Today from 00:00 UTC to now, or the last two hours early in the day."""
    noon = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    assert default_window(noon) == (datetime(2024, 5, 1, tzinfo=timezone.utc), noon)
    early = datetime(2024, 5, 1, 1, 15, tzinfo=timezone.utc)
    assert default_window(early) == (early - timedelta(hours=2), early)


def test_ground_truth_round_trips_through_json_with_exact_decimals(plan, tmp_path):
    """write then load gives the same counts and the same Decimals."""
    path = tmp_path / "truth.json"
    plan.truth.write(path)
    loaded = GroundTruth.load(path)
    assert loaded.by_session == plan.truth.by_session
    assert (loaded.energy_kwh, loaded.cost_eur) == (plan.truth.energy_kwh, plan.truth.cost_eur)
    assert isinstance(loaded.energy_kwh, Decimal)
    raw = json.loads(path.read_text(), parse_float=Decimal)
    assert raw["energy_kwh"] == plan.truth.energy_kwh and raw["cost_eur"] == plan.truth.cost_eur
    assert set(raw) >= {"seed", "stations", "station_ids", "sessions", "energy_kwh", "cost_eur", "valid_events",
                        "messages", "duplicates", "bad_events", "deadletters", "window", "by_session", "downtime"}
    assert loaded.downtime == plan.truth.downtime
    assert loaded.to_json() == plan.truth.to_json()


def test_the_demos_plan_fits_2000_sessions_on_50_stations_in_a_day():
    """The demo's and benchmark's plan (2000 sessions, 50 stations, a day) schedules every session."""
    plan = plan_drain(stations=50, sessions=2000, seed=1, start=START, end=START + timedelta(days=1))
    assert plan.truth.sessions == 2000


class FakeFuture:
    def __init__(self, error=None):
        self.error = error

    def add_errback(self, errback):
        if self.error is not None:
            errback(self.error)
        return self


class FakeProducer:
    """Records what it is asked to send; optionally fails the n-th delivery."""

    def __init__(self, fail_at=None):
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = 0
        self.fail_at = fail_at

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, value))
        return FakeFuture(RuntimeError("broker gone") if len(self.sent) == self.fail_at else None)

    def flush(self):
        self.flushed += 1


def test_send_passes_topic_key_value_flushes_and_reports_progress(calm):
    """send() hands each message over unchanged, flushes once, and reports the running count."""
    producer, progress = FakeProducer(), []
    assert send(calm.messages, producer, on_progress=progress.append) == len(calm.messages)
    assert producer.sent == [(m.topic, m.key, m.value) for m in calm.messages]
    assert producer.flushed == 1
    assert progress[-1] == len(calm.messages) and progress == sorted(progress)


def test_send_raises_when_a_delivery_fails():
    """A failed delivery surfaces as TransientError, not silence."""
    with pytest.raises(TransientError):
        send([Message("ev.session.started", b"k", b"{}")] * 5, FakeProducer(fail_at=3))


class FakeClock:
    def __init__(self, at: datetime):
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def wait(self, timeout_s: float) -> bool:
        self.now += timeout_s
        return False


def check_live_truth(producer: FakeProducer, truth: GroundTruth, received_at: datetime) -> None:
    messages = [Message(t, k, v) for t, k, v in producer.sent]
    events = wire_events(messages, received_at)
    fold = fold_columns(events.values())
    assert truth.valid_events == truth.messages == len(producer.sent) == len(events)
    assert set(fold.sessions) == set(truth.by_session)
    for session_id, row in fold.sessions.items():
        assert row["end_time"] is not None and row["stop_reason"]
        limit = fold.stations[row["station_id"]]["max_power_kw"]
        assert held_reason({**row, "power_limit_kw": limit}) is None, row
        assert session_money(row) == (
            truth.by_session[session_id]["energy_kwh"], truth.by_session[session_id]["cost_eur"])


def test_run_live_on_a_fake_clock_sends_a_consistent_day():
    """At speed 600, half a fake minute of 20 stations (5 h): sessions, and a truth equal to the fold."""
    clock, producer = FakeClock(datetime(2024, 5, 1, 6, tzinfo=timezone.utc)), FakeProducer()
    truth = run_live(producer, stations=20, seed=1, speed=600, stop=threading.Event(), duration_s=30,
                     clock=clock, wait=clock.wait)
    assert truth.sessions > 50 and truth.stations == 20
    check_live_truth(producer, truth, datetime.fromtimestamp(clock.now, tz=timezone.utc))
    kinds = Counter(json.loads(v)["event_type"] for _, _, v in producer.sent)
    assert kinds["station_boot"] == 20 and kinds["session_progress"] > kinds["session_started"]
    order = [json.loads(v)["event_type"] for _, _, v in producer.sent]
    assert max(i for i, kind in enumerate(order) if kind == "station_boot") < order.index("session_started")


def test_run_live_charges_at_physical_power_on_the_wall_clock():
    """At speed 600 a session is 600 times shorter on the clock, and so is its energy: no session
    delivers more than its station's max power over its stamped duration (invariant 5 holds it
    otherwise), to the second of timestamp rounding, without the pipeline's minute of grace."""
    clock, producer = FakeClock(datetime(2024, 5, 1, 8, tzinfo=timezone.utc)), FakeProducer()
    truth = run_live(producer, stations=20, seed=4, speed=600, stop=threading.Event(), duration_s=20,
                     clock=clock, wait=clock.wait)
    fold = fold_columns(wire_events([Message(t, k, v) for t, k, v in producer.sent],
                                    datetime.fromtimestamp(clock.now, tz=timezone.utc)).values())
    assert truth.sessions > 20 and set(fold.sessions) == set(truth.by_session)
    for row in fold.sessions.values():
        limit_kw = fold.stations[row["station_id"]]["max_power_kw"]
        seconds = (row["last_event_at"] - row["start_time"]).total_seconds()
        assert (row["meter_max_wh"] - row["meter_start_wh"]) * 3600 <= limit_kw * 1000 * (seconds + 1), row
        assert held_reason({**row, "power_limit_kw": limit_kw}) is None, row
    assert truth.energy_kwh > 0


def test_run_live_stops_on_the_event_and_completes_sessions_in_flight():
    """Setting `stop` ends the run; every started session is completed (Local) before returning."""
    clock, producer, stop = FakeClock(datetime(2024, 5, 1, 17, tzinfo=timezone.utc)), FakeProducer(), threading.Event()

    def on_event(message: Message) -> None:
        if message.topic == "ev.session.progress" and len(producer.sent) > 300:
            stop.set()

    truth = run_live(producer, stations=10, seed=2, speed=120, stop=stop, clock=clock, wait=clock.wait,
                     on_event=on_event)
    assert stop.is_set() and truth.sessions > 0
    check_live_truth(producer, truth, datetime.fromtimestamp(clock.now, tz=timezone.utc))
    reasons = [json.loads(v).get("stop_reason") for t, _, v in producer.sent if t == "ev.session.completed"]
    assert "Local" in reasons


def test_run_live_on_the_real_clock_stamps_real_time():
    """With the wall clock, a short fast run stamps events with the real time and its truth holds."""
    producer, began = FakeProducer(), datetime.now(timezone.utc)
    truth = run_live(producer, stations=8, seed=3, speed=3600, stop=threading.Event(), duration_s=0.3)
    ended = datetime.now(timezone.utc)
    check_live_truth(producer, truth, ended)
    stamps = [datetime.fromisoformat(json.loads(v)["timestamp"]) for _, _, v in producer.sent]
    assert began - timedelta(milliseconds=1) <= min(stamps) <= max(stamps) <= ended


def test_two_runs_of_one_seed_share_the_day_but_no_id(calm):
    """A run id keeps the fleet, timestamps, meters and totals of the seed but mints other ids."""
    other = plan_drain(seed=7, **SMALL, run_id="run-b")
    again = plan_drain(seed=7, **SMALL, run_id="run-b")
    assert [m.value for m in again.messages] == [m.value for m in other.messages]  # a run repeats exactly

    def strip_ids(p):
        return [{k: v for k, v in e.items() if k not in ("event_id", "session_id")} for e in payloads(p.messages)]

    assert strip_ids(other) == strip_ids(calm)
    ids = {e["event_id"] for e in payloads(calm.messages)} | set(calm.truth.by_session)
    other_ids = {e["event_id"] for e in payloads(other.messages)} | set(other.truth.by_session)
    assert ids.isdisjoint(other_ids)
    assert (other.truth.energy_kwh, other.truth.cost_eur) == (calm.truth.energy_kwh, calm.truth.cost_eur)
    assert other.truth.run_id == "run-b" and GroundTruth.from_json(other.truth.to_json()).run_id == "run-b"
