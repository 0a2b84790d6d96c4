"""PostgreSQL through SQLAlchemy: schema, folded upserts, batch completion markers.

The upserts are generated from the rules of `evmonitor.fold.rules`, the same table the Python
fold is generated from (`evmonitor.storage.upsert`). So replaying or reordering events cannot
change a row, and a batch merged here gives the row `evmonitor.fold` computes for everything.
Rows of one statement are sorted by key so that concurrent writers lock rows in the same order
and cannot deadlock each other.

Each table's rows travel as one JSON array in one statement
(`INSERT ... SELECT ... FROM json_populate_recordset(...) ORDER BY key ON CONFLICT ...`):
SQLAlchemy cannot batch an `ON CONFLICT DO UPDATE` executemany into multi-row VALUES, so a
batch of 500 events used to cost ~600 round trips; now it costs four. A batch folds to one
row per key, so no statement touches a row twice. The statements are prepared once per
connection (`evmonitor.storage.prepared`): a batch does not parse and plan them again.

Beat's marks are written with the rows, in the same transaction, by set-based statements
(`evmonitor.storage.marks`: no trigger on these tables).

Errors are translated once, here: `translate_errors` turns every psycopg2 and SQLAlchemy
exception into `TransientError` (connection lost, server shutting down, deadlock,
serialization failure: retry) or `SinkRejected` (data or integrity errors: the event itself is
the problem), which `write` turns into the `Rejected` events of the `Sink` contract.

A batch whose transaction needs more locks than the server's lock table holds ("out of shared
memory", SQLSTATE 53200: `max_locks_per_transaction` x `max_connections` for everyone at once) is
written in halves, each its own transaction, the completion marker with the last: merging
events in parts gives the rows and marks merging them together gives (the fold's rules), and a
retry after a crash between the parts replays the batch whole, which changes nothing twice.
Retrying it whole would fail the same way for as long as the batch is that large.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg2
import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from evmonitor.errors import ConfigError, SinkRejected, TransientError
from evmonitor.fold import SESSIONS, STATIONS, TABLES, Columns, complete_rows, fold_columns
from evmonitor.names import SinkName
from evmonitor.poison import Event, Rejected, isolate_poison
from evmonitor.storage.upsert import upsert
from evmonitor.storage.marks import INCOMING, KEY_LOCKS, is_marked, marked
from evmonitor.storage.prepared import Prepared, ensure_prepared

__all__ = ["LockTableFull", "PostgresStore", "apply_schema", "create_engine", "translate_errors"]

log = logging.getLogger("evmonitor.storage.postgres")

_SCHEMA_LOCK = 0x65766D6F  # "evmo": serialises schema application across processes

# What the database says about the data itself, retrying will not change: SQLSTATE class 22
# (data exception: a value out of range, an invalid text representation) and 23 (integrity
# constraint violation). psycopg2 raises these as DataError and IntegrityError, and SQLAlchemy
# wraps them in its classes of the same names.
_REFUSALS = (sa.exc.DataError, sa.exc.IntegrityError, psycopg2.DataError, psycopg2.IntegrityError)


class LockTableFull(TransientError):
    """The server's lock table could not hold a transaction's locks (SQLSTATE 53200, "out of
    shared memory"): a smaller transaction can land where a retry of the same one cannot."""


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map every psycopg2 and SQLAlchemy exception to `SinkRejected` or `TransientError`.

    `SinkRejected`: the database refuses the data (`_REFUSALS`). `TransientError`: everything
    else, the server being unreachable, shutting down, out of connections, in a deadlock or a
    serialization failure, and also errors of our own making (a missing table, a bad statement):
    the operator fixes those and the retry lands, where a refusal would dead-letter valid data.
    """
    try:
        yield
    except _REFUSALS as exc:
        orig = getattr(exc, "orig", None) or exc
        code = getattr(orig, "pgcode", None) or type(orig).__name__
        raise SinkRejected(f"postgresql {code}: {_first_line(orig)}") from exc
    except (sa.exc.SQLAlchemyError, psycopg2.Error, OSError) as exc:
        orig = getattr(exc, "orig", None) or exc
        if isinstance(orig, psycopg2.errors.OutOfMemory):  # 53200: the lock table, for our transactions
            raise LockTableFull(f"postgresql 53200: {_first_line(orig)}") from exc
        raise TransientError(f"postgresql unavailable: {_first_line(orig)}") from exc


def create_engine(url: str, **kwargs: Any) -> Engine:
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 2)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return sa.create_engine(url, **kwargs)


def apply_schema(engine: Engine, sql_dir: Path) -> list[str]:
    """Run every `sql/*.sql` file in name order, under an advisory lock. Idempotent."""
    files = sorted(Path(sql_dir).glob("*.sql"))
    if not files:
        raise ConfigError(f"no schema files in {sql_dir}: set EVMON_SQL_DIR to the repository's sql/ folder")
    with translate_errors(), engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        for path in files:
            conn.exec_driver_sql(path.read_text())
    return [p.name for p in files]


# Row dicts to JSON, timestamps as ISO 8601, by one encoder (flat rows of our making: no cycles).
_JSON = json.JSONEncoder(separators=(",", ":"), default=datetime.isoformat, check_circular=False)

_DONE = ("INSERT INTO ingest_batches (batch_id, sink, events, rejected) VALUES "
         "(%(batch_id)s, %(sink)s, %(events)s, %(rejected)s) ON CONFLICT (batch_id, sink) DO NOTHING")  # fmt: skip

# (batch id, sink): a batch whose completion marker is written with its rows (`write_and_mark_done`)
Done = tuple[str, str]


def _rows_json(rows: list[dict[str, Any]]) -> str:
    """`_JSON`'s JSON, written by orjson (same ISO 8601 times, ~5x less CPU); what orjson refuses
    (an int beyond 64 bits) goes through `_JSON`, so PostgreSQL is the one to refuse it."""
    try:
        return orjson.dumps(rows).decode()
    except orjson.JSONEncodeError:
        return _JSON.encode(rows)


class PostgresStore:
    """The persist sink (`Sink`): `write` folds a batch and merges it in one transaction."""

    name = SinkName.PERSIST

    def __init__(self, engine: Engine, *, marks: bool = True, prepare: bool = True) -> None:
        """`marks=False` leaves beat's marks (and their locks) out, `prepare=False` sends the
        statements as text each time (`evmonitor.storage.prepared`): only for measuring what they cost."""
        self.engine = engine
        meta = sa.MetaData()
        with translate_errors():
            meta.reflect(engine, only=[*(table.name for table in TABLES), "ingest_batches"])
        self.tables = {table.name: meta.tables[table.name] for table in TABLES}
        self.batches = meta.tables["ingest_batches"]
        # in this order in a transaction, so that concurrent writers lock rows in one order
        self._statements = []
        for table in TABLES:
            source = INCOMING if marks and is_marked(table) else None
            compiled = upsert(table, self.tables[table.name], source).compile(dialect=engine.dialect)
            sql = marked(table, str(compiled)) if marks else str(compiled)
            self._statements.append((table.name, sql, dict(compiled.params)))
        self._key_locks = KEY_LOCKS if marks else None
        self._done = _DONE
        self._prepared: list[Prepared] = []
        if prepare:  # the same statements, as EXECUTEs of statements prepared once per connection
            made = [Prepared(name, sql) for name, sql, _ in self._statements]
            self._statements = [(name, p.execute, params) for (name, _, params), p in zip(self._statements, made)]
            if marks:
                made += [key_locks := Prepared("locks", KEY_LOCKS)]
                self._key_locks = key_locks.execute
            made += [done := Prepared("done", _DONE)]
            self._done, self._prepared = done.execute, made

    @classmethod
    def connect(cls, url: str, sql_dir: Path | None = None, **engine_kwargs: Any) -> "PostgresStore":
        engine = create_engine(url, **engine_kwargs)
        if sql_dir is not None:
            apply_schema(engine, sql_dir)
        return cls(engine)

    def write(self, events: Sequence[Event]) -> list[Rejected]:
        """`Sink.write`: merge `events`; a batch the database refuses is bisected down to the
        events it refuses (a transaction can only refuse a batch whole)."""
        return isolate_poison(events, self._merge)

    def write_and_mark_done(self, events: Sequence[Event], batch_id: str, sink: str) -> list[Rejected]:
        """`write`, and when no event is refused, `mark_done(batch_id, sink, len(events))`: in the
        very transaction of a batch that lands whole (one commit per batch, not two). When some
        event is refused the marker is the caller's to write, once it dead-lettered them.

        A batch refused whole goes through `write`, which bisects it: poison batches are rare, and the
        one more refused transaction (`write` tries the batch whole first) keeps one bisection."""
        try:
            self.write_events(events, done=(batch_id, sink))
            return []
        except SinkRejected:
            pass
        rejected = self.write(events)
        if not rejected:  # it landed after all, or its parts landed apart
            self.mark_done(batch_id, sink, len(events))
        return rejected

    def _merge(self, events: Sequence[Event]) -> list[Rejected]:
        self.write_events(events)
        return []

    def write_events(self, events: Sequence[Event], done: Done | None = None) -> None:
        """Fold `events` (normalised wire dicts) and merge them in one transaction (with the
        completion marker of `done`, counting `events`).

        Raises `TransientError` (retry later) or `SinkRejected` (some event is unacceptable). A
        batch whose locks the server's lock table cannot hold is written in halves (see the top).
        """
        self._write_in_parts(events, None if done is None else (*done, len(events)))

    def _write_in_parts(self, events: Sequence[Event], done: tuple[str, str, int] | None) -> None:
        columns = fold_columns(events)
        try:
            self.write_rows(self.column_rows(columns), self.lock_keys(columns), done)
            return
        except LockTableFull as exc:
            if len(events) < 2:
                raise
            log.warning("%d events took more locks than PostgreSQL's lock table holds (%s): writing them in two "
                        "transactions; raise max_locks_per_transaction on the server or lower EVMON_BATCH_MAX_EVENTS",
                        len(events), exc)  # fmt: skip
        half = len(events) // 2
        self._write_in_parts(events[:half], None)
        self._write_in_parts(events[half:], done)

    @staticmethod
    def lock_keys(columns: Columns) -> dict[str, list[str]]:
        """The keys beat's marks lock (`evmonitor.storage.marks`): the batch's stations and sessions."""
        return {"station_ids": list(columns.table(STATIONS)), "session_ids": list(columns.table(SESSIONS))}

    @staticmethod
    def row_keys(rows: dict[str, str]) -> dict[str, list[str]]:
        """`lock_keys` read back from what `column_rows` made, for a caller that kept only the rows."""
        return {name: [row["id"] for row in json.loads(rows.get(table.name) or "[]")]
                for name, table in (("station_ids", STATIONS), ("session_ids", SESSIONS))}  # fmt: skip

    @staticmethod
    def column_rows(columns: Columns) -> dict[str, str]:
        """The parameters of the statements: per table, its rows as one JSON array.

        Completes the rows in place (`complete_rows`: defaults, derived columns); timestamps
        become ISO 8601.
        """
        complete_rows(columns)
        out = {}
        for table in TABLES:
            rows = columns.table(table)
            if rows:
                out[table.name] = _rows_json(list(rows.values()))
        return out

    def write_rows(self, rows: dict[str, str], keys: dict[str, list[str]] | None = None,
                   done: tuple[str, str, int] | None = None) -> None:  # fmt: skip
        """Merge what `column_rows` made, in one transaction (the statements sort rows by key).

        `keys`: what `lock_keys` gives for the same rows (else `row_keys` reads them from the rows).
        `done`: (batch id, sink, events), a completion marker to write with the rows.
        """
        locking = self._key_locks is not None and bool(rows.get(STATIONS.name) or rows.get(SESSIONS.name))
        with translate_errors(), self.engine.connect() as conn:
            if self._prepared:
                ensure_prepared(conn, self._prepared)
            with conn.begin():
                if locking:  # before the snapshots that read old rows
                    conn.exec_driver_sql(self._key_locks, self.row_keys(rows) if keys is None else keys)
                for table, statement, params in self._statements:
                    if table in rows:
                        conn.exec_driver_sql(statement, {**params, "rows": rows[table]})
                if done is not None:
                    conn.exec_driver_sql(self._done, {"batch_id": done[0], "sink": done[1], "events": done[2], "rejected": 0})

    def mark_done(self, batch_id: str, sink: str, events: int, rejected: int = 0) -> None:
        """Record durably that `sink` holds every event of `batch_id` (or dead-lettered it)."""
        with translate_errors(), self.engine.begin() as conn:
            conn.exec_driver_sql(_DONE, {"batch_id": batch_id, "sink": sink, "events": events, "rejected": rejected})

    def completed(self, batch_ids: Iterable[str]) -> dict[str, set[str]]:
        """For each given batch id that any sink completed: the set of sinks that did."""
        ids = list(batch_ids)
        if not ids:
            return {}
        # one array parameter, not an expanding IN of up to max_inflight_batches parameters: the
        # bridge asks every completion_poll_s, and this halves the server's work per call
        query = sa.text("SELECT batch_id, sink FROM ingest_batches WHERE batch_id = ANY(CAST(:ids AS uuid[]))")
        out: dict[str, set[str]] = {}
        with translate_errors(), self.engine.connect() as conn:
            for batch_id, sink in conn.execute(query, {"ids": ids}):
                out.setdefault(str(batch_id), set()).add(sink)
        return out

    def record_watermarks(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert the bridge's `pipeline_watermarks` rows (evmonitor.bridge.watermark)."""
        stmt = sa.text(
            "INSERT INTO pipeline_watermarks (topic, kafka_partition, caught_up, event_time, caught_up_at, "
            "committed_offset, high_water, observed_at) VALUES (:topic, :partition, :caught_up, :event_time, "
            ":caught_up_at, :committed_offset, :high_water, :observed_at) ON CONFLICT (topic, kafka_partition) "
            "DO UPDATE SET caught_up = EXCLUDED.caught_up, event_time = EXCLUDED.event_time, "
            "caught_up_at = EXCLUDED.caught_up_at, "
            "committed_offset = EXCLUDED.committed_offset, high_water = EXCLUDED.high_water, "
            "observed_at = EXCLUDED.observed_at"
        )
        with translate_errors(), self.engine.begin() as conn:
            conn.execute(stmt, list(rows))

    def forget(self, batch_ids: Iterable[str]) -> None:
        """Drop completion markers of batches whose offsets are committed."""
        ids = list(batch_ids)
        if not ids:
            return
        stmt = sa.delete(self.batches).where(self.batches.c.batch_id.in_(sa.bindparam("ids", expanding=True)))
        with translate_errors(), self.engine.begin() as conn:
            conn.execute(stmt, {"ids": ids})
