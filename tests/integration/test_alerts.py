"""Alerts an operator can trust and receive: judgments at the event-time watermark, notifications."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from beat.runner import Context, do_faults
from beat.watermark import judgment_time
from evmonitor.bridge.wiring import build_bridge
from evmonitor.contract import TOPIC_BY_TYPE
from evmonitor.stack.procs import wait_for
from tests.factories import iso
from tests.integration.conftest import ADMIN_URL, Pipeline

MIN = timedelta(minutes=1)


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
    settings = dict(topic_partitions=1, heartbeat_interval_s=60, offline_after_heartbeats=3, batch_max_events=40,
                    max_inflight_batches=1, commit_interval_s=0.1, watermark_interval_s=0.1)  # fmt: skip
    with Pipeline(tmp_path, admin_url=ADMIN_URL, **settings) as p:
        events = [heartbeat(s, wall - (60 - i) * MIN) for i in range(60) for s in ("ST-A", "ST-B")]
        events += [heartbeat("ST-SILENT", wall - (60 - i) * MIN) for i in range(51)]  # silent from wall - 10 min
        p.start_workers()
        ctx = Context(p.settings)
        # the pipeline ran, caught up (every partition fetched once), and stopped
        bridge, source, producer = build_bridge(p.settings)
        wait_for(lambda: bridge.step() or len(bridge.report_watermarks()) == 4 and judgment_time(ctx.engine, wall),
                 timeout_s=60, what="the first bridge to see every partition", hint=p.logs_hint())  # fmt: skip
        bridge.shutdown(timeout_s=5)
        source.close()
        producer.close(timeout=5)
        # meanwhile an hour of heartbeats waits in Kafka, as stations sent them
        p.publish([message(e) for e in sorted(events, key=lambda e: e["timestamp"])])
        bridge, source, producer = build_bridge(p.settings)
        try:
            def committed_some() -> bool:
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
