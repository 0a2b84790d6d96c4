"""`evmonitor gateway` and `evmonitor chargers` as processes, end to end into PostgreSQL and Elasticsearch."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import redis
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode as OcppErrorCode
from ocpp.v16.enums import ChargePointStatus as OcppStatus
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed, InvalidStatus

from evmonitor.gateway.mapping import session_id
from evmonitor.heartbeat import read_heartbeats
from evmonitor.stack.embedded import evmonitor_cmd
from evmonitor.stack.procs import free_port, wait_for
from tests.integration.ocpp_charger import Charger, charger, ocpp_time

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TAG, PASSWORD = "RFID-0xC0FFEE", "pw-Kq8!z"


def cli(pipeline: Any, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(evmonitor_cmd(*args), env=pipeline.env, capture_output=True, text=True, timeout=60)


def start_gateway(pipeline: Any, metrics_port: int = 0) -> int:
    port = free_port()
    pipeline.settings = pipeline.settings.model_copy(update={"ocpp_listen": f"127.0.0.1:{port}",
                                                             "gateway_metrics_port": metrics_port})  # fmt: skip
    before = pipeline.log("gateway").count("listening on")
    pipeline.start("gateway", "gateway")
    wait_for(lambda: pipeline.log("gateway").count("listening on") > before, timeout_s=30,
             what="the gateway to listen", hint=f"Logs: {pipeline.logs}")  # fmt: skip
    return port


def add_charger(pipeline: Any, charger_id: str, *extra: str) -> subprocess.CompletedProcess:
    done = cli(pipeline, "chargers", "add", charger_id, "--name", "Marktplatz", "--operator", "Stadtwerke",
               "--city", "Leipzig", "--lat", "51.34", "--lon", "12.37", "--max-power-kw", "50", "--connectors", "2",
               "--price", "0.39", *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def meter(at: datetime, value: str, unit: str | None = None) -> dict[str, Any]:
    sample = {"value": value, **({"unit": unit} if unit else {})}
    return {"timestamp": ocpp_time(at), "sampled_value": [sample]}


def test_a_charger_session_through_the_gateway_process_is_exact_in_postgresql_and_searchable(pipeline):
    """Retried start, Wh/kWh/no-unit readings, a reconnect mid-session: one session, exact kWh and EUR."""
    add_charger(pipeline, "CP-E2E", "--password", PASSWORD)
    listed = json.loads(cli(pipeline, "chargers", "list", "--json").stdout)
    assert [(c["id"], c["password"], c["price_eur_per_kwh"]) for c in listed] == [("CP-E2E", True, 0.39)]
    pipeline.start_workers()
    pipeline.start_bridge()
    port = start_gateway(pipeline)
    start = call.StartTransaction(connector_id=1, id_tag=TAG, meter_start=12_345,
                                  timestamp=ocpp_time(NOW - timedelta(minutes=40)))  # fmt: skip

    async def scenario() -> int:
        async with charger(port, "CP-E2E", password=PASSWORD) as cp:
            await cp.call(call.BootNotification(charge_point_model="AC22", charge_point_vendor="Keba"))
            await cp.call(call.StatusNotification(connector_id=1, error_code=OcppErrorCode.no_error, status=OcppStatus.charging))
            tx = (await cp.call(start)).transaction_id
            assert (await cp.call(start)).transaction_id == tx  # the charger retried: same transaction
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                meter(NOW - timedelta(minutes=30), "15000", "Wh"), meter(NOW - timedelta(minutes=20), "20.5", "kWh")]))
        # the connection drops mid-session; the charger comes back and carries on
        async with charger(port, "CP-E2E", password=PASSWORD) as cp:
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                meter(NOW - timedelta(minutes=20), "20.5", "kWh"), meter(NOW - timedelta(minutes=10), "25000")]))
            await cp.call(call.StopTransaction(meter_stop=27_890, timestamp=ocpp_time(NOW), transaction_id=tx, id_tag=TAG))
        return tx

    tx = asyncio.run(scenario())
    sid = session_id("CP-E2E", tx)

    def completed() -> bool:
        rows = pipeline.sql("SELECT status FROM charging_sessions WHERE id = :id", id=sid)
        return bool(rows) and rows[0].status == "completed"

    wait_for(completed, timeout_s=90, what="the session in PostgreSQL", hint=f"Logs: {pipeline.logs}")
    (session,) = pipeline.sql("SELECT * FROM charging_sessions")
    # (27890 - 12345) Wh = 15.545 kWh; 15.545 * 0.39 = 6.06255 -> 6.06 EUR
    assert (session.energy_delivered_kwh, session.cost_eur, session.connector_id) == (Decimal("15.545"), Decimal("6.06"), 1)
    assert session.id_tag_hash and TAG not in session.id_tag_hash
    (station,) = pipeline.sql("SELECT * FROM charging_stations")
    assert (station.id, station.name, station.city, station.vendor, station.model) == ("CP-E2E", "Marktplatz", "Leipzig", "Keba", "AC22")

    # boot, status, start, 3 readings, stop, and one "offline" per closed connection: each once
    search = pipeline.search()

    def indexed() -> bool:
        search.refresh()
        return search.count() == 9

    wait_for(indexed, timeout_s=60, what="9 documents in the index", hint=f"Logs: {pipeline.logs}")
    docs = pipeline.http("GET", "/charging-events*/_search?size=100")["hits"]["hits"]
    assert sum(d["_source"]["event_type"] == "session_progress" for d in docs) == 3
    everything = json.dumps(docs) + pipeline.log("gateway") + json.dumps(listed)
    everything += json.dumps([list(r) for r in pipeline.sql("SELECT * FROM gateway_chargers")], default=str)
    assert TAG not in everything and PASSWORD not in everything


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def gateway_heartbeats(pipeline: Any) -> list[dict]:
    client = redis.Redis.from_url(pipeline.settings.broker_url)
    try:
        return read_heartbeats(client, pipeline.settings.broker_key_prefix).get("gateway", [])
    finally:
        client.close()


def test_the_gateway_process_refuses_removed_chargers_and_closes_with_a_reason_on_sigterm(pipeline):
    """`chargers remove` -> 404; SIGTERM -> connected chargers get 1001 with a reason, the process exits 0.

    Meanwhile its /metrics (EVMON_GATEWAY_METRICS_PORT) counts the connected charger, the refused and accepted
    handshakes, the Heartbeat answered and the event published, and its heartbeat in Redis lives as long as it.
    """
    add_charger(pipeline, "CP-GONE")
    add_charger(pipeline, "CP-STAY")
    assert cli(pipeline, "chargers", "remove", "CP-GONE").returncode == 0
    assert cli(pipeline, "chargers", "remove", "CP-GONE").returncode == 1
    metrics_port = free_port()
    port = start_gateway(pipeline, metrics_port)
    wait_for(lambda: bool(gateway_heartbeats(pipeline)), timeout_s=15, what="the gateway's heartbeat in Redis")

    async def scenario() -> tuple[int, int | None, str | None]:
        with pytest.raises(InvalidStatus) as refused:
            async with charger(port, "CP-GONE"):
                pass
        async with charger(port, "CP-STAY") as cp:
            await cp.call(call.Heartbeat())
            samples = await asyncio.to_thread(scrape, metrics_port)
            assert samples[("evmonitor_gateway_chargers_connected", ())] == 1
            assert samples[("evmonitor_gateway_messages_total", (("action", "Heartbeat"), ("result", "ok")))] == 1
            assert samples[("evmonitor_gateway_handshakes_total", (("result", "refused"),))] == 1
            assert samples[("evmonitor_gateway_handshakes_total", (("result", "accepted"),))] == 1
            assert samples[("evmonitor_gateway_events_published_total", (("kind", "event"),))] == 1  # the heartbeat
            assert await asyncio.to_thread(pipeline.stop, "gateway", timeout_s=30)  # SIGTERM; graceful exit
            with pytest.raises(ConnectionClosed):
                await cp.call(call.Heartbeat())
            ws = cp._connection
            return refused.value.response.status_code, ws.close_code, ws.close_reason

    status, code, reason = asyncio.run(scenario())
    assert (status, code, reason) == (404, 1001, "gateway shutting down")
    assert "gateway: stopped" in pipeline.log("gateway")
    assert gateway_heartbeats(pipeline) == []  # a stopped gateway shows down at once


def test_a_simulated_fleet_sent_as_ocpp_chargers_reconciles_exactly(pipeline):
    """`simulate --via ocpp`: a planned day through the gateway, resent messages included, is exact everywhere."""
    from evmonitor.stack.reconcile import compare, observe
    from evmonitor.stack.ocpp_fleet import run_drain_ocpp

    pipeline.start_workers()
    pipeline.start_bridge()
    start_gateway(pipeline)
    truth, sent = run_drain_ocpp(pipeline.settings, stations=4, sessions=40, seed=5, duplicate_ratio=0.2,
                                 meter_interval_s=600, say=lambda _: None)  # fmt: skip
    assert truth.sessions == 40 and truth.duplicates > 0
    pipeline.wait_drained(sent.targets())
    rows = compare(truth, observe(pipeline.settings, truth, sent))
    assert all(row.ok for row in rows), rows
    assert not pipeline.deadletters()


def test_with_a_certificate_the_gateway_speaks_wss_and_still_requires_the_password(pipeline, tmp_path):
    """Security profile 2: EVMON_OCPP_TLS_CERT/KEY -> wss:// with Basic auth; a wrong password is still 401."""
    import base64
    import ssl

    from websockets.asyncio.client import connect

    cert, key = tmp_path / "gateway.pem", tmp_path / "gateway.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    add_charger(pipeline, "CP-TLS", "--password", PASSWORD)
    pipeline.settings = pipeline.settings.model_copy(update={"ocpp_tls_cert": cert, "ocpp_tls_key": key})
    port = start_gateway(pipeline)
    assert "listening on wss://" in pipeline.log("gateway")
    trust = ssl.create_default_context(cafile=str(cert))

    async def attempt(password: str) -> Any:
        auth = "Basic " + base64.b64encode(f"CP-TLS:{password}".encode()).decode()
        async with connect(f"wss://127.0.0.1:{port}/ocpp/CP-TLS", ssl=trust, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers={"Authorization": auth}) as ws:  # fmt: skip
            cp = Charger("CP-TLS", ws)
            task = asyncio.create_task(cp.start())
            try:
                return await cp.call(call.Heartbeat())
            finally:
                task.cancel()

    assert asyncio.run(attempt(PASSWORD)).current_time
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(attempt("wrong"))
    assert refused.value.response.status_code == 401


def test_demo_via_ocpp_reconciles_exactly_on_its_own_sandbox(pipeline, tmp_path):
    """`evmonitor demo --via ocpp`: the sandbox runs a gateway, the fleet connects as chargers, the table is exact."""
    from tests.integration.conftest import ADMIN_URL

    env = {**pipeline.env, "EVMON_STATE_DIR": str(tmp_path / "state"), "EVMON_ADMIN_DATABASE_URL": ADMIN_URL,
           "COLUMNS": "200"}  # fmt: skip
    done = subprocess.run(evmonitor_cmd("demo", "--via", "ocpp", "--stations", "4", "--sessions", "24", "--seed", "3",
                                        "--duplicate-ratio", "0.05", "--timeout", "240"),
                          env=env, capture_output=True, text=True, timeout=420)  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert "exact: every total matches" in said and "OCPP chargers" in said
    refused = subprocess.run(evmonitor_cmd("demo", "--via", "ocpp", "--reorder"), env=env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2 and "--reorder" in refused.stdout + refused.stderr


def test_sigterm_answers_the_message_in_flight_before_closing(pipeline, tmp_path):
    """SIGTERM while a StopTransaction waits for an unreachable Kafka: it is answered (CALLERROR), then 1001."""
    from ocpp.exceptions import InternalError

    from tests.integration.ocpp_charger import kafka_behind_proxy

    add_charger(pipeline, "CP-FLIGHT")
    with kafka_behind_proxy(tmp_path) as kafka:
        port = free_port()
        pipeline.settings = pipeline.settings.model_copy(update={
            "kafka_bootstrap": kafka.address, "ocpp_listen": f"127.0.0.1:{port}", "ocpp_publish_timeout_s": 5.0})  # fmt: skip
        pipeline.start("gateway", "gateway", "--log-level", "DEBUG")
        wait_for(lambda: "listening on" in pipeline.log("gateway"), timeout_s=30, what="the gateway")

        async def scenario() -> tuple[str, int | None, str | None]:
            async with charger(port, "CP-FLIGHT") as cp:
                tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=10,
                                                          timestamp=ocpp_time(NOW - timedelta(minutes=9))))).transaction_id  # fmt: skip
                kafka.cut()
                stop = asyncio.create_task(cp.call(call.StopTransaction(meter_stop=990, timestamp=ocpp_time(NOW),
                                                                        transaction_id=tx), suppress=False))  # fmt: skip
                await asyncio.to_thread(wait_for, lambda: "received StopTransaction" in pipeline.log("gateway"),
                                        timeout_s=30, what="the StopTransaction at the gateway")  # fmt: skip
                os.kill(pipeline.processes["gateway"].pid, signal.SIGTERM)
                try:  # the message in flight is answered, not cut off: never stored, so never a CALLRESULT
                    await asyncio.wait_for(stop, timeout=60)
                    outcome = "CALLRESULT"
                except InternalError:
                    outcome = "CALLERROR InternalError"
                ws = cp._connection
                await asyncio.wait_for(ws.wait_closed(), timeout=30)  # then the gateway hangs up
                return outcome, ws.close_code, ws.close_reason

        assert asyncio.run(scenario()) == ("CALLERROR InternalError", 1001, "gateway shutting down")
        wait_for(lambda: not pipeline.processes["gateway"].alive(), timeout_s=30, what="the gateway to exit")
        assert "finishing messages in flight" in pipeline.log("gateway")
