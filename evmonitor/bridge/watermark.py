"""How far the bridge has processed each partition, in event time: the rows of `pipeline_watermarks`.

`EventClock` keeps, per partition, the event times of valid records not yet committed and the
greatest event time among the records this run has committed (an offset is committed only once
every record before it is in every sink, so that is "processed"). Every
EVMON_WATERMARK_INTERVAL_S the bridge writes one row per assigned partition:

    caught_up     everything up to the partition's high-water mark is committed (or, for a
                  partition this run has read nothing from, the consumer's position is there)
    event_time    the greatest committed event time of this run (NULL until the first commit)
    caught_up_at  when this run last saw it caught up (NULL: not yet)

A partition whose high-water mark the consumer does not know yet (no fetch response for it) and
that this run has read nothing from gets no row: its previous row stands.

Beat turns the rows into one moment to judge by (`beat.watermark`). Pure: no I/O here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

__all__ = ["EventClock", "watermark_row"]

TP = TypeVar("TP", bound=Hashable)


class EventClock(Generic[TP]):
    def __init__(self) -> None:
        self._pending: dict[TP, deque[tuple[int, datetime]]] = {}
        self.processed: dict[TP, datetime] = {}

    def queue(self, tp: TP) -> deque[tuple[int, datetime]]:
        """`tp`'s pending (offset, event time) pairs: the bridge appends each valid record that
        went into a batch (offsets arrive in order within a partition), taking the queue once per
        run of records."""
        pending = self._pending.get(tp)
        if pending is None:  # not setdefault(tp, deque()): that builds a deque per call
            pending = self._pending[tp] = deque()
        return pending

    def committed(self, offsets: Mapping[TP, int]) -> None:
        """Offsets (next to read) were committed: their records are processed."""
        for tp, next_offset in offsets.items():
            pending = self._pending.get(tp)
            while pending and pending[0][0] < next_offset:
                _, ts = pending.popleft()
                if tp not in self.processed or ts > self.processed[tp]:
                    self.processed[tp] = ts

    def forget(self, tp: TP) -> None:
        """The partition was revoked: its next owner reports it."""
        self._pending.pop(tp, None)
        self.processed.pop(tp, None)


def watermark_row(
    tp: tuple[str, int],
    *,
    done: int | None,
    all_done: bool,
    high_water: int | None,
    event_time: datetime | None,
    caught_up_at: datetime | None,
    observed_at: datetime,
) -> dict[str, Any]:
    """One partition's row. `done` is the offset (next to read) below which every record is
    processed; `all_done` says no record this run consumed is still waiting for its sinks."""
    caught_up = all_done and done is not None and high_water is not None and done >= high_water
    return {
        "topic": tp[0],
        "partition": tp[1],
        "caught_up": caught_up,
        "event_time": event_time,
        "caught_up_at": observed_at if caught_up else caught_up_at,
        "committed_offset": done,
        "high_water": high_water,
        "observed_at": observed_at,
    }
