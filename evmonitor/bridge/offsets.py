"""Which Kafka offsets may be committed: the commit rule of invariant 1, as a pure value.

An offset is committed (as `offset + 1`, Kafka's "next to read") only when every record at or
before it in its partition is done: written to PostgreSQL *and* Elasticsearch, or dead-lettered.
The tracker sees three things:

* `consumed(tp, offset)`: the bridge has looked at the record (valid or not);
* `hold(batch_id, tp, offset)`: the record went into a batch that is not complete yet;
* `release(batch_id)`: both sinks recorded the batch as complete.

For a partition, the committable offset is the smallest offset still held by any open batch,
or, when nothing is held, one past the last consumed record. Dead-lettered records are never
held; the caller flushes the dead-letter producer before committing (see `Bridge.commit`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["OffsetTracker"]

TP = TypeVar("TP", bound=Hashable)


class OffsetTracker(Generic[TP]):
    def __init__(self) -> None:
        self._next: dict[TP, int] = {}  # one past the highest consumed offset
        self._held: dict[str, dict[TP, int]] = {}  # batch -> tp -> lowest offset it holds
        self._committed: dict[TP, int] = {}

    def consumed(self, tp: TP, offset: int) -> None:
        if offset + 1 > self._next.get(tp, -1):
            self._next[tp] = offset + 1

    def hold(self, batch_id: str, tp: TP, offset: int) -> None:
        held = self._held.setdefault(batch_id, {})
        if tp not in held or offset < held[tp]:
            held[tp] = offset

    def release(self, batch_id: str) -> None:
        self._held.pop(batch_id, None)

    def forget(self, tp: TP) -> None:
        """The partition was revoked: another consumer resumes from its committed offset."""
        self._next.pop(tp, None)
        self._committed.pop(tp, None)
        for held in self._held.values():
            held.pop(tp, None)

    def committable(self) -> dict[TP, int]:
        """Offsets (next to read) that may be committed now, for every partition seen."""
        out = dict(self._next)
        for held in self._held.values():
            for tp, offset in held.items():
                if tp in out and offset < out[tp]:
                    out[tp] = offset
        return out

    def to_commit(self) -> dict[TP, int]:
        """The committable offsets that moved forward since the last `committed()` call."""
        return {tp: off for tp, off in self.committable().items() if off > self._committed.get(tp, 0)}

    def committed(self, offsets: dict[TP, int]) -> None:
        self._committed.update(offsets)

    def progress(self, tp: TP) -> tuple[int | None, bool] | None:
        """(committed offset or None, whether every record consumed is committed); None if `tp`
        was never consumed by this tracker."""
        if tp not in self._next:
            return None
        committed = self._committed.get(tp)
        return committed, committed == self._next[tp]

    @property
    def open_batches(self) -> int:
        return len(self._held)
