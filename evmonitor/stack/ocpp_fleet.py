"""The simulated fleet as OCPP 1.6J chargers: the same planned day, sent through the gateway.

`to_call` is pure: one planned event -> the OCPP request a charger would send for it. The
driver registers every station with the gateway's registry, connects one `ocpp` library
charger per station to `ws://<EVMON_OCPP_LISTEN>/ocpp/<station_id>`, and sends each station's
events in time order, as a charger does. A charger keeps a message until it is answered: on a
CALLERROR or a dropped connection it reconnects and sends the same message again.

The ground truth is the plan's, re-keyed by the session ids the gateway derives from the
transaction ids it minted, and counting the events the gateway makes of the calls: one per
distinct answered call (a resent message is the same event), one per closed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from ocpp.exceptions import OCPPError
from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from evmonitor.config import Settings
from evmonitor.contract import EventType
from evmonitor.gateway.mapping import ChargerProfile, session_id
from evmonitor.gateway.registry import Registry
from evmonitor.names import EVENT_TOPICS
from evmonitor.simulator.plan import Plan, default_window, plan_drain
from evmonitor.simulator.truth import GroundTruth, iso_window
from evmonitor.stack.reconcile import SentOffsets
from evmonitor.storage.kafka import ensure_topics

__all__ = ["OcppDrain", "OcppRun", "drive_fleet", "highwaters", "profile_of", "run_drain_ocpp", "to_call"]

# kWh, Wh and no unit in turn: the gateway must read all three to the same register
_ENERGY_UNITS = ("Wh", "kWh", None)


def profile_of(boot: dict[str, Any]) -> ChargerProfile:
    """A station's registration, from its planned `station_boot`."""
    return ChargerProfile(boot["station_id"], boot["name"], boot["operator"], boot["city"], boot["latitude"],
                          boot["longitude"], boot["max_power_kw"], boot["connector_count"], boot["price_eur_per_kwh"])  # fmt: skip


def _energy(meter_wh: int, index: int) -> dict[str, Any]:
    unit = _ENERGY_UNITS[index % len(_ENERGY_UNITS)]
    if unit == "kWh":
        return {"value": f"{meter_wh / 1000:.3f}", "measurand": "Energy.Active.Import.Register", "unit": unit}
    if unit is None:  # no measurand and no unit: OCPP's default, the register in Wh
        return {"value": str(meter_wh)}
    return {"value": str(meter_wh), "measurand": "Energy.Active.Import.Register", "unit": unit}


def to_call(event: dict[str, Any], transaction_id: int | None = None, index: int = 0) -> Any:
    """The OCPP 1.6 request for a planned event (`transaction_id` for session events but the start)."""
    kind = event["event_type"]
    if kind == EventType.STATION_BOOT:
        return call.BootNotification(charge_point_model=event["model"][:20], charge_point_vendor=event["vendor"][:20],
                                     firmware_version=event["firmware_version"][:50])  # fmt: skip
    if kind == EventType.STATION_STATUS:
        if event.get("heartbeat"):
            return call.Heartbeat()
        return call.StatusNotification(connector_id=event["connector_id"], error_code=event["error_code"],
                                       status=event["status"], timestamp=event["timestamp"],
                                       info=(event.get("info") or None) and event["info"][:50])  # fmt: skip
    if kind == EventType.SESSION_STARTED:
        return call.StartTransaction(connector_id=event["connector_id"], id_tag=event["id_tag"][:20],
                                     meter_start=event["meter_start_wh"], timestamp=event["timestamp"])  # fmt: skip
    if kind == EventType.SESSION_PROGRESS:
        samples = [
            _energy(event["meter_wh"], index),
            {"value": str(event["power_kw"]), "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": str(event["soc_percent"]), "measurand": "SoC", "unit": "Percent"},
            {"value": str(event["voltage_v"]), "measurand": "Voltage", "unit": "V"},
            {"value": str(event["current_a"]), "measurand": "Current.Import", "unit": "A"},
        ]
        return call.MeterValues(connector_id=event["connector_id"], transaction_id=transaction_id,
                                meter_value=[{"timestamp": event["timestamp"], "sampled_value": samples}])  # fmt: skip
    if kind == EventType.SESSION_COMPLETED:
        return call.StopTransaction(meter_stop=event["meter_stop_wh"], timestamp=event["timestamp"],
                                    transaction_id=transaction_id, reason=event["stop_reason"])  # fmt: skip
    raise ValueError(f"no OCPP request for {kind!r}")


def _resend_is_same_event(request: Any) -> bool:
    # messages that carry the station's time map to content-derived event ids; boots and
    # heartbeats are stamped on receipt, so a resent one is a new event
    return not isinstance(request, (call.BootNotification, call.Heartbeat))


@dataclass
class OcppRun:
    """What the fleet did: the transactions the gateway minted, and the events it must have made."""

    transactions: dict[str, int] = field(default_factory=dict)  # planned session id -> transaction id
    events: int = 0  # distinct events
    records: int = 0  # records published, resent messages included
    duplicates: int = 0  # messages sent twice on purpose (a charger's retry)
    reconnects: int = 0
    calls: int = 0


async def drive_fleet(
    url: str,
    plans: dict[str, list[dict[str, Any]]],
    *,
    duplicate_ratio: float = 0.0,
    seed: int = 0,
    deadline_s: float = 600.0,
    on_call: Callable[[int], None] | None = None,
) -> OcppRun:
    """Each station's planned events through the gateway at `url`, stations concurrently.

    `on_call(1)` after each planned event is answered (however often it was sent).
    """
    run = OcppRun()
    deadline = time.monotonic() + deadline_s
    await asyncio.gather(*(
        _station(url, station_id, events, run, random.Random(f"{seed}:ocpp:{station_id}"), duplicate_ratio, deadline, on_call)
        for station_id, events in plans.items()
    ))  # fmt: skip
    return run


class _Charger(ChargePoint):
    pass


async def _station(url: str, station_id: str, events: list[dict[str, Any]], run: OcppRun, rng: random.Random,
                   duplicate_ratio: float, deadline: float, on_call: Callable[[int], None] | None) -> None:  # fmt: skip
    transactions: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    readings = 0
    session = _Session(f"{url}/{station_id}", station_id, run, deadline)
    try:
        for event in events:
            kind = event["event_type"]
            tx = transactions.get(event.get("session_id", "")) if kind != EventType.SESSION_STARTED else None
            request = to_call(event, tx, readings)
            readings += kind == EventType.SESSION_PROGRESS
            sends = 2 if _resend_is_same_event(request) and rng.random() < duplicate_ratio else 1
            for _ in range(sends):
                answer = await session.call(request)
                run.records += 1
            run.duplicates += sends - 1
            key = (type(request).__name__, repr(request))
            if _resend_is_same_event(request):
                if key not in seen:
                    seen.add(key)
                    run.events += 1
            else:
                run.events += 1
            if kind == EventType.SESSION_STARTED:
                transactions[event["session_id"]] = answer.transaction_id
                run.transactions[event["session_id"]] = answer.transaction_id
            if on_call is not None:
                on_call(1)
    finally:
        await session.close()


class _Session:
    """One charger's connection, reopened whenever it drops; `call` returns only once answered."""

    def __init__(self, url: str, station_id: str, run: OcppRun, deadline: float) -> None:
        self.url, self.station_id, self.run, self.deadline = url, station_id, run, deadline
        self._ws: Any = None
        self._cp: _Charger | None = None
        self._task: asyncio.Task | None = None

    async def _open(self) -> _Charger:
        if self._cp is not None and self._ws.state.name == "OPEN":
            return self._cp
        await self.close()
        self._ws = await connect(self.url, subprotocols=["ocpp1.6"], open_timeout=20)  # type: ignore[list-item]
        self._cp = _Charger(self.station_id, self._ws, response_timeout=30)
        self._task = asyncio.create_task(self._cp.start())
        return self._cp

    async def call(self, request: Any) -> Any:
        delay = 0.1
        while True:
            try:
                cp = await self._open()
                self.run.calls += 1
                return await self._answer(cp, request)
            except (OCPPError, OSError, WebSocketException, asyncio.TimeoutError) as exc:
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 404):
                    raise  # not registered: retrying will not help
                if time.monotonic() > self.deadline:
                    raise TimeoutError(f"{self.station_id}: gave up resending {type(request).__name__}: {exc!r}") from exc
                if not isinstance(exc, OCPPError):
                    await self.close()
                    self.run.reconnects += 1
                await asyncio.sleep(delay)  # a charger's resend interval, growing while the gateway is away
                delay = min(delay * 2, 2.0)

    async def _answer(self, cp: _Charger, request: Any) -> Any:
        """The answer to `request`, or ConnectionError as soon as the connection drops (not after the 30 s timeout)."""
        assert self._task is not None
        pending = asyncio.ensure_future(cp.call(request, suppress=False))
        await asyncio.wait({pending, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if pending.done():
            return pending.result()
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pending
        raise ConnectionError(f"{self.station_id}: connection closed before the answer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._ws is not None:
            if self._ws.state.name == "OPEN":
                # we hang up on a live gateway: it reports the station going offline. A
                # connection that died with the gateway reported nothing.
                self.run.events += 1
                self.run.records += 1
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._ws = self._cp = self._task = None


def highwaters(bootstrap: str, topics: tuple[str, ...] = EVENT_TOPICS, timeout_s: float = 30.0) -> dict[tuple[str, int], int]:
    """Per partition of `topics`, the offset one past its last record (tansu: from fetches, not ListOffsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_end(*tps)  # a position at or before the end: the fetch then reports the highwater
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no highwater from Kafka for {topics} after {timeout_s}s")
            consumer.poll(timeout_ms=200, max_records=1)
            for tp in tps:
                if consumer.highwater(tp) is not None:
                    consumer.pause(tp)
        return {(tp.topic, tp.partition): consumer.highwater(tp) for tp in tps}
    finally:
        consumer.close(autocommit=False)


class OcppDrain:
    """A planned day run through the gateway, in steps a fault harness can interleave.

    `register` puts the fleet in the gateway's registry; `run` drives it (blocking; safe to call
    from another thread); `result` waits until Kafka holds every record the gateway made and
    returns the ground truth and the offsets to wait for. `heartbeats=False` leaves heartbeats
    out: a heartbeat whose answer is lost when the gateway dies may or may not have become an
    event, which a harness that kills the gateway cannot count exactly.
    """

    def __init__(self, settings: Settings, plan: Plan, *, start: datetime, duplicate_ratio: float = 0.0,
                 seed: int = 0, heartbeats: bool = True) -> None:  # fmt: skip
        self.settings, self.plan, self.start = settings, plan, start
        self.duplicate_ratio, self.seed = duplicate_ratio, seed
        self.events = [json.loads(m.value) for m in plan.messages]
        if not heartbeats:
            self.events = [e for e in self.events if not e.get("heartbeat")]
        self.by_station: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            self.by_station.setdefault(event["station_id"], []).append(event)
        self.answered = 0
        self.run_result: OcppRun | None = None
        self._before: dict[tuple[str, int], int] = {}

    @property
    def url(self) -> str:
        return f"ws://{self.settings.ocpp_listen}/ocpp"

    def register(self) -> None:
        registry = Registry.connect(self.settings.sqlalchemy_url, self.settings.sql_dir)
        try:
            for event in self.events:
                if event["event_type"] == EventType.STATION_BOOT:
                    registry.add(profile_of(event))
        finally:
            registry.close()
        ensure_topics(self.settings.kafka_bootstrap, self.settings.topic_partitions)
        self._before = highwaters(self.settings.kafka_bootstrap)

    def run(self, *, deadline_s: float = 1800.0, on_progress: Callable[[int, int], None] | None = None) -> OcppRun:
        def counted(n: int) -> None:
            self.answered += n
            if on_progress is not None:
                on_progress(self.answered, len(self.events))

        self.run_result = asyncio.run(drive_fleet(self.url, self.by_station, duplicate_ratio=self.duplicate_ratio,
                                                  seed=self.seed, deadline_s=deadline_s, on_call=counted))  # fmt: skip
        return self.run_result

    def result(self, timeout_s: float = 60.0) -> tuple[GroundTruth, SentOffsets]:
        run = self.run_result
        if run is None:
            raise RuntimeError("run() first")
        before = self._before
        # the last "offline" records are published as the gateway sees the connections close
        wanted = sum(before.values()) + run.records
        limit = time.monotonic() + timeout_s
        while sum((after := highwaters(self.settings.kafka_bootstrap)).values()) < wanted:
            if time.monotonic() > limit:
                raise TimeoutError(f"Kafka holds {sum(after.values()) - sum(before.values())} of the gateway's {run.records} records")
            time.sleep(0.2)  # polling another process's progress
        finished = datetime.now(timezone.utc)  # after the gateway stamped the last "offline"
        sent = SentOffsets()
        for tp, high in after.items():
            if high > before.get(tp, 0):
                sent.ranges[tp] = (before.get(tp, 0), high - 1)
        by_session = self.plan.truth.by_session
        truth = replace(
            self.plan.truth,
            by_session={session_id(t["station_id"], run.transactions[sid]): t for sid, t in by_session.items()},
            valid_events=run.events,
            messages=run.records,
            duplicates=run.duplicates,
            window=iso_window(self.start, finished),
        )
        return truth, sent


def run_drain_ocpp(
    settings: Settings,
    *,
    stations: int,
    sessions: int,
    seed: int,
    duplicate_ratio: float = 0.0,
    meter_interval_s: float = 300,
    now: datetime | None = None,
    say: Callable[[str], None] = print,
    on_progress: Callable[[int, int], None] | None = None,
    deadline_s: float = 1800.0,
) -> tuple[GroundTruth, SentOffsets]:
    """Plan a day of the fleet, register it, run it through the gateway; return (truth, offsets).

    The offsets span what the event topics gained during the run (the gateway's records, and
    anything another producer sent meanwhile), so waiting for them means the run is processed.
    """
    now = now or datetime.now(timezone.utc)
    start, end = default_window(now)
    plan = plan_drain(stations=stations, sessions=sessions, seed=seed, start=start, end=end,
                      meter_interval_s=meter_interval_s, now=now)  # fmt: skip
    drain = OcppDrain(settings, plan, start=start, duplicate_ratio=duplicate_ratio, seed=seed)
    drain.register()
    say(f"simulator: {stations} stations as OCPP chargers at {drain.url}/<id>, {sessions} sessions, "
        f"{len(drain.events)} messages")  # fmt: skip
    run = drain.run(deadline_s=deadline_s, on_progress=on_progress)
    truth, sent = drain.result()
    say(f"simulator: {run.calls} OCPP calls answered ({run.duplicates} resent on purpose, {run.reconnects} reconnects)")
    return truth, sent
