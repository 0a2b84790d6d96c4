"""The persist path's `INSERT ... ON CONFLICT` statements, generated from `evmonitor.fold.rules`.

`upsert` renders each column's `Merge` in SQL, once (see `evmonitor.storage.postgres`): replaying
or reordering events cannot change a row, and a batch merged here gives the row `evmonitor.fold`
computes for everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, case, func, or_, tuple_
from sqlalchemy.dialects.postgresql import JSON, insert

from evmonitor.fold import Merge, Rule, SessionStatus, Table

__all__ = ["upsert"]


def _newer(t: sa.Table, ex: Any, by: tuple[str, ...], first: bool = False) -> Any:
    """SQL for: the excluded row's `by` columns sort after (`first`: before) the stored row's (a
    NULL stored loses). Text compares by code point, as Python does."""

    def c(col: Any) -> Any:
        return col.collate("C") if isinstance(col.type, sa.String) else col

    incoming, stored = tuple_(*(c(ex[col]) for col in by)), tuple_(*(c(t.c[col]) for col in by))
    newer = incoming < stored if first else incoming > stored
    return and_(ex[by[0]].isnot(None), or_(t.c[by[0]].is_(None), newer))


def _merged(column: str, rule: Rule, t: sa.Table, ex: Any, newer: dict[tuple[str, ...], Any]) -> Any:
    """SQL for the value `rule` gives `column` when the excluded row meets the stored one."""
    stored, incoming = t.c[column], ex[column]
    match rule.merge:
        case Merge.LEAST:
            return func.least(stored, incoming)
        case Merge.LEAST_TEXT:
            return func.least(stored.collate("C"), incoming.collate("C"))
        case Merge.GREATEST:
            return func.greatest(stored, incoming)
        case Merge.LATEST | Merge.FIRST:
            return case((newer[rule.by], incoming), else_=stored)
        case Merge.WRITTEN_AT:
            return func.now()
        case Merge.SESSION_STATUS:
            end, last_event = rule.by
            ended = or_(t.c[end].isnot(None), ex[end].isnot(None))
            spoke_again = and_(stored == SessionStatus.STALE.value, ex[last_event] > t.c[last_event])
            return case((ended, SessionStatus.COMPLETED.value), (spoke_again, SessionStatus.ACTIVE.value), else_=stored)
    raise ValueError(f"{t.name}.{column}: no SQL for {rule.merge}")


def _from_json(t: sa.Table, columns: Sequence[str], key: Sequence[str], source: str | None = None) -> Any:
    """INSERT INTO t (columns) SELECT columns FROM the JSON array bound as :rows, in key order (or
    from the relation named `source`, which holds those rows)."""
    if source is not None:
        rows: Any = sa.table(source, *(sa.column(c, t.c[c].type) for c in columns))
    else:
        rows = func.json_populate_recordset(
            sa.literal_column(f"NULL::{t.name}"), sa.cast(sa.bindparam("rows", type_=sa.Text), JSON)
        ).table_valued(*(t.c[c] for c in columns))
    select = sa.select(*(rows.c[c] for c in columns)).order_by(*(rows.c[k] for k in key))
    return insert(t).from_select(list(columns), select)


def upsert(table: Table, t: sa.Table, source: str | None = None) -> Any:
    """`INSERT ... ON CONFLICT` for the rows of `table`, every column merged by its rule (the rows:
    see `_from_json`)."""
    stmt = _from_json(t, table.written(), table.key, source)
    ex, key = stmt.excluded, list(table.key)
    kept = (Merge.KEY, Merge.SAME, Merge.GENERATED, Merge.JOINED)  # JOINED: beat's to write
    merged = {c: r for c, r in table.columns.items() if r.merge not in kept}
    if not merged:
        return stmt.on_conflict_do_nothing(index_elements=key)
    if all(r.merge in (Merge.LEAST, Merge.GREATEST) for r in merged.values()):
        # extremes only: update only when one moves, so a replay writes no tuple (and returns no row)
        moves = [(ex[c] < t.c[c]) if r.merge is Merge.LEAST else (ex[c] > t.c[c]) for c, r in merged.items()]
        moves += [and_(t.c[c].is_(None), ex[c].isnot(None)) for c in merged]
        set_ = {c: _merged(c, r, t, ex, {}) for c, r in merged.items()}
        return stmt.on_conflict_do_update(index_elements=key, set_=set_, where=or_(*moves))
    groups = table.groups()
    if len(groups) == 1 and set(merged) == set(*groups.values()):
        # the row is one reading: unless the incoming one is newer, leave the stored tuple alone
        (by,) = groups
        return stmt.on_conflict_do_update(index_elements=key, set_={c: ex[c] for c in merged}, where=_newer(t, ex, by))
    newer = {by: _newer(t, ex, by, table.columns[by[0]].merge is Merge.FIRST) for by in groups}
    set_ = {c: _merged(c, r, t, ex, newer) for c, r in merged.items()}
    return stmt.on_conflict_do_update(index_elements=key, set_=set_)
