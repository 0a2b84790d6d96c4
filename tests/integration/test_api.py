"""The REST API over data the real pipeline wrote: Kafka -> bridge -> workers -> PostgreSQL + search server.

One sandbox for the module (starting one per test would triple the run on a two-core machine):
it is fed once by `fed`, and every test only reads it, except the token tests, which add tokens.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import re
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
import sqlalchemy as sa
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from evmonitor.api import create_api, deps, queries
from evmonitor.contract import TOPIC_BY_TYPE
from evmonitor.stack.embedded import evmonitor_cmd
from evmonitor.stack.procs import free_port, wait_for
from tests.factories import encode, make_event, session_events
from tests.integration.conftest import ADMIN_URL, Pipeline

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc).replace(microsecond=0)
MARKUP_NAME = '<img src=x onerror="alert(1)"> Hauptbahnhof'


def as_messages(events: list[dict]) -> list[tuple[str, bytes, bytes]]:
    return [(TOPIC_BY_TYPE[e["event_type"]], e["station_id"].encode(), encode(e)) for e in events]


class Fed:
    """The sandbox, what was sent into it, and tokens of each scope."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
        self.sessions: dict[str, list[dict]] = {}
        self.read_token = self.token("reader", "read")
        self.operate_token = self.token("operator", "operate")

    def token(self, name: str, scope: str) -> str:
        with self.engine.begin() as conn:
            return queries.create_token(conn, name, scope)[1]

    def client(self, token: str | None = None) -> TestClient:
        client = TestClient(create_api(self.pipeline.settings))
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        return client

    def scalar(self, sql: str) -> object:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()


@pytest.fixture(scope="module")
def fed(pg_admin: sa.Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    """Three stations (one named with markup, one whose id starts with '='), four sessions, a fault."""
    metrics_port = free_port()
    # beat (started by the last test only) runs its rollup and dead-letter jobs every 5 s
    with Pipeline(tmp_path_factory.mktemp("api"), admin_url=ADMIN_URL, bridge_metrics_port=metrics_port,
                  rollup_interval_s=5, deadletter_interval_s=5) as pipeline:
        pipeline.start_workers()
        pipeline.start_bridge()
        at = NOW - timedelta(minutes=55)
        events = [
            make_event("station_boot", at=at, station_id="ST-A", name=MARKUP_NAME, operator="VoltWay", city="Berlin"),
            make_event("station_boot", at=at, station_id="ST-B", name="Marktplatz", operator="Stromer", city="Hamburg"),
            make_event("station_boot", at=at, station_id="=ST-C", name="Formula", operator="Stromer", city="Hamburg"),
            make_event("station_status", at=NOW - timedelta(minutes=2), station_id="ST-B", connector_id=2,
                       status="Faulted", error_code="GroundFailure"),  # fmt: skip
            make_event("station_status", at=NOW - timedelta(minutes=1), station_id="ST-A", connector_id=1,
                       status="Charging", error_code="NoError"),  # fmt: skip
        ]
        fed = Fed(pipeline)
        for i, (station, readings) in enumerate([("ST-A", [2_000, 6_500, 9_000]), ("ST-A", [1_000]),
                                                  ("ST-B", [4_000, 8_000]), ("=ST-C", [500, 700])]):  # fmt: skip
            s = session_events(start=NOW - timedelta(minutes=50 - 5 * i), readings=readings, station_id=station,
                               connector_id=1 + i % 2, meter_start_wh=1_000_000 * (i + 1))  # fmt: skip
            fed.sessions[s[0]["session_id"]] = s
            events += s
        running = session_events(start=NOW - timedelta(minutes=10), readings=[3_000], station_id="ST-B")[:-1]
        fed.sessions[running[0]["session_id"]] = running
        events += running
        fed.valid_sent = len(events)
        bad = [("ev.session.progress", b"ST-A", b"{not json"), ("ev.station.status", b"ST-B", b"[]"),
               ("ev.station.status", b"ST-B", b"{also not json")]  # fmt: skip
        pipeline.wait_drained(pipeline.publish(as_messages(events) + bad))
        fed.bridge_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        pipeline.search().refresh()
        try:
            yield fed
        finally:
            fed.engine.dispose()


def test_stations_list_filters_and_pages_what_the_pipeline_wrote(fed):
    """Stations come back by id with their board status; filters and cursors cover every row once."""
    api = fed.client(fed.read_token)
    body = api.get("/api/v1/stations").json()
    assert [s["id"] for s in body["items"]] == ["=ST-C", "ST-A", "ST-B"]
    by_id = {s["id"]: s for s in body["items"]}
    assert by_id["ST-A"]["name"] == MARKUP_NAME and by_id["ST-A"]["status"] == "Charging"
    assert by_id["ST-B"]["status"] == "Faulted"
    assert [s["id"] for s in api.get("/api/v1/stations", params={"status": "Faulted"}).json()["items"]] == ["ST-B"]
    assert [s["id"] for s in api.get("/api/v1/stations", params={"q": "hauptbahn"}).json()["items"]] == ["ST-A"]
    assert [s["id"] for s in api.get("/api/v1/stations", params={"city": "Hamburg", "operator": "Stromer"}).json()["items"]] == ["=ST-C", "ST-B"]
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/stations", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["=ST-C", "ST-A", "ST-B"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", by_id["ST-A"]["last_seen_at"])


def test_one_station_has_its_connectors_alerts_and_todays_totals(fed):
    """A station's page of data: live connectors, and today's sessions and kWh equal to the database's."""
    api = fed.client(fed.read_token)
    st = api.get("/api/v1/stations/ST-B").json()
    assert {c["connector_id"]: c["status"] for c in st["connectors"]} == {2: "Faulted"}
    expected_kwh = fed.scalar("SELECT sum(energy_delivered_kwh) FROM charging_sessions WHERE station_id = 'ST-B'")
    assert st["today"] == {"sessions": 2, "energy_kwh": float(expected_kwh),
                           "revenue_eur": float(fed.scalar("SELECT sum(cost_eur) FROM charging_sessions WHERE station_id = 'ST-B'"))}  # fmt: skip
    missing = api.get("/api/v1/stations/NOPE")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_sessions_filter_page_and_carry_their_meter_curve_from_the_event_log(fed):
    """Sessions filter by station and status; one session's curve is its events from the search server."""
    api = fed.client(fed.read_token)
    everything = api.get("/api/v1/sessions", params={"limit": 2}).json()
    assert len(everything["items"]) == 2 and everything["next_cursor"]
    rest = api.get("/api/v1/sessions", params={"limit": 100, "cursor": everything["next_cursor"]}).json()
    assert len({s["id"] for s in everything["items"] + rest["items"]}) == len(fed.sessions) == 5
    active = api.get("/api/v1/sessions", params={"status": "active"}).json()["items"]
    assert [s["station_id"] for s in active] == ["ST-B"]
    on_a = api.get("/api/v1/sessions", params={"station_id": "ST-A"}).json()["items"]
    assert len(on_a) == 2
    window = api.get("/api/v1/sessions", params={"since": (NOW - timedelta(minutes=46)).isoformat(),
                                                  "until": (NOW - timedelta(minutes=30)).isoformat()}).json()["items"]  # fmt: skip
    assert len(window) == 3
    first = on_a[-1]
    events = fed.sessions[first["id"]]
    detail = api.get(f"/api/v1/sessions/{first['id']}").json()
    assert [p["event_type"] for p in detail["meter_curve"]] == [e["event_type"] for e in events]
    meters = [p["meter_wh"] for p in detail["meter_curve"]]
    assert meters == sorted(meters) and meters[0] == events[0]["meter_start_wh"] and meters[-1] == events[-1]["meter_stop_wh"]
    assert Decimal(str(detail["energy_delivered_kwh"])) == Decimal(meters[-1] - meters[0]) / 1000
    assert api.get("/api/v1/sessions/00000000-0000-0000-0000-000000000000").status_code == 404


def test_csv_export_streams_the_filtered_sessions_with_formula_cells_neutralised(fed):
    """The CSV export has one row per session and a leading quote on cells a spreadsheet would run."""
    api = fed.client(fed.read_token)
    response = api.get("/api/v1/sessions/export.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 5
    assert {r["station_id"] for r in rows} == {"ST-A", "ST-B", "'=ST-C"}
    only_b = list(csv.DictReader(io.StringIO(api.get("/api/v1/sessions/export.csv", params={"station_id": "ST-B"}).text)))
    assert len(only_b) == 2


def test_board_counters_equal_the_database(fed):
    """The live page's counters are the database's: running, done today, kWh and EUR."""
    board = fed.client(fed.read_token).get("/api/v1/board").json()
    assert board["counters"]["sessions_running"] == 1
    assert board["counters"]["sessions_done"] == 4
    assert board["counters"]["energy_kwh"] == float(fed.scalar("SELECT sum(energy_delivered_kwh) FROM charging_sessions"))
    assert board["counters"]["revenue_eur"] == float(fed.scalar("SELECT sum(cost_eur) FROM charging_sessions"))
    assert board["stations_by_status"] == {"Charging": 1, "Faulted": 1, "Unknown": 1}
    assert board["pipeline"]["last_write_at"] is not None and board["pipeline"]["idle_s"] >= 0


def test_metrics_exposition_parses_and_matches_the_database(fed):
    """/metrics parses with prometheus_client's parser; its gauges equal the database's counts."""
    api = fed.client(fed.read_token)
    api.get("/api/v1/stations")
    families = {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}
    stations = {s.labels["status"]: s.value for s in families["evmonitor_stations"].samples}
    assert sum(stations.values()) == fed.scalar("SELECT count(*) FROM charging_stations") == 3
    assert stations["Faulted"] == 1
    sessions = {s.labels["status"]: s.value for s in families["evmonitor_sessions"].samples}
    assert sessions["completed"] == fed.scalar("SELECT count(*) FROM charging_sessions WHERE status = 'completed'") == 4
    assert families["evmonitor_sessions_running"].samples[0].value == 1
    unsettled = sum(s.value for s in families["evmonitor_ingest_batches_unsettled"].samples)
    assert unsettled == fed.scalar("SELECT count(*) FROM ingest_batches")
    requests = [s for s in families["evmonitor_api_requests"].samples if s.name == "evmonitor_api_requests_total"]
    assert any(s.labels["route"] == "/api/v1/stations" and s.labels["status"] == "200" for s in requests)


def test_bridge_metrics_count_what_it_consumed_and_dead_lettered(fed):
    """The bridge's /metrics (EVMON_BRIDGE_METRICS_PORT) counts valid records, dead letters by reason and lag."""
    def scrape() -> dict:
        text = urllib.request.urlopen(fed.bridge_metrics_url, timeout=10).read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip

    def lags(samples: dict) -> dict:
        return {k: v for k, v in samples.items() if k[0] == "evmonitor_bridge_consumer_lag"}

    # the lag is measured on the bridge's thread once a second: drained shows within a few
    wait_for(lambda: (found := lags(scrape())) and all(v == 0 for v in found.values()), timeout_s=30,
             what="the bridge to report no lag on any partition")  # fmt: skip
    samples = scrape()
    assert samples[("evmonitor_bridge_records_total", (("result", "valid"),))] == fed.valid_sent
    reasons = Counter(d["reason"] for d in fed.pipeline.deadletters())
    assert reasons == {"invalid_json": 2, "not_an_object": 1}
    for reason, n in reasons.items():
        assert samples[("evmonitor_bridge_deadletters_total", (("reason", reason),))] == n
    assert samples[("evmonitor_bridge_batches_in_flight", ())] == 0
    assert len(lags(samples)) == 4 * 3  # every event topic's partitions, each at 0 (the wait above)


def _example_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: {"{session_id}": "00000000-0000-0000-0000-000000000000",
                                           "{day}": "2026-01-01", "{fmt}": "csv"}.get(m.group(0), "x"), path)  # fmt: skip


# the doors without a lock: the load balancer's probe and what signing in needs
OPEN_ROUTES = {"/healthz", "/login", "/logout"}
# the browser's pages: without a session they show nothing and send the browser to the sign-in form
PAGES = {"/", "/stations/{station_id}"}


def _needs(dependant, call) -> bool:
    return any(d.call is call or _needs(d, call) for d in dependant.dependencies)


def test_every_route_refuses_a_missing_wrong_or_revoked_token(fed):
    """Walking app.routes (documented or not): each answers 401 without a live token, and 403 to a read
    token where it needs `operate`; the pages redirect to /login; only /healthz and /login are open."""
    revoked = fed.token("leaver", "read")
    with fed.engine.begin() as conn:
        assert queries.revoke_token(conn, "leaver") == 1
    api = fed.client()
    reader = fed.client(fed.read_token)
    contexts = list(iter_route_contexts(api.app.router.routes))  # included routers flattened, prefixes applied
    routes = [(m, c.path) for c in contexts for m in sorted(c.methods or ()) if m != "HEAD"]
    assert {p for _, p in routes} >= {"/openapi.json", "/docs", "/metrics", "/api/v1/pipeline", *OPEN_ROUTES, *PAGES}
    assert len(routes) >= 20
    operate = {c.path for c in contexts if _needs(c.dependant, deps.operator.dependency)}
    locked = {c.path for c in contexts if _needs(c.dependant, deps.reader.dependency)}
    assert locked == {p for _, p in routes} - OPEN_ROUTES - PAGES  # the lock is the dependency, on every route
    assert operate == {"/api/v1/alerts/{alert_id}/acknowledge", "/api/v1/alerts/{alert_id}/resolve"}
    for method, path in routes:
        if path in OPEN_ROUTES:
            continue
        for headers in ({}, {"Authorization": "Bearer evm_wrong"}, {"Authorization": f"Bearer {revoked}"},
                        {"Authorization": "Basic dXNlcjpwYXNz"}, {"Cookie": "evmon_session=forged"}):  # fmt: skip
            response = api.request(method, _example_path(path), headers=headers, follow_redirects=False)
            if path in PAGES:
                assert response.status_code == 303 and response.headers["location"] == "/login", (method, path)
                continue
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
        if path in operate:
            refused = reader.request(method, _example_path(path))
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", path
    assert api.get("/healthz").status_code == 200
    assert api.get("/login").status_code == 200 and 'name="token"' in api.get("/login").text
    assert reader.get("/openapi.json").json()["paths"] and "swagger" in reader.get("/docs").text.lower()
    assert api.get("/redoc").status_code == 404


def test_acknowledge_and_resolve_need_the_operate_scope(fed):
    """A read token gets 403 on alert actions; an operate token acknowledges and resolves a real alert."""
    alert_id = "api-test:" + NOW.isoformat()
    with fed.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alerts (id, kind, status, severity, station_id, since, message, opened_at) "
                             "VALUES (:id, 'connector_fault', 'open', 'critical', 'ST-B', :t, 'ST-B 2 Faulted', :t)"),
                     {"id": alert_id, "t": NOW})  # fmt: skip
    reader, operator = fed.client(fed.read_token), fed.client(fed.operate_token)
    for action in ("acknowledge", "resolve"):
        refused = reader.post(f"/api/v1/alerts/{alert_id}/{action}")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    acked = operator.post(f"/api/v1/alerts/{alert_id}/acknowledge").json()
    assert acked["acknowledged_by"] == "operator" and acked["status"] == "open"
    assert [a["id"] for a in reader.get("/api/v1/alerts", params={"status": "open"}).json()["items"]] == [alert_id]
    resolved = operator.post(f"/api/v1/alerts/{alert_id}/resolve").json()
    assert resolved["status"] == "closed" and resolved["resolved_by"] == "operator"
    assert reader.get("/api/v1/alerts", params={"status": "open"}).json()["items"] == []


def test_fuzzed_requests_get_no_5xx_and_only_documented_responses(fed):
    """Schemathesis over /openapi.json with a read token: no 5xx, every response as documented."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_api(fed.pipeline.settings),
                                            headers={"Authorization": f"Bearer {fed.read_token}"})  # fmt: skip
    # the board's event stream never ends by design; the page test reads it in a browser
    schema = schema.exclude(path="/api/v1/board/stream")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def call(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {fed.read_token}"}, checks=checks)

        call()


def test_the_cli_makes_tokens_and_shows_what_the_api_shows(fed):
    """`evmonitor tokens` create (printed once), list (never the secret), revoke; the views equal the API."""
    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(evmonitor_cmd(*args), env=fed.pipeline.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    secret = run("tokens", "create", "--name", "cli-made", "--scope", "read").stdout.strip()
    assert secret.startswith("evm_")
    assert fed.client(secret).get("/api/v1/stations").status_code == 200
    listed = run("tokens", "list", "--json").stdout
    assert "cli-made" in listed and secret not in listed
    assert secret not in fed.scalar("SELECT string_agg(token_sha256 || prefix, ',') FROM api_tokens")
    run("tokens", "revoke", "cli-made")
    assert fed.client(secret).get("/api/v1/stations").status_code == 401

    api = fed.client(fed.read_token)
    cli_stations = json.loads(run("stations", "--json").stdout)
    assert [s["id"] for s in cli_stations] == [s["id"] for s in api.get("/api/v1/stations").json()["items"]]
    assert [s["id"] for s in json.loads(run("stations", "--status", "Faulted", "--json").stdout)] == ["ST-B"]
    one = json.loads(run("station", "ST-B", "--json").stdout)
    assert one["today"] == api.get("/api/v1/stations/ST-B").json()["today"]
    active = json.loads(run("sessions", "--active", "--json").stdout)
    assert [s["id"] for s in active] == [s["id"] for s in api.get("/api/v1/sessions", params={"status": "active"}).json()["items"]]
    assert "ST-B" in run("stations").stdout and run("alerts", "--open").returncode == 0
    refused = subprocess.run(evmonitor_cmd("stations", "--status", "Broken"), env=fed.pipeline.env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_pipeline_and_rollups_show_what_beat_made_of_the_pipeline_data(fed):
    """/api/v1/pipeline: no lag, empty queues, beat's dead letters by reason; rollups equal the sessions table.

    Runs last in this module: it starts beat and the maintenance worker, whose alerts would change
    what the tests above read.
    """
    fed.pipeline.start_worker("maintenance")
    fed.pipeline.wait_workers(("maintenance",))
    fed.pipeline.start("beat", "beat")
    api = fed.client(fed.read_token)
    wait_for(lambda: (api.get("/api/v1/pipeline").json()["deadletters"] or {}).get("by_reason")
             == {"invalid_json": 2, "not_an_object": 1}, timeout_s=120,
             what="beat to index the three dead letters", hint=f"Logs: {fed.pipeline.logs}")  # fmt: skip
    body = api.get("/api/v1/pipeline").json()
    assert body["unreachable"] == {}
    assert len(body["consumer_lag"]) == 4 * 3 and all(p["lag"] == 0 for p in body["consumer_lag"])
    assert sum(p["committed"] for p in body["consumer_lag"]) == fed.valid_sent + 3
    assert body["queues"] == {"persist": 0, "index": 0, "maintenance": body["queues"]["maintenance"]}
    latest = body["deadletters"]["latest"]
    assert {d["source_topic"] for d in latest} == {"ev.session.progress", "ev.station.status"}
    assert all(d["reason"] in ("invalid_json", "not_an_object") for d in latest)
    bridge = {s.labels["reason"]: s.value for f in text_string_to_metric_families(
        urllib.request.urlopen(fed.bridge_metrics_url, timeout=10).read().decode())
        for s in f.samples if s.name == "evmonitor_bridge_deadletters_total"}  # fmt: skip
    assert bridge == body["deadletters"]["by_reason"]  # what the bridge counted is what beat indexed

    def components() -> dict[str, dict]:
        return {c["name"]: c for c in api.get("/api/v1/pipeline").json()["components"]}

    parts = components()
    running = ("postgresql", "kafka", "search", "redis", "bridge", "beat", "worker persist", "worker index",
               "worker maintenance")  # fmt: skip
    assert {n: parts[n]["status"] for n in running} == dict.fromkeys(running, "up"), parts
    assert parts["gateway"]["status"] == "down" and "no heartbeat" in parts["gateway"]["detail"]  # none runs here
    assert body["batches_in_flight"] == 0  # drained: the bridge's heartbeat says none is waiting for a sink
    # stopped processes show down: beat deletes its heartbeat on the way out, a worker no longer answers
    fed.pipeline.stop("beat")
    fed.pipeline.stop("worker-maintenance")
    wait_for(lambda: [components()[n]["status"] for n in ("beat", "worker maintenance")] == ["down", "down"],
             timeout_s=30, what="beat and the maintenance worker to show down")  # fmt: skip
    assert components()["bridge"]["status"] == "up"

    def hourly_sessions() -> float:
        rows = api.get("/api/v1/rollups/hourly", params={"since": (NOW - timedelta(hours=3)).isoformat()}).json()
        return sum(r["sessions_started"] for r in rows)

    wait_for(lambda: hourly_sessions() == len(fed.sessions), timeout_s=120, what="beat to roll up the sessions",
             hint=f"Logs: {fed.pipeline.logs}")  # fmt: skip
    rows = api.get("/api/v1/rollups/hourly", params={"station_id": "ST-A", "since": (NOW - timedelta(hours=3)).isoformat()}).json()
    assert sum(r["energy_kwh"] for r in rows) == pytest.approx(
        float(fed.scalar("SELECT sum(energy_delivered_kwh) FROM charging_sessions WHERE station_id = 'ST-A'")))


def test_a_worker_serves_task_duration_histograms_summed_over_its_pool(fed):
    """`worker --metrics-port`: every persist task of a two-process pool lands in one histogram per queue."""
    port = free_port()
    fed.pipeline.stop("worker-persist")
    fed.pipeline.start("worker-persist-metrics", "worker", "-Q", "persist", "-c", "2", "-n", "persist-m@%h",
                       "--metrics-port", str(port))  # fmt: skip
    fed.pipeline.wait_workers(("persist",))
    events = [e for i in range(6) for e in session_events(start=NOW - timedelta(minutes=20), station_id=f"ST-M{i}")]
    fed.pipeline.wait_drained(fed.pipeline.publish(as_messages(events)))

    def persist_tasks() -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "evmonitor_task_duration_seconds_count" and s.labels["queue"] == "persist"
                   and s.labels["task"] == "evmonitor.persist_batch" and s.labels["state"] == "SUCCESS")  # fmt: skip

    assert persist_tasks() >= 1
    assert fed.scalar("SELECT count(*) FROM charging_stations WHERE id LIKE 'ST-M%'") == 6
