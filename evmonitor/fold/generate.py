"""The Python fold, generated once, at import, from the rules of `evmonitor.fold.rules`.

The generated code is what a careful hand would write for these rules (one branch per kind of
event, a row's columns compared in place, no object per event), so the rules cost nothing at
run time. `fold_source()` and `merge_source(table)` return it for reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from evmonitor.contract import EventType
from evmonitor.fold.rules import (
    GROUPS, SERVER_SIDE, TABLES, WRITES, Merge, SessionStatus, Table, Value, Write, check_rules,
)

__all__ = ["Columns", "complete_rows", "fold_columns", "fold_source", "merge_columns", "merge_source"]


@dataclass(slots=True)
class Columns:
    """A fold as plain dicts of columns, one per key. A column no event set is absent (NULL)."""

    stations: dict[str, dict[str, Any]] = field(default_factory=dict)
    connectors: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    status_log: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    presence: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # times as `STAMP` text

    def table(self, table: Table) -> dict[Any, dict[str, Any]]:
        return getattr(self, table.attr)


def _merge_lines(table: Table, values: Mapping[str, Value], present: set[str], indent: str) -> list[str]:
    """Statements merging `values` into `row` by `table`'s rules. A column in `present` is known
    to be in `row` and not NULL, which spares a lookup and a test."""
    lines: list[str] = []

    def add(body: list[str], nullable: bool) -> None:
        if nullable:  # NULL never wins
            lines.append(f"{indent}if v is not None:")
            lines.extend(f"{indent}    {b}" for b in body)
        else:
            lines.extend(f"{indent}{b}" for b in body)

    for by, group in table.groups().items():
        if not set(group) & set(values):
            continue
        if not set(group) <= set(values):
            raise ValueError(f"{table.name}: a write gives every column of the group {group} or none")
        nullable = values[by[0]].nullable
        wins = "<" if table.columns[by[0]].merge is Merge.FIRST else ">"
        if nullable:
            lines.append(f"{indent}v = {values[by[0]].expr}")
        new = ", ".join(["v" if nullable else values[by[0]].expr, *(values[c].expr for c in by[1:])])
        assign = [f"    row[{c!r}] = {values[c].expr}" for c in group]
        if by[0] in present:
            old = ", ".join(f"row[{c!r}]" for c in by)
            body = [f"if ({new},) {wins} ({old},):", *assign]
        else:
            old = ", ".join(["current", *(f"row[{c!r}]" for c in by[1:])])
            body = [f"current = row.get({by[0]!r})", f"if current is None or ({new},) {wins} ({old},):", *assign]
        add(body, nullable)
    for column, value in values.items():
        rule = table.columns.get(column)
        if rule is None:
            raise ValueError(f"{table.name}.{column}: written, but has no rule")
        if rule.merge in (Merge.KEY, Merge.SAME, *GROUPS):
            continue
        if rule.merge is Merge.SESSION_STATUS or rule.merge in SERVER_SIDE:
            raise ValueError(f"{table.name}.{column}: derived, so no event writes it")
        wins = "<" if rule.merge in (Merge.LEAST, Merge.LEAST_TEXT) else ">"
        if column in present:
            body = [f"if v {wins} row[{column!r}]:", f"    row[{column!r}] = v"]
        else:
            body = [f"current = row.get({column!r})", f"if current is None or v {wins} current:",
                    f"    row[{column!r}] = v"]
        lines.append(f"{indent}v = {value.expr}")
        add(body, value.nullable)
    return lines


def _key(table: Table, values: Mapping[str, Value]) -> str:
    exprs = [values[c].expr for c in table.key]
    return exprs[0] if len(exprs) == 1 else f"({', '.join(exprs)})"


def _creating(writes: Mapping[EventType, tuple[Write, ...]]) -> dict[Table, list[Write]]:
    """Per table, the writes that may create its row: an event's unconditional write to the table,
    or else each of its conditional ones."""
    out: dict[Table, list[Write]] = {}
    for kind_writes in writes.values():
        for table in {w.table for w in kind_writes}:
            mine = [w for w in kind_writes if w.table is table]
            out.setdefault(table, []).extend([w for w in mine if w.when is None] or mine)
    return out


def _present(writes: list[Write]) -> set[str]:
    """The columns every row of a table has, not NULL: those every creating write gives a value."""
    sets = [{c for c, v in w.values.items() if not v.nullable} for w in writes]
    return set.intersection(*sets)


def _check_writes(writes: Mapping[EventType, tuple[Write, ...]]) -> None:
    """What the generated fold assumes of `writes`: a wrong entry fails at import, not in a batch."""
    for kind, kind_writes in writes.items():
        first: dict[Table, Write] = {}
        for write in kind_writes:
            table = write.table
            if first.setdefault(table, write) is not write and write.when is None:
                raise ValueError(f"{kind}: its unconditional write into {table.name} must come first")
            if _key(table, write.values) != _key(table, first[table].values):
                raise ValueError(f"{kind}: its writes into {table.name} must address one row")
            for by in table.groups():
                if by[0] in write.values and write.values[by[0]].nullable:
                    raise ValueError(f"{kind}: {table.name} orders {by} by a value the event may lack")


def fold_source(writes: Mapping[EventType, tuple[Write, ...]] = WRITES) -> str:
    """The source of `_fold_into(events, out)`, generated from `writes` and their tables' rules."""
    check_rules({w.table for kind_writes in writes.values() for w in kind_writes})
    _check_writes(writes)
    present = {table: _present(creating) for table, creating in _creating(writes).items()}
    lines = ["def _fold_into(events, out):"]
    lines += [f"    {t.attr} = out.{t.attr}" for t in TABLES]
    lines += ["    for event in events:", "        kind = event['event_type']", "        ts = _ts(event['timestamp'])",
              "        stamp = _stamp(event['timestamp'], ts)", "        minute = stamp[:16] + ':00Z'"]
    for n, (kind, kind_writes) in enumerate(writes.items()):
        lines.append(f"        {'if' if n == 0 else 'elif'} kind == {str(kind)!r}:")
        indent = " " * 12
        made: set[Table] = set()  # tables whose row this event's unconditional write has made
        bound: Table | None = None  # the table whose row `row` is
        for write in kind_writes:
            table, values = write.table, write.values
            body = indent
            if write.when is not None:
                lines.append(f"{indent}if {write.when}:")
                body += "    "
            if table in made:
                if bound is not table:  # another table's row came between: this one's again
                    lines.append(f"{body}row = {table.attr}[{_key(table, values)}]")
                lines += _merge_lines(table, values, present[table], body)
                if write.when is None:
                    bound = table
                continue
            if write.when is None:
                made.add(table)
                bound = table
            created = ", ".join(f"{c!r}: {v.expr}" for c, v in values.items())
            lines += [f"{body}key = {_key(table, values)}", f"{body}row = {table.attr}.get(key)",
                      f"{body}if row is None:", f"{body}    row = {table.attr}[key] = {{{created}}}"]  # fmt: skip
            merge = _merge_lines(table, values, present[table], body + "    ")
            if merge:
                lines += [f"{body}else:", *merge]
    lines += ["        else:  # the contract admits no other type; a bug upstream must not pass silently",
              "            raise ValueError(f'unknown event_type {kind!r}')"]  # fmt: skip
    return "\n".join(lines) + "\n"


def merge_source(table: Table) -> str:
    """The source of `_merge_<attr>(rows, others)`: `others`' rows merged into `rows`, in place."""
    values = {c: Value(f"other.get({c!r})", nullable=True) for c in table.written()
              if table.columns[c].merge is not Merge.SESSION_STATUS}  # fmt: skip
    lines = [f"def _merge_{table.attr}(rows, others):", "    for key, other in others.items():",
             "        row = rows.get(key)", "        if row is None:", "            rows[key] = dict(other)",
             "            continue", *_merge_lines(table, values, set(), " " * 8)]  # fmt: skip
    return "\n".join(lines) + "\n"


def _ts(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _stamp(value: str | datetime, ts: datetime) -> str:
    """`ts` as fixed-width UTC text, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (`STAMP`): it sorts as time does,
    so LEAST and GREATEST hold on it, and it goes into the JSON rows as it is (an aware datetime's
    isoformat costs microseconds). Taken from the wire's UTC text when it has one."""
    if isinstance(value, str) and value[-1:] == "Z":
        if len(value) == 27:
            return value
        if len(value) == 20:
            return value[:19] + ".000000Z"
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _compile() -> tuple[Any, dict[Table, Any]]:
    namespace: dict[str, Any] = {"_ts": _ts, "_stamp": _stamp}
    exec(compile(fold_source(), "<evmonitor.fold: generated fold>", "exec"), namespace)
    for table in TABLES:
        exec(compile(merge_source(table), f"<evmonitor.fold: generated merge of {table.name}>", "exec"), namespace)
    return namespace["_fold_into"], {t: namespace[f"_merge_{t.attr}"] for t in TABLES}


_fold_into, _merges = _compile()


def fold_columns(events: Iterable[Mapping[str, Any]]) -> Columns:
    """Fold normalised events (`Event.to_wire()` dicts) into one row of columns per key.

    The result is the same for any order and any repetition of the events. Derived columns and
    defaults are not filled in yet: see `complete_rows`.
    """
    out = Columns()
    _fold_into(events, out)
    return out


def merge_columns(into: Columns, other: Columns) -> Columns:
    """Merge the fold `other` into the fold `into` (in place), as the SQL upsert merges a batch
    into the stored rows: `merge_columns(fold(a), fold(b))` equals `fold(a + b)`."""
    for table, merge in _merges.items():
        merge(into.table(table), other.table(table))
    return into


def complete_rows(columns: Columns) -> Columns:
    """Fill in, in place, what no event writes: defaults (a station is named by its id until it
    boots) and derived columns (a session's status)."""
    for table in TABLES:
        rows = columns.table(table).values()
        for column, rule in table.columns.items():
            if rule.default is not None:
                for row in rows:
                    if row.get(column) is None:
                        row[column] = row[rule.default]
            if rule.merge is Merge.SESSION_STATUS:
                end = rule.by[0]
                for row in rows:
                    row[column] = SessionStatus.COMPLETED if row.get(end) is not None else SessionStatus.ACTIVE
    return columns
