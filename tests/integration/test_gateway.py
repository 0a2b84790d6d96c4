"""The OCPP 1.6J gateway on real Kafka (tansu) and PostgreSQL, with `ocpp` library chargers."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode as OcppErrorCode
from ocpp.v16.enums import ChargePointStatus as OcppStatus
from ocpp.v16.enums import Measurand, Reason, UnitOfMeasure
from websockets.exceptions import InvalidStatus

from evmonitor.contract import ChargePointStatus, EventType, decode
from evmonitor.gateway.mapping import session_id
from evmonitor.gateway.registry import Registry
from evmonitor.names import Topic
from tests.integration.ocpp_charger import (
    charger,
    kafka_behind_proxy,
    deadletters_of,
    events_of,
    ocpp_time,
    profile,
    raw_call,
    raw_charger,
    read_topics,
    running_gateway,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def register(pipeline: Any, charger_id: str, password: str | None = None, **overrides: Any) -> None:
    registry = Registry.connect(pipeline.settings.sqlalchemy_url)
    try:
        registry.add(profile(charger_id, **overrides), password)
    finally:
        registry.close()


def meter(at: datetime, value: str, unit: str | None = None, **extra: Any) -> dict[str, Any]:
    sample: dict[str, Any] = {"value": value, **extra}
    if unit is not None:
        sample["unit"] = unit
    return {"timestamp": ocpp_time(at), "sampled_value": [sample]}


def test_a_whole_session_ends_as_the_contract_events_in_kafka(pipeline):
    """Boot, status, heartbeat, start, meter values in Wh/kWh/no unit, stop: each the right event."""
    register(pipeline, "CP-1", password="s3cret-pw", price_eur_per_kwh=0.49)

    async def scenario() -> int:
        async with running_gateway(pipeline.settings) as gateway, charger(gateway.port, "CP-1", password="s3cret-pw") as cp:
            boot = await cp.call(call.BootNotification(charge_point_model="Terra 54", charge_point_vendor="ABB",
                                                       firmware_version="1.8.2"))  # fmt: skip
            assert boot.status == "Accepted" and boot.interval == 60
            await cp.call(call.StatusNotification(connector_id=0, error_code=OcppErrorCode.no_error,
                                                  status=OcppStatus.available))  # fmt: skip
            await cp.call(call.Heartbeat())
            await cp.call(call.Authorize(id_tag="RFID-SECRET-42"))
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID-SECRET-42", meter_start=1000,
                                                        timestamp=ocpp_time(NOW - timedelta(minutes=30))))  # fmt: skip
            tx = start.transaction_id
            assert 0 < tx < 2**31 and start.id_tag_info["status"] == "Accepted"
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                meter(NOW - timedelta(minutes=20), "6000", "Wh"),
                meter(NOW - timedelta(minutes=10), "11.5", "kWh"),
                {"timestamp": ocpp_time(NOW - timedelta(minutes=5)), "sampled_value": [
                    {"value": "15000"},
                    {"value": "22.5", "measurand": Measurand.power_active_import, "unit": UnitOfMeasure.kw},
                    {"value": "80", "measurand": Measurand.soc, "unit": UnitOfMeasure.percent},
                ]},
            ]))  # fmt: skip
            await cp.call(call.StopTransaction(meter_stop=16000, timestamp=ocpp_time(NOW), transaction_id=tx,
                                               reason=Reason.ev_disconnected))  # fmt: skip
            answer = await cp.call(call.DataTransfer(vendor_id="com.example", message_id="x"))
            assert answer.status == "UnknownVendorId"
            return tx

    tx = asyncio.run(scenario())
    records = read_topics(pipeline.settings.kafka_bootstrap, until=lambda r: len(r) >= 9)
    assert not any(b"RFID-SECRET-42" in r.value for r in records)  # not even Kafka holds the tag in clear
    events = events_of(records)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["event_type"], []).append(event)
    sid = session_id("CP-1", tx)

    (boot,) = by_type["station_boot"]
    assert (boot["name"], boot["operator"], boot["city"], boot["max_power_kw"], boot["connector_count"]) == (
        "Charger CP-1", "Stadtwerke", "Berlin", 150.0, 2)  # fmt: skip
    assert (boot["price_eur_per_kwh"], boot["vendor"], boot["model"], boot["firmware_version"]) == (
        0.49, "ABB", "Terra 54", "1.8.2")  # fmt: skip
    statuses = by_type["station_status"]
    assert [(s["connector_id"], s["status"], s.get("heartbeat")) for s in statuses[:2]] == [
        (0, ChargePointStatus.AVAILABLE, None), (0, ChargePointStatus.AVAILABLE, True)]  # fmt: skip
    # the closed connection: the station goes offline at once
    assert statuses[-1]["status"] == ChargePointStatus.UNAVAILABLE and statuses[-1]["info"].startswith("connection_closed: ")
    (started,) = by_type["session_started"]
    assert (started["session_id"], started["connector_id"], started["meter_start_wh"], started["price_eur_per_kwh"]) == (
        sid, 1, 1000, 0.49)  # fmt: skip
    progress = by_type["session_progress"]
    assert [(p["meter_wh"], p["power_kw"]) for p in progress] == [(6000, 0.0), (11500, 0.0), (15000, 22.5)]
    assert progress[-1]["soc_percent"] == 80.0 and {p["session_id"] for p in progress} == {sid}
    (completed,) = by_type["session_completed"]
    assert (completed["meter_stop_wh"], completed["stop_reason"], completed["connector_id"]) == (16000, "EVDisconnected", 1)
    for event in events:  # every event passes the contract as the bridge will see it
        decode(json.dumps(event).encode(), received_at=datetime.now(timezone.utc))  # the gateway stamps some events on receipt
    assert "RFID-SECRET-42" not in pipeline.sql("SELECT string_agg(id_tag_hash, ',') AS tags FROM gateway_transactions")[0].tags
    assert "s3cret-pw" not in pipeline.sql("SELECT password_hash FROM gateway_chargers")[0].password_hash


def test_a_retried_start_gets_the_same_transaction_and_a_duplicate_message_is_the_same_event(pipeline):
    """Identical StartTransaction -> same id; a resent MeterValues or StatusNotification -> same event_id."""
    register(pipeline, "CP-2")
    start = call.StartTransaction(connector_id=2, id_tag="TAG-7", meter_start=500, timestamp=ocpp_time(NOW - timedelta(minutes=9)))

    async def scenario() -> tuple[int, int, int]:
        async with running_gateway(pipeline.settings) as gateway:
            async with charger(gateway.port, "CP-2") as cp:
                first = (await cp.call(start)).transaction_id
                again = (await cp.call(start)).transaction_id
                other = (await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-7", meter_start=500,
                                                             timestamp=start.timestamp))).transaction_id  # fmt: skip
                reading = call.MeterValues(connector_id=2, transaction_id=first, meter_value=[meter(NOW - timedelta(minutes=5), "900")])
                status = call.StatusNotification(connector_id=2, error_code=OcppErrorCode.no_error,
                                                 status=OcppStatus.charging, timestamp=ocpp_time(NOW - timedelta(minutes=8)))  # fmt: skip
                for _ in range(2):
                    await cp.call(reading)
                    await cp.call(status)
            # a reconnect, then the same message again: still the same transaction
            async with charger(gateway.port, "CP-2") as cp:
                after_reconnect = (await cp.call(start)).transaction_id
            return first, again, other, after_reconnect

    first, again, other, after_reconnect = asyncio.run(scenario())
    assert first == again == after_reconnect and other != first
    events = events_of(read_topics(pipeline.settings.kafka_bootstrap, until=lambda r: len(r) >= 10))
    started = [e for e in events if e["event_type"] == EventType.SESSION_STARTED and e["connector_id"] == 2]
    assert len(started) == 3 and len({e["event_id"] for e in started}) == 1
    progress = [e for e in events if e["event_type"] == EventType.SESSION_PROGRESS]
    assert len(progress) == 2 and len({e["event_id"] for e in progress}) == 1
    charging = [e for e in events if e["event_type"] == EventType.STATION_STATUS and e["status"] == ChargePointStatus.CHARGING]
    assert len(charging) == 2 and len({e["event_id"] for e in charging}) == 1


def test_unknown_id_wrong_or_missing_password_and_no_subprotocol_are_refused_with_nothing_in_kafka(pipeline):
    """404 for an unregistered id, 401 for a wrong or missing password, and not a record in Kafka."""
    register(pipeline, "CP-3", password="right")

    async def scenario() -> dict[str, int]:
        statuses = {}
        async with running_gateway(pipeline.settings) as gateway:
            for name, charger_id, password, protocols in (
                ("unknown", "CP-NOPE", None, ("ocpp1.6",)),
                ("wrong", "CP-3", "wrong", ("ocpp1.6",)),
                ("missing", "CP-3", None, ("ocpp1.6",)),
            ):
                with pytest.raises(InvalidStatus) as refused:
                    async with charger(gateway.port, charger_id, password=password, subprotocols=protocols):
                        pass
                statuses[name] = refused.value.response.status_code
            with pytest.raises(Exception):  # no subprotocol offered: refused in the handshake
                async with charger(gateway.port, "CP-3", password="right", subprotocols=()):
                    pass
            async with charger(gateway.port, "CP-3", password="right") as cp:
                await cp.call(call.Heartbeat())
        return statuses

    assert asyncio.run(scenario()) == {"unknown": 404, "wrong": 401, "missing": 401}
    events = events_of(read_topics(pipeline.settings.kafka_bootstrap, until=lambda r: len(r) >= 2))
    # only the authenticated charger's heartbeat and its going offline
    assert {e["station_id"] for e in events} == {"CP-3"} and len(events) == 2


def test_lenient_frames_are_read_unreadable_ones_dead_lettered_and_unknown_actions_refused(pipeline):
    """Numbers for strings and odd-case units are read; an unreadable reading is a dead letter with the frame."""
    register(pipeline, "CP-4")

    async def scenario() -> list[list[Any]]:
        async with running_gateway(pipeline.settings) as gateway, raw_charger(gateway.port, "CP-4") as ws:
            start = await raw_call(ws, "StartTransaction", {"connectorId": "1", "idTag": "T", "meterStart": 100.0,
                                                            "timestamp": ocpp_time(NOW - timedelta(minutes=3))})  # fmt: skip
            tx = start[2]["transactionId"]
            answers = [start]
            answers.append(await raw_call(ws, "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
                {"timestamp": ocpp_time(NOW - timedelta(minutes=2)), "sampledValue": [{"value": 1.25, "unit": "KWH"}]},
                {"timestamp": ocpp_time(NOW - timedelta(minutes=1)), "sampledValue": [{"value": "lots", "unit": "Wh"}]},
            ]}))  # fmt: skip
            answers.append(await raw_call(ws, "GetConfiguration", {}))
            answers.append(await raw_call(ws, "NoSuchAction", {}))
            answers.append(await raw_call(ws, "StopTransaction", {"transactionId": 999999, "meterStop": 1,
                                                                  "timestamp": ocpp_time(NOW)}))  # fmt: skip
            await ws.send("this is not OCPP")
            answers.append(await raw_call(ws, "Heartbeat", {}))  # still served
            return answers

    start, meter_values, get_configuration, unknown, stop, heartbeat = asyncio.run(scenario())
    assert start[0] == 3 and meter_values == [3, meter_values[1], {}]
    assert get_configuration[2] == "NotImplemented" and unknown[2] == "NotSupported"
    assert stop[0] == 3 and heartbeat[0] == 3
    records = read_topics(pipeline.settings.kafka_bootstrap, until=lambda r: len(deadletters_of(r)) >= 2)
    progress = [e for e in events_of(records) if e["event_type"] == EventType.SESSION_PROGRESS]
    assert [p["meter_wh"] for p in progress] == [1250]
    dead = deadletters_of(records)
    assert sorted(d["reason"] for d in dead) == ["invalid_value", "invalid_value"]
    assert all(d["stage"] == "gateway" and d["source"]["key"] == "CP-4" and "CP-4" in d["detail"] for d in dead)
    assert any("lots" in base64.b64decode(d["original_b64"]).decode() for d in dead)
    assert [r.topic for r in records if r.topic == Topic.DEADLETTER] == [Topic.DEADLETTER] * 2


def test_two_hundred_concurrent_chargers_each_run_a_session(pipeline):
    """200 chargers connected at once, each boot/start/meter values/stop: every answer and every event, fast."""
    registry = Registry.connect(pipeline.settings.sqlalchemy_url)
    try:
        for n in range(200):
            registry.add(profile(f"FLEET-{n:03d}"))
    finally:
        registry.close()

    async def one(port: int, n: int) -> int:
        charger_id = f"FLEET-{n:03d}"
        async with charger(port, charger_id) as cp:
            await cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag=f"T{n}", meter_start=n,
                                                      timestamp=ocpp_time(NOW - timedelta(minutes=5))))).transaction_id  # fmt: skip
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[meter(NOW - timedelta(minutes=2), str(n + 500))]))
            await cp.call(call.StopTransaction(meter_stop=n + 1000, timestamp=ocpp_time(NOW), transaction_id=tx))
            return tx

    async def scenario() -> tuple[list[int], float]:
        async with running_gateway(pipeline.settings) as gateway:
            began = asyncio.get_running_loop().time()
            txs = await asyncio.wait_for(asyncio.gather(*(one(gateway.port, n) for n in range(200))), timeout=120)
            return txs, asyncio.get_running_loop().time() - began

    txs, elapsed_s = asyncio.run(scenario())
    assert len(set(txs)) == 200 and elapsed_s < 60  # measured: 4.4 s on a shared 2-core machine
    completed = lambda r: sum(e["event_type"] == EventType.SESSION_COMPLETED for e in events_of(r)) >= 200  # noqa: E731
    events = events_of(read_topics(pipeline.settings.kafka_bootstrap, until=completed, timeout_s=60))
    counts: dict[str, int] = {}
    for event in events:
        counts[event["event_type"]] = counts.get(event["event_type"], 0) + 1
    # 200 boots + 200 "offline" statuses when the chargers hang up
    assert counts == {"station_boot": 200, "session_started": 200, "session_progress": 200, "session_completed": 200,
                      "station_status": 200}  # fmt: skip
    stops = {e["station_id"]: e["meter_stop_wh"] for e in events if e["event_type"] == EventType.SESSION_COMPLETED}
    assert stops == {f"FLEET-{n:03d}": n + 1000 for n in range(200)}
    print(f"200 chargers, 4 calls each: {elapsed_s:.1f}s")


@pytest.fixture
def proxied_kafka(tmp_path):
    """A fresh tansu reached only through a FaultProxy."""
    with kafka_behind_proxy(tmp_path) as proxy:
        yield proxy


def test_kafka_cut_off_during_stop_transaction_gets_no_callresult_until_restored_then_one_session(pipeline, proxied_kafka):
    """While Kafka is unreachable StopTransaction gets CALLERROR InternalError; once back, one CALLRESULT, one session."""
    from ocpp.exceptions import InternalError

    from evmonitor.fold import fold_columns

    register(pipeline, "CP-CUT")
    settings = pipeline.settings.model_copy(update={"kafka_bootstrap": proxied_kafka.address})
    stop = call.StopTransaction(meter_stop=4_200, timestamp=ocpp_time(NOW), transaction_id=0, reason=Reason.local)

    async def scenario() -> tuple[list[str], int]:
        async with running_gateway(settings, publish_timeout_s=2.0) as gateway, charger(gateway.port, "CP-CUT") as cp:
            tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=1_000,
                                                      timestamp=ocpp_time(NOW - timedelta(minutes=20))))).transaction_id  # fmt: skip
            stop.transaction_id = tx
            proxied_kafka.cut()
            outcomes: list[str] = []
            deadline = asyncio.get_running_loop().time() + 60
            # the charger keeps the message and retries it, as OCPP requires
            while outcomes[-1:] != ["result"] and asyncio.get_running_loop().time() < deadline:
                if len(outcomes) == 3:
                    proxied_kafka.restore()
                try:
                    await cp.call(stop, suppress=False)
                    outcomes.append("result")
                except InternalError:
                    outcomes.append("error")
            return outcomes, tx

    outcomes, tx = asyncio.run(scenario())
    assert outcomes[:3] == ["error"] * 3 and outcomes[-1] == "result" and "result" not in outcomes[:-1]
    completed = lambda r: any(e["event_type"] == EventType.SESSION_COMPLETED for e in events_of(r))  # noqa: E731
    events = events_of(read_topics(settings.kafka_bootstrap, until=completed))
    assert len({e["event_id"] for e in events if e["event_type"] == EventType.SESSION_COMPLETED}) == 1
    folded = fold_columns([decode(json.dumps(e).encode(), received_at=datetime.now(timezone.utc)).to_wire() for e in events])
    (session,) = folded.sessions.values()
    assert (session["id"], session["meter_start_wh"], session["meter_stop_wh"]) == (session_id("CP-CUT", tx), 1_000, 4_200)
