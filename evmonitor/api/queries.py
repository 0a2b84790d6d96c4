"""Every question operators ask of the stores, in one module: the API, the CLI views and the page share it.

Functions take an open SQLAlchemy `Connection` (or the search client) and plain values, and return
plain values: dicts of JSON-able scalars with `datetime`s in UTC. No route, command or template
holds SQL; a new question is a new function here, tested once.

A station's *board status* is one word an operator reads at a glance, derived in `_BOARD` below:
Faulted (the station or any connector), Offline (silent past the heartbeat allowance), Unavailable,
Charging (any connector in use), else the station's own status, else Available/Unknown.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from evmonitor.storage.search import translate_errors

__all__ = [
    "BOARD_STATUSES",
    "PageCursor",
    "acknowledge_alert",
    "alert_list",
    "board",
    "component_health",
    "consumer_lag",
    "create_token",
    "deadletter_summary",
    "daily_rollups",
    "end_browser_session",
    "hourly_rollups",
    "list_tokens",
    "meter_curve",
    "metrics_counts",
    "pipeline_health",
    "queue_depths",
    "report_list",
    "resolve_alert",
    "revoke_token",
    "session_detail",
    "session_list",
    "start_browser_session",
    "station_detail",
    "station_list",
    "today_counters",
    "token_for_hash",
    "token_hash",
]

BOARD_STATUSES = ("Faulted", "Offline", "Unavailable", "Charging", "Available", "Reserved", "Unknown")
IN_USE = ("Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return value


def _rows(result: sa.CursorResult) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in result]


# --- cursors --------------------------------------------------------------------------------


class PageCursor:
    """An opaque cursor: the sort key of the last row of a page, as url-safe base64 JSON."""

    @staticmethod
    def encode(*key: Any) -> str:
        plain = [k.isoformat() if isinstance(k, datetime) else k for k in key]
        return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")

    @staticmethod
    def decode(cursor: str, arity: int) -> list[Any]:
        """The key inside `cursor`; raises ValueError when it is not one of ours."""
        try:
            key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except Exception as exc:
            raise ValueError("not a cursor from this API") from exc
        if not isinstance(key, list) or len(key) != arity or not all(isinstance(k, (str, int)) for k in key):
            raise ValueError("not a cursor from this API")
        return key


def _cursor_time(value: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(value))
        if at.tzinfo is None:
            raise ValueError
        return at.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError("not a cursor from this API") from None


def _page(rows: list[dict[str, Any]], limit: int, *key_cols: str) -> tuple[list[dict[str, Any]], str | None]:
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, PageCursor.encode(*(rows[-1][c] for c in key_cols))


# --- stations -------------------------------------------------------------------------------

# One row per station with its derived board status; `:offline_before` is now - the allowance.
_BOARD = """
WITH conn AS (
    SELECT station_id,
           bool_or(status = 'Faulted') AS any_faulted,
           bool_or(status IN ('Preparing', 'Charging', 'SuspendedEVSE', 'SuspendedEV', 'Finishing')) AS any_in_use,
           count(*) FILTER (WHERE status = 'Available') AS available,
           jsonb_agg(jsonb_build_object('connector_id', connector_id, 'status', status, 'error_code', error_code)
                     ORDER BY connector_id) AS connectors
    FROM connector_status GROUP BY station_id
), board AS (
    SELECT s.id, s.name, s.operator, s.city, s.latitude, s.longitude, s.max_power_kw, s.connector_count,
           s.price_eur_per_kwh, s.status AS station_status, s.error_code, s.last_seen_at, s.last_heartbeat_at,
           coalesce(c.connectors, '[]'::jsonb) AS connectors,
           CASE WHEN s.status = 'Faulted' OR c.any_faulted THEN 'Faulted'
                WHEN s.last_seen_at < :offline_before THEN 'Offline'
                WHEN s.status = 'Unavailable' THEN 'Unavailable'
                WHEN c.any_in_use THEN 'Charging'
                WHEN s.status IN ('Available', 'Reserved') THEN s.status
                WHEN c.available > 0 THEN 'Available'
                ELSE 'Unknown' END AS status
    FROM charging_stations s LEFT JOIN conn c ON c.station_id = s.id
)
"""


def station_list(conn: sa.Connection, *, offline_before: datetime, status: str | None = None,
                 operator: str | None = None, city: str | None = None, q: str | None = None,
                 limit: int = 100, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """Stations by id, filtered; returns (page, cursor of the next page or None)."""
    where, params = ["TRUE"], {"offline_before": offline_before, "limit": limit + 1}
    if status:
        where.append("status = :status")
        params["status"] = status
    if operator:
        where.append("operator = :operator")
        params["operator"] = operator
    if city:
        where.append("city = :city")
        params["city"] = city
    if q:
        where.append("(id ILIKE :q OR name ILIKE :q OR coalesce(operator, '') ILIKE :q OR coalesce(city, '') ILIKE :q)")
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if cursor:
        (after,) = PageCursor.decode(cursor, 1)
        where.append("id > :after")
        params["after"] = str(after)
    sql = _BOARD + f"SELECT * FROM board WHERE {' AND '.join(where)} ORDER BY id LIMIT :limit"
    return _page(_rows(conn.execute(sa.text(sql), params)), limit, "id")


def station_detail(conn: sa.Connection, station_id: str, *, offline_before: datetime,
                   day_start: datetime) -> dict[str, Any] | None:  # fmt: skip
    """One station, its connectors, open alerts and today's sessions and kWh; None if unknown."""
    found = _rows(conn.execute(sa.text(_BOARD + "SELECT * FROM board WHERE id = :id"),
                               {"id": station_id, "offline_before": offline_before}))  # fmt: skip
    if not found:
        return None
    station = found[0]
    station["connectors"] = _rows(conn.execute(sa.text(
        "SELECT connector_id, status, error_code, info, status_at FROM connector_status "
        "WHERE station_id = :id ORDER BY connector_id"), {"id": station_id}))  # fmt: skip
    station["open_alerts"] = alert_list(conn, status="open", station_id=station_id, limit=100)[0]
    today = conn.execute(sa.text(
        "SELECT count(*) AS sessions, coalesce(sum(energy_delivered_kwh), 0) AS energy_kwh, "
        "coalesce(sum(cost_eur), 0) AS revenue_eur FROM charging_sessions "
        "WHERE station_id = :id AND start_time >= :day_start"), {"id": station_id, "day_start": day_start}).one()  # fmt: skip
    station["today"] = {k: _plain(v) for k, v in today._mapping.items()}
    return station


# --- the board (the live page) --------------------------------------------------------------


def today_counters(conn: sa.Connection, day_start: datetime) -> dict[str, Any]:
    """Sessions running now, done since `day_start`, and kWh and EUR of sessions started since then."""
    row = conn.execute(sa.text("""
        SELECT (SELECT count(*) FROM charging_sessions WHERE status = 'active') AS sessions_running,
               count(*) FILTER (WHERE end_time >= :day_start) AS sessions_done,
               coalesce(sum(energy_delivered_kwh) FILTER (WHERE start_time >= :day_start), 0) AS energy_kwh,
               coalesce(sum(cost_eur) FILTER (WHERE start_time >= :day_start), 0) AS revenue_eur
        FROM charging_sessions WHERE start_time >= :day_start OR end_time >= :day_start
    """), {"day_start": day_start}).one()  # fmt: skip
    return {k: _plain(v) for k, v in row._mapping.items()}


def board(conn: sa.Connection, *, offline_before: datetime, day_start: datetime, now: datetime) -> dict[str, Any]:
    """Everything the live page shows: counters, every station, open alerts, pipeline health."""
    stations = _rows(conn.execute(sa.text(_BOARD + "SELECT id, name, operator, city, status, connectors, last_seen_at "
                                                   "FROM board ORDER BY id"), {"offline_before": offline_before}))  # fmt: skip
    by_status: dict[str, int] = {}
    for s in stations:
        by_status[s["status"]] = by_status.get(s["status"], 0) + 1
    return {
        "generated_at": now,
        "counters": today_counters(conn, day_start),
        "stations_by_status": by_status,
        "stations": stations,
        "open_alerts": alert_list(conn, status="open", limit=50)[0],
        "pipeline": pipeline_health(conn, now=now),
    }


# --- sessions -------------------------------------------------------------------------------

_SESSION_COLUMNS = """id::text AS id, station_id, connector_id, status, start_time, end_time, meter_start_wh,
    meter_max_wh, meter_stop_wh, price_eur_per_kwh, energy_delivered_kwh, cost_eur, held_reason, stop_reason, power_kw,
    soc_percent, last_event_at"""


def _session_filters(station_id: str | None, status: str | None, since: datetime | None,
                     until: datetime | None) -> tuple[list[str], dict[str, Any]]:  # fmt: skip
    where, params = ["TRUE"], {}
    if station_id:
        where.append("station_id = :station_id")
        params["station_id"] = station_id
    if status:
        where.append("status = :status")
        params["status"] = status
    if since:
        where.append("start_time >= :since")
        params["since"] = since
    if until:
        where.append("start_time < :until")
        params["until"] = until
    return where, params


def session_list(conn: sa.Connection, *, station_id: str | None = None, status: str | None = None,
                 since: datetime | None = None, until: datetime | None = None, limit: int = 100,
                 cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """Sessions, newest start first; filters by station, status and a start-time range."""
    where, params = _session_filters(station_id, status, since, until)
    if cursor:
        at, sid = PageCursor.decode(cursor, 2)
        where.append("(start_time, id::text) < (:c_at, :c_id)")
        params.update(c_at=_cursor_time(at), c_id=str(sid))
    params["limit"] = limit + 1
    sql = (f"SELECT {_SESSION_COLUMNS} FROM charging_sessions WHERE {' AND '.join(where)} "
           "ORDER BY start_time DESC, id::text DESC LIMIT :limit")  # fmt: skip
    return _page(_rows(conn.execute(sa.text(sql), params)), limit, "start_time", "id")


def session_rows(conn: sa.Connection, *, station_id: str | None = None, status: str | None = None,
                 since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Every session matching the filters, streamed from a server-side cursor (for CSV export)."""
    where, params = _session_filters(station_id, status, since, until)
    sql = f"SELECT {_SESSION_COLUMNS} FROM charging_sessions WHERE {' AND '.join(where)} ORDER BY start_time, id"
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(sa.text(sql), params)
    for row in result:
        yield {k: _plain(v) for k, v in row._mapping.items()}


def session_detail(conn: sa.Connection, session_id: str) -> dict[str, Any] | None:
    found = _rows(conn.execute(sa.text(f"SELECT {_SESSION_COLUMNS} FROM charging_sessions WHERE id::text = :id"),
                               {"id": session_id}))  # fmt: skip
    return found[0] if found else None


def meter_curve(search: Any, index_prefix: str, session_id: str, *, limit: int = 2000) -> list[dict[str, Any]]:
    """The session's meter readings from the event log (`<prefix>*`), oldest first.

    Each point: timestamp, event_type, meter_wh (the register: start, reading or stop), power_kw.
    Raises `TransientError` when the search server cannot be reached.
    """
    with translate_errors():
        response = search.search(index=f"{index_prefix}*", query={"term": {"session_id": session_id}},
                                 size=limit, sort=[{"timestamp": {"order": "asc"}}])  # fmt: skip
    points = []
    for hit in response["hits"]["hits"]:
        doc = hit["_source"]
        meter = doc.get("meter_wh", doc.get("meter_start_wh", doc.get("meter_stop_wh")))
        points.append({"timestamp": datetime.fromisoformat(str(doc["timestamp"]).replace("Z", "+00:00")).astimezone(timezone.utc),
                       "event_type": doc.get("event_type"), "meter_wh": meter, "power_kw": doc.get("power_kw")})  # fmt: skip
    points.sort(key=lambda p: p["timestamp"])
    return points


# --- alerts ---------------------------------------------------------------------------------

_ALERT_COLUMNS = """id, kind, status, severity, station_id, connector_id, session_id::text AS session_id, error_code,
    info, since, until, message, opened_at, closed_at, acknowledged_at, acknowledged_by, resolved_by"""


def alert_list(conn: sa.Connection, *, status: str | None = None, station_id: str | None = None,
               limit: int = 100, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """Alerts, newest first (`status`: open or closed; superseded ones are never shown)."""
    where, params = ["status <> 'superseded'"], {"limit": limit + 1}
    if status:
        where.append("status = :status")
        params["status"] = status
    if station_id:
        where.append("station_id = :station_id")
        params["station_id"] = station_id
    if cursor:
        at, aid = PageCursor.decode(cursor, 2)
        where.append("(since, id) < (:c_at, :c_id)")
        params.update(c_at=_cursor_time(at), c_id=str(aid))
    sql = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)} ORDER BY since DESC, id DESC LIMIT :limit"
    return _page(_rows(conn.execute(sa.text(sql), params)), limit, "since", "id")


def acknowledge_alert(conn: sa.Connection, alert_id: str, by: str) -> dict[str, Any] | None:
    """Mark an alert seen by `by` (first acknowledgement sticks); None if there is no such alert."""
    found = _rows(conn.execute(sa.text(
        "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, now()), "
        "acknowledged_by = coalesce(acknowledged_by, :by) WHERE id = :id AND status <> 'superseded' "
        f"RETURNING {_ALERT_COLUMNS}"), {"id": alert_id, "by": by}))  # fmt: skip
    return found[0] if found else None


def resolve_alert(conn: sa.Connection, alert_id: str, by: str) -> dict[str, Any] | None:
    """Close an alert by hand. Beat opens a new alert if the condition is still there."""
    found = _rows(conn.execute(sa.text(
        "UPDATE alerts SET status = 'closed', closed_at = coalesce(closed_at, now()), "
        "until = coalesce(until, greatest(since, now())), resolved_by = coalesce(resolved_by, :by), "
        "version = version + CASE WHEN status = 'open' THEN 1 ELSE 0 END "
        f"WHERE id = :id AND status <> 'superseded' RETURNING {_ALERT_COLUMNS}"), {"id": alert_id, "by": by}))  # fmt: skip
    return found[0] if found else None


# --- rollups and reports --------------------------------------------------------------------


def hourly_rollups(conn: sa.Connection, *, station_id: str | None, since: datetime, until: datetime,
                   limit: int = 1000) -> list[dict[str, Any]]:  # fmt: skip
    """`station_hourly` rows in [since, until), per station or summed over the network."""
    if station_id:
        sql = ("SELECT hour_start, sessions_started, sessions_completed, energy_kwh, revenue_eur, utilization_pct "
               "FROM station_hourly WHERE station_id = :station_id AND hour_start >= :since AND hour_start < :until "
               "ORDER BY hour_start LIMIT :limit")  # fmt: skip
    else:
        sql = ("SELECT hour_start, sum(sessions_started)::int AS sessions_started, "
               "sum(sessions_completed)::int AS sessions_completed, sum(energy_kwh) AS energy_kwh, "
               "sum(revenue_eur) AS revenue_eur, round(100 * sum(occupied_connector_min) / "
               "nullif(sum(connectors) * 60, 0), 2) AS utilization_pct FROM station_hourly "
               "WHERE hour_start >= :since AND hour_start < :until GROUP BY hour_start ORDER BY hour_start LIMIT :limit")
    params = {"station_id": station_id, "since": since, "until": until, "limit": limit}
    rows = _rows(conn.execute(sa.text(sql), params))
    for row in rows:
        row["utilization_pct"] = row["utilization_pct"] or 0.0
    return rows


def daily_rollups(conn: sa.Connection, *, scope: str, key: str | None, since: date, until: date,
                  limit: int = 1000) -> list[dict[str, Any]]:  # fmt: skip
    """`daily_rollups` rows of one scope (network, operator, city, station) in [since, until)."""
    sql = ("SELECT day, scope, key, stations, connectors, sessions_started, sessions_completed, energy_kwh, "
           "revenue_eur, utilization_pct, timezone FROM daily_rollups WHERE scope = :scope AND day >= :since "
           "AND day < :until" + (" AND key = :key" if key else "") + " ORDER BY day, key LIMIT :limit")  # fmt: skip
    return _rows(conn.execute(sa.text(sql), {"scope": scope, "key": key, "since": since, "until": until, "limit": limit}))


def report_list(conn: sa.Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    return _rows(conn.execute(sa.text(
        "SELECT day, kind, timezone, html_path, csv_path, stations, sessions_started, energy_kwh, revenue_eur, "
        "generated_at FROM reports ORDER BY day DESC, kind LIMIT :limit"), {"limit": limit}))  # fmt: skip


# --- pipeline health ------------------------------------------------------------------------


def pipeline_health(conn: sa.Connection, *, now: datetime) -> dict[str, Any]:
    """What PostgreSQL says of the pipeline: the last write of an event's fold, batches not yet
    settled per sink (the bridge deletes a batch's markers once it commits past it), open alerts."""
    last = conn.execute(sa.text(
        "SELECT (SELECT max(updated_at) FROM charging_sessions) AS sessions_at, "
        "(SELECT max(updated_at) FROM charging_stations) AS stations_at")).one()  # fmt: skip
    writes = [t for t in last if t is not None]
    last_write_at = _plain(max(writes)) if writes else None
    sinks = _rows(conn.execute(sa.text(
        "SELECT sink, max(completed_at) AS last_batch_at, count(*) AS batches_unsettled "
        "FROM ingest_batches GROUP BY sink ORDER BY sink")))  # fmt: skip
    alerts = {r["kind"]: r["n"] for r in _rows(conn.execute(sa.text(
        "SELECT kind, count(*) AS n FROM alerts WHERE status = 'open' GROUP BY kind ORDER BY kind")))}  # fmt: skip
    idle_s = None if last_write_at is None else max(0.0, (now - last_write_at).total_seconds())
    return {"last_write_at": last_write_at, "idle_s": idle_s, "sinks": sinks, "open_alerts_by_kind": alerts}


def consumer_lag(bootstrap: str, group: str, topics: list[str], *, timeout_ms: int = 3000) -> list[dict[str, Any]]:
    """Per partition of `topics`: the group's committed offset, the log end and the lag (without joining the group).

    Raises `TransientError` when Kafka does not answer in time.
    """
    from kafka import KafkaConsumer, TopicPartition

    from evmonitor.storage.kafka import translate_errors as kafka_errors

    with kafka_errors():
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                 request_timeout_ms=max(timeout_ms, 1000))  # fmt: skip
        try:
            tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            ends = consumer.end_offsets(tps) if tps else {}
            rows = []
            for tp in tps:
                committed = consumer.committed(tp) or 0
                rows.append({"topic": tp.topic, "partition": tp.partition, "committed": committed,
                             "end": ends.get(tp, 0), "lag": max(0, ends.get(tp, 0) - committed)})  # fmt: skip
            return rows
        finally:
            consumer.close(autocommit=False)


def queue_depths(broker_url: str, key_prefix: str, queues: list[str]) -> dict[str, int]:
    """Tasks waiting in each Celery queue of this stack (Redis lists named prefix + queue)."""
    import redis

    from evmonitor.errors import TransientError

    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return {q: int(client.llen(key_prefix + q)) for q in queues}
    except redis.RedisError as exc:
        raise TransientError(f"redis: {exc}") from exc
    finally:
        client.close()


def deadletter_summary(search: Any, index: str, *, latest: int = 10) -> dict[str, Any]:
    """Dead letters beat has indexed (`charging-deadletters`): counts by reason and the latest few."""
    with translate_errors():
        if not search.indices.exists(index=f"{index}*"):
            return {"by_reason": {}, "latest": []}
        response = search.search(index=f"{index}*", size=latest, sort=[{"received_at": {"order": "desc"}}],
                                 aggs={"reasons": {"terms": {"field": "reason", "size": 100}}})  # fmt: skip
    by_reason = {b["key"]: b["doc_count"] for b in response["aggregations"]["reasons"]["buckets"]}
    rows = []
    for hit in response["hits"]["hits"]:
        doc = hit["_source"]
        rows.append({"reason": doc.get("reason"), "detail": doc.get("detail"), "source_topic": doc.get("source_topic"),
                     "source_partition": doc.get("source_partition"), "source_offset": doc.get("source_offset"),
                     "station_id": doc.get("station_id"), "received_at": doc.get("received_at")})  # fmt: skip
    return {"by_reason": by_reason, "latest": rows}


def component_health(settings: Any, celery: Any, *, reached: dict[str, str | None],
                     inspect_timeout_s: float = 1.0) -> tuple[list[dict[str, Any]], int | None]:  # fmt: skip
    """Each part of the pipeline: up, down or unknown, with a one-line detail; and the bridges' batches in
    flight (published, not yet in every sink), as their heartbeats say (None without a live bridge).

    `reached` holds what the caller already asked of the stores: name -> None (it answered) or the
    error. Redis is pinged here; then the bridge, beat and gateway by their heartbeats in Redis
    (`evmonitor.heartbeat`), and the workers of each queue by Celery's inspect over the broker
    (`inspect_timeout_s`, through the Celery app `celery`). Without Redis those are unknown: nothing
    here can ask them.
    """
    import redis

    from evmonitor.heartbeat import TTL_S, read_heartbeats
    from evmonitor.names import Queue

    labels = {"postgresql": "PostgreSQL", "kafka": "Kafka", "search": "search server"}
    parts = [{"name": name, "status": "up" if error is None else "down",
              "detail": f"{labels.get(name, name)} answers" if error is None else error[:300]}
             for name, error in reached.items()]  # fmt: skip
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
        beats = read_heartbeats(client, settings.broker_key_prefix)
    except redis.RedisError as exc:
        parts.append({"name": "redis", "status": "down", "detail": f"broker: {exc}"[:300]})
        unknown = "unknown: the broker (Redis) does not answer"
        return parts + [{"name": n, "status": "unknown", "detail": unknown}
                        for n in ("bridge", "beat", "gateway", *(f"worker {q}" for q in Queue))], None  # fmt: skip
    finally:
        client.close()
    parts.append({"name": "redis", "status": "up", "detail": "broker answers"})
    for role in ("bridge", "beat", "gateway"):
        alive = beats.get(role, [])
        detail = ", ".join(f"{b['host']} pid {b['pid']} ({b['age_s']:.0f} s ago)" for b in alive)
        parts.append({"name": role, "status": "up" if alive else "down",
                      "detail": f"heartbeat from {detail}" if alive else f"no heartbeat in the last {TTL_S} s"})  # fmt: skip
    try:
        replies = celery.control.inspect(timeout=inspect_timeout_s).active_queues() or {}
    except Exception as exc:  # the broker went away between the ping and the broadcast
        replies, failed = {}, str(exc)
    else:
        failed = ""
    for queue in Queue:
        nodes = sorted(node for node, queues in replies.items() if any(q.get("name") == queue for q in queues))
        parts.append({"name": f"worker {queue}", "status": "up" if nodes else ("unknown" if failed else "down"),
                      "detail": ("answered: " + ", ".join(nodes)) if nodes else
                      (failed[:300] or f"no worker consumes queue {queue} (none answered within {inspect_timeout_s:g} s)")})  # fmt: skip
    bridges = beats.get("bridge", [])
    return parts, (sum(int(b.get("batches_in_flight", 0)) for b in bridges) if bridges else None)


def metrics_counts(conn: sa.Connection, *, offline_before: datetime) -> dict[str, Any]:
    """The gauges the API exports on /metrics: stations by board status, sessions by status, open alerts."""
    stations = {r["status"]: r["n"] for r in _rows(conn.execute(sa.text(
        _BOARD + "SELECT status, count(*) AS n FROM board GROUP BY status"), {"offline_before": offline_before}))}
    sessions = {r["status"]: r["n"] for r in _rows(conn.execute(sa.text(
        "SELECT status, count(*) AS n FROM charging_sessions GROUP BY status")))}
    alerts = {(r["kind"], r["severity"]): r["n"] for r in _rows(conn.execute(sa.text(
        "SELECT kind, severity, count(*) AS n FROM alerts WHERE status = 'open' GROUP BY kind, severity")))}
    batches = {r["sink"]: r["n"] for r in _rows(conn.execute(sa.text(
        "SELECT sink, count(*) AS n FROM ingest_batches GROUP BY sink")))}
    return {"stations": stations, "sessions": sessions, "alerts_open": alerts, "batches_unsettled": batches}


# --- tokens and browser sessions ------------------------------------------------------------


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(conn: sa.Connection, name: str, scope: str) -> tuple[dict[str, Any], str]:
    """A new token: (its row, the secret). The secret is returned here once and stored only hashed."""
    secret = "evm_" + secrets.token_urlsafe(32)
    row = conn.execute(sa.text(
        "INSERT INTO api_tokens (name, scope, token_sha256, prefix) VALUES (:name, :scope, :hash, :prefix) "
        "RETURNING id, name, scope, prefix, created_at, last_used_at, revoked_at"),
        {"name": name, "scope": scope, "hash": token_hash(secret), "prefix": secret[:10]}).one()  # fmt: skip
    return {k: _plain(v) for k, v in row._mapping.items()}, secret


def list_tokens(conn: sa.Connection) -> list[dict[str, Any]]:
    return _rows(conn.execute(sa.text(
        "SELECT id, name, scope, prefix, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id")))


def revoke_token(conn: sa.Connection, ident: str) -> int:
    """Revoke tokens by id or name; return how many were live. Their browser sessions end too."""
    by_id = ident.isdigit()
    result = conn.execute(sa.text(
        "UPDATE api_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND "
        + ("id = :ident" if by_id else "name = :ident") + " RETURNING id"), {"ident": int(ident) if by_id else ident})
    ids = [r.id for r in result]
    if ids:
        conn.execute(sa.text("DELETE FROM api_browser_sessions WHERE token_id = ANY(:ids)"), {"ids": ids})
    return len(ids)


def token_for_hash(conn: sa.Connection, *, token_sha256: str | None = None,
                   session_sha256: str | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The live token with this hash (or behind this browser session), touching last_used_at; or None."""
    if token_sha256 is not None:
        sql = ("UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = :h AND revoked_at IS NULL "
               "RETURNING id, name, scope")
        params = {"h": token_sha256}
    else:
        sql = ("UPDATE api_tokens t SET last_used_at = now() FROM api_browser_sessions b WHERE b.id_sha256 = :h "
               "AND b.token_id = t.id AND b.expires_at > now() AND t.revoked_at IS NULL RETURNING t.id, t.name, t.scope")
        params = {"h": session_sha256}
    found = _rows(conn.execute(sa.text(sql), params))
    return found[0] if found else None


def start_browser_session(conn: sa.Connection, token_id: int, ttl: timedelta) -> str:
    """A new browser session for a live token; returns the cookie value (kept only hashed)."""
    session = secrets.token_urlsafe(32)
    conn.execute(sa.text("DELETE FROM api_browser_sessions WHERE expires_at < now()"))
    conn.execute(sa.text("INSERT INTO api_browser_sessions (id_sha256, token_id, expires_at) "
                         "VALUES (:h, :t, now() + :ttl)"), {"h": token_hash(session), "t": token_id, "ttl": ttl})  # fmt: skip
    return session


def end_browser_session(conn: sa.Connection, session: str) -> None:
    conn.execute(sa.text("DELETE FROM api_browser_sessions WHERE id_sha256 = :h"), {"h": token_hash(session)})
