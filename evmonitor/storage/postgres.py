"""PostgreSQL through SQLAlchemy: schema, folded upserts, batch completion markers.

The upserts apply, in SQL, the same merge rules as `evmonitor.fold` (earliest wins, highest
wins, last writer wins by a total order), so replaying or reordering events cannot change a
row. Rows of one statement are sorted by key so that concurrent writers lock rows in the same
order and cannot deadlock each other.

Each table's rows travel as one JSON array in one statement
(`INSERT ... SELECT ... FROM json_populate_recordset(...) ORDER BY key ON CONFLICT ...`):
SQLAlchemy cannot batch an `ON CONFLICT DO UPDATE` executemany into multi-row VALUES, so a
batch of 500 events used to cost ~600 round trips; now it costs four. A batch folds to one
row per key, so no statement touches a row twice.

Errors are translated once, here: `translate_errors` turns driver exceptions into
`TransientError` (connection lost, server shutting down, deadlock, serialization failure:
retry) or `SinkRejected` (data or integrity errors: the event itself is the problem).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, case, func, or_, tuple_
from sqlalchemy.dialects.postgresql import JSON, insert
from sqlalchemy.engine import Engine

from evmonitor.errors import ConfigError, SinkRejected, TransientError
from evmonitor.fold import Columns, ConnectorRow, Fold, SessionRow, StationRow, StatusLogRow, fold_columns, row_dict

__all__ = ["PostgresStore", "apply_schema", "create_engine", "translate_errors"]

# SQLSTATE classes whose errors are about the data, not the server: retrying will not help.
_PERMANENT_CLASSES = ("22", "23")
_SCHEMA_LOCK = 0x65766D6F  # "evmo": serialises schema application across processes


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map psycopg2/SQLAlchemy exceptions to `TransientError` or `SinkRejected`."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        code = getattr(exc.orig, "pgcode", None) or ""
        if code[:2] in _PERMANENT_CLASSES:
            raise SinkRejected(f"postgresql {code}: {str(exc.orig).strip().splitlines()[0]}") from exc
        raise TransientError(f"postgresql unavailable: {str(exc.orig or exc).strip().splitlines()[0]}") from exc
    except sa.exc.SQLAlchemyError as exc:
        raise TransientError(f"postgresql: {exc}") from exc
    except OSError as exc:
        raise TransientError(f"postgresql unreachable: {exc}") from exc


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


def _newer(t: sa.Table, ex: Any, *cols: str) -> Any:
    """SQL for: the excluded row's (cols...) sorts after the stored one's (NULL stored loses)."""
    first = cols[0]
    return and_(
        getattr(ex, first).isnot(None),
        or_(
            t.c[first].is_(None),
            tuple_(*(getattr(ex, c) for c in cols)) > tuple_(*(t.c[c] for c in cols)),
        ),
    )


def _pick(cond: Any, ex: Any, t: sa.Table, col: str) -> Any:
    return case((cond, getattr(ex, col)), else_=t.c[col])


def _least(t: sa.Table, ex: Any, col: str, collate: bool = False) -> Any:
    a, b = t.c[col], getattr(ex, col)
    if collate:
        a, b = a.collate("C"), b.collate("C")
    return func.least(a, b)


def _greatest(t: sa.Table, ex: Any, col: str) -> Any:
    return func.greatest(t.c[col], getattr(ex, col))


def _column_names(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclass_fields(row_type))


def _time_columns(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclass_fields(row_type) if "datetime" in str(f.type))


_TIMES = {
    "stations": _time_columns(StationRow),
    "connectors": _time_columns(ConnectorRow),
    "status_events": _time_columns(StatusLogRow),
    "sessions": _time_columns(SessionRow),
}


def _from_json(t: sa.Table, columns: Sequence[str], key: Sequence[str]) -> Any:
    """INSERT INTO t (columns) SELECT columns FROM the JSON array bound as :rows, in key order."""
    rows = func.json_populate_recordset(
        sa.literal_column(f"NULL::{t.name}"), sa.cast(sa.bindparam("rows", type_=sa.Text), JSON)
    ).table_valued(*(t.c[c] for c in columns))
    select = sa.select(*(rows.c[c] for c in columns)).order_by(*(rows.c[k] for k in key))
    return insert(t).from_select(list(columns), select)


class PostgresStore:
    """The persist sink. `write_events` folds a batch and merges it in one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        meta = sa.MetaData()
        with translate_errors():
            names = ("charging_stations", "connector_status", "status_events", "charging_sessions", "ingest_batches")
            meta.reflect(engine, only=names)
        self.stations = meta.tables["charging_stations"]
        self.connectors = meta.tables["connector_status"]
        self.status_events = meta.tables["status_events"]
        self.sessions = meta.tables["charging_sessions"]
        self.batches = meta.tables["ingest_batches"]
        self._station_upsert = self._build_station_upsert()
        self._connector_upsert = self._build_connector_upsert()
        self._status_insert = _from_json(
            self.status_events, _column_names(StatusLogRow), ["event_id"]
        ).on_conflict_do_nothing(index_elements=["event_id"])
        self._session_upsert = self._build_session_upsert()

    @classmethod
    def connect(cls, url: str, sql_dir: Path | None = None, **engine_kwargs: Any) -> "PostgresStore":
        engine = create_engine(url, **engine_kwargs)
        if sql_dir is not None:
            apply_schema(engine, sql_dir)
        return cls(engine)

    # --- statements -------------------------------------------------------------------------

    def _build_station_upsert(self) -> Any:
        t = self.stations
        stmt = _from_json(t, _column_names(StationRow), ["id"])
        ex = stmt.excluded
        newer_boot = _newer(t, ex, "boot_at", "boot_event_id")
        newer_status = _newer(t, ex, "status_at", "status_event_id")
        profile = (
            "name", "operator", "city", "latitude", "longitude", "max_power_kw", "connector_count",
            "price_eur_per_kwh", "vendor", "model", "firmware_version", "boot_at", "boot_event_id",
        )  # fmt: skip
        live = ("status", "error_code", "status_at", "status_event_id")
        set_: dict[str, Any] = {c: _pick(newer_boot, ex, t, c) for c in profile}
        set_.update({c: _pick(newer_status, ex, t, c) for c in live})
        set_.update(
            first_seen_at=_least(t, ex, "first_seen_at"),
            last_seen_at=_greatest(t, ex, "last_seen_at"),
            last_heartbeat_at=_greatest(t, ex, "last_heartbeat_at"),
            updated_at=func.now(),
        )
        return stmt.on_conflict_do_update(index_elements=["id"], set_=set_)

    def _build_connector_upsert(self) -> Any:
        t = self.connectors
        stmt = _from_json(t, _column_names(ConnectorRow), ["station_id", "connector_id"])
        ex = stmt.excluded
        cols = ("status", "error_code", "info", "status_at", "status_event_id")
        return stmt.on_conflict_do_update(
            index_elements=["station_id", "connector_id"],
            set_={c: getattr(ex, c) for c in cols},
            where=tuple_(ex.status_at, ex.status_event_id) > tuple_(t.c.status_at, t.c.status_event_id),
        )

    def _build_session_upsert(self) -> Any:
        t = self.sessions
        stmt = _from_json(t, (*_column_names(SessionRow), "status"), ["id"])
        ex = stmt.excluded
        newer_progress = _newer(t, ex, "progress_at", "progress_meter_wh", "progress_event_id")
        merged_end = func.least(t.c.end_time, ex.end_time)
        set_: dict[str, Any] = {
            "station_id": _least(t, ex, "station_id", collate=True),
            "connector_id": _least(t, ex, "connector_id"),
            "start_time": _least(t, ex, "start_time"),
            "last_event_at": _greatest(t, ex, "last_event_at"),
            "end_time": merged_end,
            "meter_start_wh": _least(t, ex, "meter_start_wh"),
            "meter_max_wh": _greatest(t, ex, "meter_max_wh"),
            "meter_stop_wh": _greatest(t, ex, "meter_stop_wh"),
            "price_eur_per_kwh": _greatest(t, ex, "price_eur_per_kwh"),
            "stop_reason": _least(t, ex, "stop_reason", collate=True),
            "id_tag_hash": _least(t, ex, "id_tag_hash", collate=True),
            "vehicle_battery_kwh": _greatest(t, ex, "vehicle_battery_kwh"),
            "soc_start_percent": _least(t, ex, "soc_start_percent"),
            # completion sticks; a stale session that speaks again is active again
            "status": case(
                (merged_end.isnot(None), "completed"),
                (and_(t.c.status == "stale", ex.last_event_at > t.c.last_event_at), "active"),
                else_=t.c.status,
            ),
            "updated_at": func.now(),
        }
        for col in ("progress_at", "progress_meter_wh", "progress_event_id", "power_kw", "soc_percent"):
            set_[col] = _pick(newer_progress, ex, t, col)
        return stmt.on_conflict_do_update(index_elements=["id"], set_=set_)

    # --- writes -----------------------------------------------------------------------------

    def write_events(self, events: Sequence[dict[str, Any]]) -> None:
        """Fold `events` (normalised wire dicts) and merge them in one transaction.

        Raises `TransientError` (retry later) or `SinkRejected` (some event is unacceptable).
        """
        self.write_rows(self.column_rows(fold_columns(events)))

    def write_fold(self, fold: Fold) -> None:
        self.write_rows(self.fold_rows(fold))

    def fold_rows(self, fold: Fold) -> dict[str, str]:
        """`column_rows` for a `Fold` of row objects."""
        return self.column_rows(Columns(
            stations={k: row_dict(r) for k, r in fold.stations.items()},
            connectors={k: row_dict(r) for k, r in fold.connectors.items()},
            status_log={k: row_dict(r) for k, r in fold.status_log.items()},
            sessions={k: row_dict(r) for k, r in fold.sessions.items()},
        ))  # fmt: skip

    @staticmethod
    def column_rows(columns: Columns) -> dict[str, str]:
        """The parameters of the four statements: per table, its rows as one JSON array.

        Takes the column dicts over (they are completed in place): a station without a boot yet
        is named by its id, a session's status follows from its end, timestamps become ISO 8601.
        """
        for row in columns.stations.values():
            if row.get("name") is None:
                row["name"] = row["id"]
        for row in columns.sessions.values():
            row["status"] = "completed" if row.get("end_time") is not None else "active"
        tables = {"stations": columns.stations, "connectors": columns.connectors,
                  "status_events": columns.status_log, "sessions": columns.sessions}  # fmt: skip
        out = {}
        for table, rows in tables.items():
            if not rows:
                continue
            times = _TIMES[table]
            for row in rows.values():
                for name in times:
                    moment = row.get(name)
                    if moment is not None:
                        row[name] = moment.isoformat()
            out[table] = json.dumps(list(rows.values()), separators=(",", ":"))
        return out

    def write_rows(self, rows: dict[str, str]) -> None:
        """Merge what `fold_rows` made, in one transaction (the statements sort rows by key)."""
        statements = (
            ("stations", self._station_upsert),
            ("connectors", self._connector_upsert),
            ("status_events", self._status_insert),
            ("sessions", self._session_upsert),
        )
        with translate_errors(), self.engine.begin() as conn:
            for table, statement in statements:
                if table in rows:
                    conn.execute(statement, {"rows": rows[table]})

    def mark_done(self, batch_id: str, sink: str, events: int, rejected: int = 0) -> None:
        """Record durably that `sink` holds every event of `batch_id` (or dead-lettered it)."""
        stmt = insert(self.batches).on_conflict_do_nothing(index_elements=["batch_id", "sink"])
        with translate_errors(), self.engine.begin() as conn:
            conn.execute(stmt, {"batch_id": batch_id, "sink": sink, "events": events, "rejected": rejected})

    def completed(self, batch_ids: Iterable[str]) -> dict[str, set[str]]:
        """For each given batch id that any sink completed: the set of sinks that did."""
        ids = list(batch_ids)
        if not ids:
            return {}
        query = sa.select(self.batches.c.batch_id, self.batches.c.sink).where(
            self.batches.c.batch_id.in_(sa.bindparam("ids", expanding=True))
        )
        out: dict[str, set[str]] = {}
        with translate_errors(), self.engine.connect() as conn:
            for batch_id, sink in conn.execute(query, {"ids": ids}):
                out.setdefault(str(batch_id), set()).add(sink)
        return out

    def forget(self, batch_ids: Iterable[str]) -> None:
        """Drop completion markers of batches whose offsets are committed."""
        ids = list(batch_ids)
        if not ids:
            return
        stmt = sa.delete(self.batches).where(self.batches.c.batch_id.in_(sa.bindparam("ids", expanding=True)))
        with translate_errors(), self.engine.begin() as conn:
            conn.execute(stmt, {"ids": ids})
