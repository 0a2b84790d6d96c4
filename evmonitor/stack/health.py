"""`evmonitor status`'s data health: is the pipeline keeping up, and is anything wrong with the data?

    consumer lag     records in the event topics the bridge group has not committed yet
    newest event     how long ago the newest station message happened (event time)
    dead letters     records on the dead-letter topic
    open alerts      alerts beat has open
    judged at        how far behind the wall clock beat's judgments are (the event-time watermark)
    notifications    the channels alerts are sent to (or off), and deliveries pending or given up

Each figure is read with short timeouts; one that cannot be read says why instead of failing
the whole status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from evmonitor.config import Settings
from evmonitor.names import EVENT_TOPICS

__all__ = ["data_health", "log_end_offsets"]


def log_end_offsets(settings: Settings, topics: list[str], timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
    """Each partition's log end offset, from fetch responses (`highwater`; tansu's ListOffsets is unreliable)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                             request_timeout_ms=int(timeout_s * 1000) + 1000, max_poll_records=1)  # fmt: skip
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            return {}
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in partitions):
            consumer.poll(timeout_ms=200)
        return {(tp.topic, tp.partition): consumer.highwater(tp) or 0 for tp in partitions}
    finally:
        consumer.close(autocommit=False)


def _consumer_lag(settings: Settings) -> str:
    ends = log_end_offsets(settings, [str(t) for t in EVENT_TOPICS])
    group = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group,
                          enable_auto_commit=False, request_timeout_ms=6000)  # fmt: skip
    try:
        behind = {tp: end - (group.committed(TopicPartition(*tp)) or 0) for tp, end in ends.items()}
    finally:
        group.close(autocommit=False)
    total = sum(max(0, n) for n in behind.values())
    worst = max(behind.items(), key=lambda item: item[1], default=None)
    detail = f" (most on {worst[0][0]}[{worst[0][1]}]: {worst[1]:,})" if worst and worst[1] > 0 else ""
    return f"{total:,} records{detail}"


def _deadletters(settings: Settings) -> str:
    return f"{sum(log_end_offsets(settings, [settings.deadletter_topic]).values()):,} records"


def _sql(settings: Settings, query: str) -> Any:
    engine = sa.create_engine(settings.sqlalchemy_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar()
    finally:
        engine.dispose()


def _newest_event(settings: Settings, now: datetime) -> str:
    newest = _sql(settings, "SELECT max(last_seen_at) FROM charging_stations")
    if newest is None:
        return "no events yet"
    age_s = (now - newest).total_seconds()
    return f"{age_s:,.0f} s ago ({newest.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"


def _open_alerts(settings: Settings) -> str:
    rows = _sql(settings, "SELECT coalesce(json_object_agg(kind, n), '{}') FROM "
                          "(SELECT kind, count(*) AS n FROM alerts WHERE status = 'open' GROUP BY kind) k")  # fmt: skip
    total = sum(rows.values())
    return f"{total}" + (f" ({', '.join(f'{k}: {n}' for k, n in sorted(rows.items()))})" if total else "")


def _judged_at(settings: Settings, now: datetime) -> str:
    from beat.watermark import judgment_time

    engine = sa.create_engine(settings.sqlalchemy_url, connect_args={"connect_timeout": 3})
    try:
        judged = judgment_time(engine, now)
    finally:
        engine.dispose()
    if judged is None:
        return "waiting: a partition has processed nothing yet"
    return f"{(now - judged).total_seconds():,.0f} s behind the wall clock ({judged:%Y-%m-%d %H:%M:%S} UTC)"


def _notifications(settings: Settings) -> str:
    from beat.notify import channels

    names = [c.name for c in channels(settings)]
    if not names:
        return "off (set EVMON_NOTIFY_WEBHOOK_URL or EVMON_NOTIFY_EMAIL_TO)"
    rows = _sql(settings, "SELECT json_build_object('pending', count(*) FILTER (WHERE gave_up_at IS NULL), "
                          "'given up', count(*) FILTER (WHERE gave_up_at IS NOT NULL)) "
                          "FROM alert_deliveries WHERE delivered_at IS NULL")  # fmt: skip
    return f"{', '.join(names)}; {rows['pending']} pending, {rows['given up']} given up"


def data_health(settings: Settings, now: datetime | None = None) -> list[tuple[str, str]]:
    """(figure, value) rows; a figure that cannot be read shows why."""
    now = now or datetime.now(timezone.utc)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("consumer lag", lambda: _consumer_lag(settings)),
        ("newest event", lambda: _newest_event(settings, now)),
        ("dead letters", lambda: _deadletters(settings)),
        ("open alerts", lambda: _open_alerts(settings)),
        ("judged at", lambda: _judged_at(settings, now)),
        ("notifications", lambda: _notifications(settings)),
    ]
    rows = []
    for name, check in checks:
        try:
            rows.append((name, check()))
        except Exception as exc:  # noqa: BLE001 - a status line, not a crash: say what failed
            rows.append((name, f"unknown ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"))
    return rows
