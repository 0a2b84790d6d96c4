"""The outage ledger as operators see it: list the outages, give one a cause (audited).

Beat draws the rows (`beat.outages.track_outages`); the cause, note and who set them are the
operator's, written only here (and carried over by a recompute, through `audit`). Shared by the
CLI (`evmonitor outages`) and the API (`/api/v1/outages`).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.errors import ConfigError
from evmonitor.names import OutageCause
from evmonitor.storage.postgres import translate_errors

__all__ = ["OUTAGE_COLUMNS", "audit", "default_user", "list_outages", "set_cause"]

OUTAGE_COLUMNS = ("id", "station_id", "connector_id", "started_at", "ended_at", "minutes", "signals", "error_code",
                  "cause", "excluded", "note", "cause_by", "cause_at")  # fmt: skip


def audit(conn: sa.Connection, outage_id: str, by: str, now: datetime, before: dict, after: dict) -> None:
    """Keep one change of an outage's cause and note: who, when, before, after."""
    conn.execute(
        sa.text("INSERT INTO port_outage_audit (outage_id, changed_by, changed_at, before, after) "
                "VALUES (:id, :by, :now, CAST(:before AS jsonb), CAST(:after AS jsonb))"),
        {"id": outage_id, "by": by, "now": now, "before": json.dumps(before), "after": json.dumps(after)},
    )  # fmt: skip


def default_user() -> str:
    """Who is changing an outage when nobody says: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def set_cause(
    engine: sa.Engine, settings: Settings, outage_id: str, cause: OutageCause, note: str | None, *, by: str,
    now: datetime,
) -> dict[str, Any]:
    """Record the operator's cause (and note) on one outage, with an audit row; return the outage.

    Raises `ConfigError` if there is no such outage. Setting what is already there changes nothing
    and writes no audit row.
    """
    with translate_errors(), engine.begin() as conn:
        row = conn.execute(sa.text("SELECT cause, note FROM port_outages WHERE id = :id FOR UPDATE"),
                           {"id": outage_id}).first()  # fmt: skip
        if row is None:
            raise ConfigError(f"no outage {outage_id!r} (see `evmonitor outages list`)")
        before, after = {"cause": row.cause, "note": row.note}, {"cause": str(cause), "note": note}
        if before != after:
            conn.execute(sa.text("UPDATE port_outages SET cause = :cause, note = :note, cause_by = :by, "
                                 "cause_at = :now WHERE id = :id"),
                         {**after, "by": by, "now": now, "id": outage_id})  # fmt: skip
            audit(conn, outage_id, by, now, before, after)
    return _select(engine, "id = :id", {"id": outage_id}, excluded=settings.uptime_excluded_causes)[0]


def list_outages(
    engine: sa.Engine, settings: Settings, *, station_id: str | None = None, open_only: bool = False,
    since: datetime | None = None, until: datetime | None = None, limit: int | None = None,
    after: tuple[datetime, str] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The ledger, newest start first (then id), each row with `excluded` per uptime_excluded_causes.

    `since`/`until`: only outages that overlap [since, until). `after` (started_at, id) of the last
    row of a page and `limit` page through it.
    """
    where, params = ["true"], {}
    if station_id is not None:
        where.append("station_id = :station")
        params["station"] = station_id
    if open_only:
        where.append("ended_at IS NULL")
    if since is not None:
        where.append("coalesce(ended_at, 'infinity') > :since")
        params["since"] = since
    if until is not None:
        where.append("started_at < :until")
        params["until"] = until
    if after is not None:
        where.append("(started_at, id) < (:after_at, :after_id)")
        params.update(after_at=after[0], after_id=after[1])
    return _select(engine, " AND ".join(where), params, excluded=settings.uptime_excluded_causes, limit=limit)


def _select(engine: sa.Engine, where: str, params: dict, *, excluded: Sequence[OutageCause],
            limit: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    query = sa.text(f"SELECT * FROM port_outages WHERE {where} ORDER BY started_at DESC, id DESC"
                    + ("" if limit is None else f" LIMIT {int(limit)}"))  # fmt: skip
    with translate_errors(), engine.connect() as conn:
        rows = conn.execute(query, params).mappings().all()
    return [{**{k: r[k] for k in OUTAGE_COLUMNS if k != "excluded"}, "excluded": r["cause"] in set(map(str, excluded))}
            for r in rows]  # fmt: skip
