"""The retention job against real PostgreSQL and a real search server."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from beat.runner import Context, do_retention


def test_retention_drops_only_what_is_past_the_settings_and_is_idempotent(pipeline):
    """Old event indices, status history, closed alerts and hourly rollups go; recent ones, open alerts and sessions stay."""
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    old, recent = now - timedelta(days=120), now - timedelta(days=2)
    prefix = pipeline.settings.index_prefix
    for day in (old, recent):
        pipeline.http("PUT", f"/{prefix}-{day:%Y.%m.%d}", {})
    rows = {
        "INSERT INTO status_events (event_id, station_id, connector_id, status, error_code, ts) "
        "VALUES (:id, 'ST-1', 1, 'Faulted', 'GroundFailure', :ts)": [dict(id=str(uuid.uuid4()), ts=t) for t in (old, recent)],
        "INSERT INTO alerts (id, kind, status, severity, station_id, since, until, message, opened_at) "
        "VALUES (:id, 'connector_fault', :status, 'critical', 'ST-1', :since, :until, 'm', :since)": [
            dict(id="a-old-closed", status="closed", since=now - timedelta(days=500), until=now - timedelta(days=499)),
            dict(id="a-old-open", status="open", since=now - timedelta(days=500), until=None),
            dict(id="a-recent", status="closed", since=recent, until=recent),
        ],
        "INSERT INTO station_presence (station_id, minute, first_ts, last_ts) VALUES ('ST-1', :ts, :ts, :ts)": [
            dict(ts=t.replace(second=0, microsecond=0)) for t in (old, recent)],
        "INSERT INTO station_hourly (station_id, hour_start, sessions_started, sessions_completed, energy_kwh, "
        "revenue_eur, occupied_connector_min, connectors, utilization_pct, computed_at) "
        "VALUES ('ST-1', :hour, 0, 0, 0, 0, 0, 1, 0, :hour)": [dict(hour=now - timedelta(days=500)), dict(hour=recent)],
    }
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            for statement, params in rows.items():
                conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()

    ctx = Context(pipeline.settings)
    try:
        first = do_retention(ctx, now)
        second = do_retention(ctx, now)
    finally:
        ctx.close()
    assert first == {"indices_dropped": [f"{prefix}-{old:%Y.%m.%d}"], "status_events_deleted": 1,
                     "presence_deleted": 1, "alerts_deleted": 1, "hourly_rollups_deleted": 1, "sessions_deleted": 0}  # fmt: skip
    assert second == {"indices_dropped": [], "status_events_deleted": 0, "presence_deleted": 0, "alerts_deleted": 0,
                      "hourly_rollups_deleted": 0, "sessions_deleted": 0}  # fmt: skip
    indices = {i["index"] for i in pipeline.http("GET", "/_cat/indices?format=json")}
    assert f"{prefix}-{recent:%Y.%m.%d}" in indices and f"{prefix}-{old:%Y.%m.%d}" not in indices
    assert [r.id for r in pipeline.sql("SELECT id FROM alerts ORDER BY id")] == ["a-old-open", "a-recent"]
    assert pipeline.sql("SELECT count(*) AS n FROM status_events")[0].n == 1
    assert pipeline.sql("SELECT count(*) AS n FROM station_hourly")[0].n == 1
    assert pipeline.sql("SELECT count(*) AS n FROM station_presence")[0].n == 1
