"""The persist path's statements: prepared once per connection, locks from keys, the completion marker."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from evmonitor.contract import decode
from evmonitor.fold import fold_columns
from evmonitor.storage.marks import KEY_LOCKS
from evmonitor.storage.postgres import PostgresStore
from tests.factories import encode, session_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def good_events(station_id: str = "ST-1") -> list[dict]:
    events = session_events(start=NOW - timedelta(minutes=30), station_id=station_id)
    return [decode(encode(e), received_at=NOW).to_wire() for e in events]


def marker(store: PostgresStore, batch_id: str) -> tuple[int, int] | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT events, rejected FROM ingest_batches WHERE batch_id = :b"), {"b": batch_id}).first()
    return None if row is None else (row.events, row.rejected)


def test_a_batch_that_lands_whole_writes_its_completion_marker_with_its_rows(pipeline):
    """`write_and_mark_done` records the batch complete when nothing is refused, counting its events."""
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    events, batch_id = good_events(), str(uuid.uuid4())
    assert store.write_and_mark_done(events, batch_id, "persist") == []
    assert marker(store, batch_id) == (len(events), 0)
    assert store.completed([batch_id]) == {batch_id: {"persist"}}
    store.engine.dispose()


def test_a_batch_with_a_poison_event_leaves_its_marker_to_the_caller(pipeline):
    """With a refused event the good ones land and no marker is written: the caller dead-letters first."""
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    good = good_events()
    poison = dict(good[1], event_id=str(uuid.uuid4()), session_id=str(uuid.uuid4()), meter_wh=2**63 + 5)  # > bigint
    batch_id = str(uuid.uuid4())
    rejected = store.write_and_mark_done([*good, poison], batch_id, "persist")
    assert [r.event["event_id"] for r in rejected] == [poison["event_id"]]
    assert marker(store, batch_id) is None
    assert pipeline.sql("SELECT id::text AS id FROM charging_sessions")[0].id == good[0]["session_id"]
    store.engine.dispose()


def test_the_locks_taken_from_keys_are_the_locks_taken_from_the_rows(pipeline):
    """The locks from the fold's keys, from the keys read back from the rows and from other UUID spellings are the same."""
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    events = good_events("ST-A") + good_events("st-b ü")
    columns = fold_columns(events)
    keys, rows = store.lock_keys(columns), store.column_rows(columns)
    upper = {**keys, "session_ids": [k.upper() for k in keys["session_ids"]]}  # a uuid in other spelling
    taken = []
    for statement, params in ((KEY_LOCKS, store.row_keys(rows)), (KEY_LOCKS, keys), (KEY_LOCKS, upper)):
        with store.engine.begin() as conn:
            conn.exec_driver_sql(statement, params)
            taken.append(set(conn.execute(sa.text(
                "SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
                "AND pid = pg_backend_pid()")).all()))  # fmt: skip
    assert len(taken[0]) == len(json.loads(rows["charging_stations"])) + len(json.loads(rows["charging_sessions"])) == 4
    assert taken[0] == taken[1] == taken[2]
    store.engine.dispose()


def test_statements_are_prepared_again_on_a_new_connection(pipeline):
    """A connection the server dropped is replaced, and the next batch prepares its statements again."""
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url, pool_size=1, max_overflow=0)
    store.write(good_events("ST-1"))
    with store.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar() >= 5
    pipeline.sql("SELECT pg_terminate_backend(:p)", p=before)
    assert store.write(good_events("ST-2")) == []
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != before
    assert {r.station_id for r in pipeline.sql("SELECT DISTINCT station_id FROM charging_sessions")} == {"ST-1", "ST-2"}
    store.engine.dispose()
