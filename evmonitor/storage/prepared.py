"""Server-side prepared statements for the persist path's per-batch statements.

Each batch runs the same few statements (the lock, one upsert per table); PostgreSQL would parse,
analyse, rewrite and plan each of them again for every batch (~1.6 CPU-us per event each, issue
15). `Prepared` turns a statement in psycopg2's `%(name)s` style into `PREPARE name AS ...` with
`$n` parameters, made once per database connection, and `EXECUTE name(%(a)s, ...)`: PostgreSQL
then parses only the parameters' literals and, after its first executions, reuses one generic
plan (the statements' rows come in as one JSON or array parameter, whose size no estimate sees).

Prepared statements live as long as the server session, whatever becomes of the transaction
that made them, and PostgreSQL replans them by itself after a schema change. A connection is
known by its DBAPI object: one the pool replaced (after an error or a server restart) is a new
session, where the statements are prepared again.
"""

from __future__ import annotations

import hashlib
import re

import sqlalchemy as sa

__all__ = ["Prepared", "ensure_prepared"]

_PARAM = re.compile(r"%\((\w+)\)s|%%")
_INFO_KEY = "evmonitor_prepared"


class Prepared:
    """One statement: `prepare` (SQL, no parameters) and `execute` (SQL in psycopg2's style)."""

    def __init__(self, label: str, sql: str) -> None:
        self.name = f"evm_{label}_{hashlib.sha1(sql.encode()).hexdigest()[:12]}"
        order: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        body = _PARAM.sub(number, sql)
        self.prepare = f"PREPARE {self.name} AS {body}"
        args = ", ".join(f"%({name})s" for name in order)
        self.execute = f"EXECUTE {self.name}({args})" if order else f"EXECUTE {self.name}"


def ensure_prepared(conn: sa.Connection, statements: list[Prepared]) -> None:
    """Prepare on `conn`'s server session whichever of `statements` it does not hold yet.

    Call it outside a transaction: it commits what it ran (PREPARE itself is not transactional).
    """
    dbapi = conn.connection.dbapi_connection
    known = conn.info.get(_INFO_KEY)
    if known is None or known[0] is not dbapi:
        known = conn.info[_INFO_KEY] = (dbapi, set())
    todo = [s for s in statements if s.name not in known[1]]
    if not todo:
        return
    cursor = dbapi.cursor()
    try:
        for statement in todo:
            cursor.execute(statement.prepare)  # no parameters: psycopg2 sends it as it is
    finally:
        cursor.close()
    dbapi.commit()
    known[1].update(s.name for s in todo)
