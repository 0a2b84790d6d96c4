"""Fold events into rows: pure, commutative, associative and idempotent.

One rule per column, written once, in `rules`: `TABLES` says how every column the persist path
writes merges two versions of a row, `WRITES` which columns each kind of event writes, with
what value. Everything else is generated from these two tables:

* `fold_columns`, the Python fold of a batch (`generate`: compiled at import into one function
  with a branch per kind of event, as fast as the hand-written fold it replaced);
* `merge_columns`, the merge of two folds in Python: what the SQL does to a stored row;
* the `INSERT ... ON CONFLICT DO UPDATE` statements of `evmonitor.storage.postgres`, which
  render each `Merge` in SQL.

Every merge ignores order and repetition (earliest wins, highest wins, or last writer wins by a
total order), so a replayed or reordered batch cannot change a row. A session completed once
stays completed: `end_time` only ever goes down from NULL, never back up to NULL.

`money` holds a session's energy and cost, exactly as DESIGN.md defines them, and `held_reason`:
a session whose events disagree on a fact, or that is physically impossible, is held (no energy,
no cost) by a pure function of its merged row, the twin of SQL's `evm_held_reason`.
"""

from evmonitor.fold.generate import Columns, complete_rows, fold_columns, fold_source, merge_columns, merge_source
from evmonitor.fold.money import HeldReason, held_reason, session_cost_eur, session_energy_kwh
from evmonitor.fold.rules import (
    CONNECTORS,
    PRESENCE,
    SESSIONS,
    STATIONS,
    STATUS_LOG,
    TABLES,
    WRITES,
    Merge,
    Rule,
    SessionStatus,
    Table,
    Write,
)

__all__ = [
    "CONNECTORS",
    "Columns",
    "HeldReason",
    "Merge",
    "PRESENCE",
    "Rule",
    "SESSIONS",
    "STATIONS",
    "STATUS_LOG",
    "SessionStatus",
    "TABLES",
    "Table",
    "WRITES",
    "Write",
    "complete_rows",
    "fold_columns",
    "fold_source",
    "held_reason",
    "merge_columns",
    "merge_source",
    "session_cost_eur",
    "session_energy_kwh",
]
