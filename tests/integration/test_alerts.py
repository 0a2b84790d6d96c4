"""Alerts an operator can trust and receive: judgments at the event-time watermark, notifications."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone
import email.policy
from email import message_from_bytes

import pytest
import sqlalchemy as sa

from beat.faults import track_faults
from beat.notify import deliver_notifications, verify_signature
from beat.outages import track_outages
from beat.runner import Context, do_faults
from beat.watermark import judgment_time
from evmonitor.bridge.wiring import build_bridge
from evmonitor.config import Settings
from evmonitor.contract import TOPIC_BY_TYPE, validate
from evmonitor.names import Queue
from evmonitor.stack import health
from evmonitor.stack.procs import wait_for
from evmonitor.storage.postgres import PostgresStore, apply_schema
from tests.factories import encode, iso, make_event
from tests.integration.conftest import ADMIN_URL, Pipeline

MIN = timedelta(minutes=1)
S = timedelta(seconds=1)


def heartbeat(station: str, at: datetime) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "station_status", "schema_version": 1, "timestamp": iso(at),
            "station_id": station, "connector_id": 0, "status": "Available", "error_code": "NoError",
            "heartbeat": True}  # fmt: skip


def message(event: dict) -> tuple[str, bytes, bytes]:
    return TOPIC_BY_TYPE[event["event_type"]], event["station_id"].encode(), json.dumps(event).encode()


def offline(engine: sa.Engine) -> dict[str, datetime]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT station_id, since FROM alerts WHERE kind = 'station_offline'")).all()
    return {r.station_id: r.since for r in rows}


def test_catching_up_a_backlog_of_old_heartbeats_raises_no_false_offline_alert(pg_admin, tmp_path):
    """An hour of healthy heartbeats waits in Kafka; judged at the watermark while the pipeline
    catches up, no station is offline, and the one that truly fell silent is, once the watermark
    passes its deadline."""
    wall = datetime.now(timezone.utc).replace(microsecond=0)
    settings = dict(sinks="persist", topic_partitions=1, heartbeat_interval_s=60, offline_after_heartbeats=3,
                    batch_max_events=40, max_inflight_batches=1, commit_interval_s=0.1,
                    watermark_interval_s=0.1)  # fmt: skip
    with Pipeline(tmp_path, admin_url=ADMIN_URL, **settings) as p:
        events = [heartbeat(s, wall - (60 - i) * MIN) for i in range(60) for s in ("ST-A", "ST-B")]
        events += [heartbeat("ST-SILENT", wall - (60 - i) * MIN) for i in range(51)]  # silent from wall - 10 min
        p.start_workers((Queue.PERSIST,))  # one sink is enough to commit by
        ctx = Context(p.settings)
        # an hour of heartbeats waits in Kafka, as stations sent them, while the pipeline is stopped
        p.publish([message(e) for e in sorted(events, key=lambda e: e["timestamp"])])
        bridge, source, producer = build_bridge(p.settings)
        try:
            def committed_some() -> bool:
                for _ in range(5):  # poll without pauses, as the bridge's own loop does (the group join needs it)
                    bridge.step()
                return any(r.event_time is not None for r in p.sql("SELECT event_time FROM pipeline_watermarks"))

            wait_for(committed_some, timeout_s=60, what="the bridge's first commit", hint=p.logs_hint())
            # frozen mid-backlog: the database knows A only from long ago, which the wall clock calls offline
            [seen] = p.sql("SELECT last_seen_at FROM charging_stations WHERE id = 'ST-A'")
            assert wall - seen.last_seen_at > p.settings.offline_after
            judged = judgment_time(ctx.engine, wall)
            do_faults(ctx, judged)
            assert offline(ctx.engine) == {}
            assert judged < wall - 5 * MIN  # the event time of what is committed, not the wall clock

            def caught_up() -> bool:
                for _ in range(5):
                    bridge.step()
                now = datetime.now(timezone.utc)
                judged = judgment_time(ctx.engine, now)
                if judged is not None:
                    do_faults(ctx, judged)
                assert not {"ST-A", "ST-B"} & set(offline(ctx.engine)), "a false offline alert while catching up"
                return judged is not None and now - judged < 30 * timedelta(seconds=1)

            wait_for(caught_up, timeout_s=90, what="the pipeline to catch up", hint=p.logs_hint())
            assert offline(ctx.engine) == {"ST-SILENT": wall - 10 * MIN}
        finally:
            ctx.close()
            bridge.shutdown(timeout_s=5)
            source.close()
            producer.close(timeout=5)


# --- notifications: a real HTTP receiver and a real SMTP server ---------------------------------

SECRET = "s3cret-for-tests"


class Receiver:
    """A webhook receiver in a thread: refuses the first `fail` POSTs with HTTP 500, then verifies
    each signature (401 if wrong) and accepts a delivery id once."""

    def __init__(self, fail: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.fail, self.posts, self.accepted, self.bad_signatures = fail, 0, {}, 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts += 1
                if receiver.posts <= receiver.fail:
                    code = 500
                elif not verify_signature(SECRET, self.headers["X-Evmonitor-Timestamp"], body,
                                          self.headers["X-Evmonitor-Signature"]):  # fmt: skip
                    receiver.bad_signatures += 1
                    code = 401
                else:
                    delivery = self.headers["X-Evmonitor-Delivery"]
                    receiver.accepted.setdefault(delivery, []).append(json.loads(body))
                    code = 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def database(pg_admin):
    """A fresh database with the schema: the notification path needs PostgreSQL only."""
    name = f"evmon_alerts_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = pg_admin.url.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    apply_schema(engine, Settings(_env_file=None).sql_dir)
    yield url
    engine.dispose()
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_flapping_fault_is_notified_once_when_it_opens_and_once_when_it_closes(database):
    """Faulted/Available six times in 2.5 min: one alert, delivered by webhook (after two refusals,
    exactly once per event, signature verified) and by e-mail (through a real SMTP server)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    mails = []

    class Inbox(Sink):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            mails.append(message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    receiver = Receiver(fail=2)
    try:
        settings = Settings(_env_file=None, database_url=database, alert_debounce_s=120, notify_interval_s=10,
                            notify_webhook_url=receiver.url, notify_webhook_secret=SECRET,
                            notify_email_to="ops@example.org, duty@example.org", smtp_host="127.0.0.1",
                            smtp_port=smtp_port, smtp_from="evmonitor@example.org")  # fmt: skip
        engine = sa.create_engine(settings.sqlalchemy_url)
        t0 = datetime.now(timezone.utc).replace(microsecond=0) - 30 * MIN
        events = [make_event("station_boot", at=t0, station_id="ST-FLAP", name="Flap Street 1")]
        for i, status in enumerate(["Faulted", "Available"] * 3):
            events.append(make_event("station_status", at=t0 + 60 * MIN / 2 + i * 30 * S, station_id="ST-FLAP",
                                     status=status, error_code="GroundFailure" if status == "Faulted" else "NoError"))
        PostgresStore(engine).write_events([validate(encode(e), received_at=t0 + 60 * MIN).to_wire() for e in events])
        cleared = t0 + 30 * MIN + 150 * S

        def deliver(at: datetime) -> dict:
            return deliver_notifications(engine, settings, at)

        track_faults(engine, settings, cleared + 60 * S)  # cleared a minute ago: still open
        track_faults(engine, settings, cleared + 60 * S)  # a retried beat job changes nothing
        assert deliver(cleared + 60 * S) == {"channels": ["email", "webhook"], "delivered": 1, "failed": 1,
                                             "gave_up": 0, "pruned": 0}  # the mail; the webhook's 500
        assert deliver(cleared + 65 * S)["failed"] == 0  # the webhook waits its backoff (10 s)
        assert deliver(cleared + 70 * S)["failed"] == 1  # 500 again
        assert deliver(cleared + 80 * S)["failed"] == 0  # backoff doubled: 20 s
        assert deliver(cleared + 90 * S)["delivered"] == 1
        track_faults(engine, settings, cleared + 121 * S)  # healthy for the debounce: closed
        assert deliver(cleared + 121 * S)["delivered"] == 2
        assert deliver(cleared + 600 * S)["delivered"] == 0  # nothing twice

        with engine.connect() as conn:
            alerts = conn.execute(sa.text("SELECT id, since, until FROM alerts WHERE kind = 'connector_fault'")).all()
            outages = conn.execute(sa.text("SELECT count(*) FROM port_outages")).scalar()
        assert [(a.since, a.until) for a in alerts] == [(t0 + 30 * MIN, cleared)]
        assert receiver.posts == 4 and receiver.bad_signatures == 0
        bodies = [b for delivered in receiver.accepted.values() for b in delivered]
        assert [len(d) for d in receiver.accepted.values()] == [1, 1]
        assert [(b["event"], b["alert_id"], b["station_id"], b["connector_id"]) for b in bodies] == [
            ("opened", alerts[0].id, "ST-FLAP", 1), ("closed", alerts[0].id, "ST-FLAP", 1)]
        assert bodies[0]["closed_at"] is None and bodies[1]["closed_at"] == iso(cleared)
        assert {b["delivery_id"] for b in bodies} == set(receiver.accepted)
        assert [m["Subject"] for m in mails] == [
            "[evmonitor] OPENED warning connector_fault: Flap Street 1 (ST-FLAP) connector 1",
            "[evmonitor] CLOSED warning connector_fault: Flap Street 1 (ST-FLAP) connector 1"]
        assert "Flap Street 1 (ST-FLAP) connector 1 Faulted (GroundFailure)" in mails[0].get_content()
        assert mails[0]["To"] == "ops@example.org, duty@example.org"

        # the outage ledger still counts the real minutes: three outages of 30 s, not one of 2.5 min
        track_outages(engine, settings, cleared + 121 * S)
        with engine.connect() as conn:
            minutes = conn.execute(sa.text("SELECT minutes FROM port_outages WHERE connector_id = 1 ORDER BY 1")).scalars().all()
        assert [float(m) for m in minutes] == [0.5, 0.5, 0.5]

        # a late Faulted a minute before the first one redraws the episode: the old one is withdrawn
        late = make_event("station_status", at=t0 + 29 * MIN, station_id="ST-FLAP", status="Faulted",
                          error_code="GroundFailure")  # fmt: skip
        PostgresStore(engine).write_events([validate(encode(late), received_at=t0 + 60 * MIN).to_wire()])
        track_faults(engine, settings, cleared + 700 * S)
        assert deliver(cleared + 700 * S)["delivered"] == 4
        news = [b for d in receiver.accepted.values() for b in d][2:]
        assert sorted((b["event"], b["opened_at"]) for b in news) == [
            ("closed", iso(t0 + 29 * MIN)), ("withdrawn", iso(t0 + 30 * MIN))]
        assert health._notifications(settings) == "webhook, email; 0 pending, 0 given up"  # `evmonitor status`
        engine.dispose()
    finally:
        receiver.close()
        smtp.stop()


def test_a_silence_heard_of_before_the_watermark_reaches_it_is_judged_once_it_does(database):
    """Presence after `now` waits for a later `now` (its marks are kept, and paging through them ends):
    a silence that lay wholly after one run's `now` is an episode at the next run."""
    settings = Settings(_env_file=None, database_url=database, heartbeat_interval_s=60, offline_after_heartbeats=3)
    engine = sa.create_engine(settings.sqlalchemy_url)
    t0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 120 * MIN
    stations = [f"ST-AHEAD-{i}" for i in range(4)]
    events = [heartbeat(s, t0 + m * MIN) for s in stations for m in (0, 1, 2, 20, 21, 22)]  # silent 2 -> 20
    PostgresStore(engine).write_events([validate(json.dumps(e).encode(), received_at=t0 + 60 * MIN).to_wire() for e in events])

    def judge(now: datetime) -> int:
        runs = 1
        while track_faults(engine, settings, now, page=2)["more"]:  # every station is ahead of `now`
            runs += 1
            assert runs < 10
        return runs

    assert judge(t0 + 1 * MIN) > 1 and offline(engine) == {}
    judge(t0 + 25 * MIN)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT station_id, since, until FROM alerts WHERE kind = 'station_offline' "
                                    "ORDER BY station_id")).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [(s, t0 + 2 * MIN, t0 + 20 * MIN) for s in stations]
    engine.dispose()


def test_an_open_offline_episode_whose_start_is_past_the_presence_history_closes_when_the_station_speaks(database):
    """A station silent longer than the retained presence history (or than a database from before it) still
    has its open episode closed at the first message heard after it."""
    settings = Settings(_env_file=None, database_url=database)
    engine = sa.create_engine(settings.sqlalchemy_url)
    back = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 30 * MIN
    long_ago = back - timedelta(days=200)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alerts (id, kind, status, severity, station_id, since, message, opened_at) "
                             "VALUES (:id, 'station_offline', 'open', 'critical', 'ST-OLD', :since, 'm', :since)"),
                     {"id": f"offline:ST-OLD:{iso(long_ago)}", "since": long_ago})  # fmt: skip
    PostgresStore(engine).write_events([validate(json.dumps(heartbeat("ST-OLD", back)).encode(),
                                                 received_at=back).to_wire()])  # fmt: skip
    track_faults(engine, settings, back + MIN)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT since, until, status FROM alerts WHERE station_id = 'ST-OLD'")).all()
    assert [tuple(r) for r in rows] == [(long_ago, back, "closed")]
    engine.dispose()
