"""A batch whose locks do not fit in PostgreSQL's lock table lands in parts, exactly (issue 15).

Larger batches cost PostgreSQL less per event, and take one advisory lock per distinct station and
session. The lock table is shared by the server's sessions (`max_locks_per_transaction` x
`max_connections`): a private server with a tiny one shows the persist path writing such a batch
in smaller transactions instead of failing it forever, with the rows, beat's marks and the one
completion marker that the same batch gives in one transaction on a server with room.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from evmonitor.contract import decode
from evmonitor.stack.embedded import start_postgres
from evmonitor.stack.procs import free_port, stop
from evmonitor.storage.postgres import LockTableFull, PostgresStore
from tests.factories import NOW, encode, session_events
from tests.integration.conftest import ADMIN_URL

SQL = Path(__file__).parents[2] / "sql"

# the smallest lock table a server takes: 10 locks x (5 connections + 1 autovacuum worker + 1)
TINY_LOCK_TABLE = {"max_locks_per_transaction": "10", "max_connections": "5", "autovacuum_max_workers": "1",
                   "max_worker_processes": "0", "max_wal_senders": "0", "max_prepared_transactions": "0"}  # fmt: skip

# what the comparison reads: every table the persist path writes, and beat's marks as what they
# tell beat (the hours to roll up; per station, the earliest time to redraw from)
QUERIES = {
    "sessions": "SELECT id, station_id, start_time, end_time, status, energy_delivered_kwh, cost_eur, held_reason "
                "FROM charging_sessions ORDER BY id",
    "stations": "SELECT id, first_seen_at, last_seen_at, connector_count FROM charging_stations ORDER BY id",
    "connectors": "SELECT * FROM connector_status ORDER BY station_id, connector_id",
    "status": "SELECT event_id, station_id, ts FROM status_events ORDER BY event_id",
    "presence": "SELECT * FROM station_presence ORDER BY station_id, minute",
    "rollup_marks": "SELECT DISTINCT station_id, hour_start FROM rollup_marks ORDER BY 1, 2",
    "fault_marks": "SELECT station_id, min(since) FROM fault_marks GROUP BY 1 ORDER BY 1",
    "ledger_marks": "SELECT station_id, min(since) FROM ledger_marks GROUP BY 1 ORDER BY 1",
    "presence_marks": "SELECT station_id, min(since) FROM presence_marks GROUP BY 1 ORDER BY 1",
    "done": "SELECT batch_id, sink, events, rejected FROM ingest_batches ORDER BY 1, 2",
}  # fmt: skip


def _batch() -> list[dict]:
    """1,500 events: 500 sessions, each on its own station (1,000 locks), a boot for every fifth."""
    events = []
    for i in range(500):
        station = f"ST-{i:04d}"
        start = NOW - timedelta(hours=2, minutes=i % 90)
        events += session_events(str(uuid.UUID(int=i + 1)), station_id=station, start=start, readings=[1_000 + i])[:2]
        events += session_events(str(uuid.UUID(int=i + 1)), station_id=station, start=start, readings=[1_000 + i])[-1:]
    return [decode(encode(e), received_at=NOW).to_wire() for e in events]


def _contents(store: PostgresStore) -> dict[str, list[tuple]]:
    with store.engine.connect() as conn:
        return {name: [tuple(row) for row in conn.exec_driver_sql(sql)] for name, sql in QUERIES.items()}


@pytest.fixture
def tiny_lock_table_server():
    state = Path(tempfile.mkdtemp(prefix="evmonitor-locks-"))
    state.chmod(0o755)  # the unprivileged server (when we are root) keeps its data inside
    port = free_port()
    proc = start_postgres(port, state)
    try:
        admin = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name, value in TINY_LOCK_TABLE.items():
                conn.exec_driver_sql(f"ALTER SYSTEM SET {name} = {value}")
        admin.dispose()
        assert stop(proc, timeout_s=20)
        proc = start_postgres(port, state)  # the lock table's size is fixed at start
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop(proc, timeout_s=20)
        home = Path(proc.cmd[proc.cmd.index("-D") + 1]).parent
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def roomy_database(pg_admin):
    name = f"evm_locks_{uuid.uuid4().hex[:10]}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_batch_beyond_the_lock_table_lands_in_parts_as_it_lands_whole(tiny_lock_table_server, roomy_database, caplog):
    events = _batch()
    batch_id = str(uuid.uuid4())
    tiny = PostgresStore.connect(tiny_lock_table_server, SQL)
    roomy = PostgresStore.connect(roomy_database, SQL)
    try:
        with pytest.raises(LockTableFull):  # whole, it does not fit: the case under test is real
            tiny.write_rows(*_rows_and_keys(tiny, events))
        with caplog.at_level(logging.WARNING, logger="evmonitor.storage.postgres"):
            assert tiny.write_and_mark_done(events, batch_id, "persist") == []
        assert "max_locks_per_transaction" in caplog.text and "EVMON_BATCH_MAX_EVENTS" in caplog.text
        assert roomy.write_and_mark_done(events, batch_id, "persist") == []
        in_parts, whole = _contents(tiny), _contents(roomy)
        assert len(whole["sessions"]) == 500 and whole["done"] == [(uuid.UUID(batch_id), "persist", 1500, 0)]
        assert all(row[5] is not None for row in whole["sessions"])  # every session billed
        assert in_parts == whole
        # and again: a retry after the parts (a worker killed before its ack) changes nothing
        assert tiny.write_and_mark_done(events, batch_id, "persist") == []
        again = _contents(tiny)
        assert {k: v for k, v in again.items() if not k.endswith("_marks")} == {
            k: v for k, v in whole.items() if not k.endswith("_marks")
        }
    finally:
        tiny.engine.dispose()
        roomy.engine.dispose()


def _rows_and_keys(store: PostgresStore, events: list[dict]) -> tuple[dict[str, str], dict[str, list[str]]]:
    from evmonitor.fold import fold_columns

    columns = fold_columns(events)
    return store.column_rows(columns), store.lock_keys(columns)
