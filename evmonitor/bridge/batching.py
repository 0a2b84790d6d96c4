"""Micro-batches: flush at N events or when the oldest event is T old, whichever comes first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from evmonitor.transport import encode_events

__all__ = ["Batch", "Batcher"]


@dataclass(slots=True)
class Batch:
    batch_id: str
    opened_at: float
    events: list[dict[str, Any]] = field(default_factory=list)
    # set by the bridge once published
    published_at: float | None = None
    publish_count: int = 0
    done_sinks: set[str] = field(default_factory=set)
    _payload: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.events)

    def payload(self) -> str:
        """The events as one JSON string, encoded on first use: every sink and re-publish sends it.

        Call it only once the batch is closed (taken from the `Batcher`): it is not re-encoded.
        """
        if self._payload is None:
            self._payload = encode_events(self.events)
        return self._payload


class Batcher:
    """Collects events into open batches, one per lane; `add` and `due` hand back a batch when it
    is ready (`max_events` events, or its oldest event `max_age_s` old).

    A lane is a share of the stations (the bridge uses the record's partition number: a station's
    events are in the same partition number of every topic), so batches of different lanes never
    share a station and two persist workers can write them at once without waiting for each
    other's per-station locks. With one lane this is a plain micro-batcher.

    Time is an input (`now`, seconds on a monotonic clock): the batcher never reads a clock.
    """

    def __init__(self, max_events: int, max_age_s: float, lanes: int = 1) -> None:
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.lanes = lanes
        self.open_batches: dict[int, Batch] = {}

    def open(self, now: float, lane: int = 0) -> Batch:
        """The batch the next event of `lane` joins (opened now if there is none)."""
        batch = self.open_batches.get(lane)
        if batch is None:
            batch = self.open_batches[lane] = Batch(batch_id=str(uuid.uuid4()), opened_at=now)
        return batch

    def add(self, event: dict[str, Any], now: float, lane: int = 0) -> Batch | None:
        batch = self.open(now, lane)
        batch.events.append(event)
        if len(batch.events) >= self.max_events:
            return self.take(lane)
        return None

    def due(self, now: float) -> Batch | None:
        """One batch whose oldest event is `max_age_s` old (call again until None)."""
        for lane, batch in self.open_batches.items():
            if batch.events and now - batch.opened_at >= self.max_age_s:
                return self.take(lane)
        return None

    def take(self, lane: int | None = None) -> Batch | None:
        """Close and return `lane`'s batch (by default the oldest open one), if it holds events."""
        if lane is None:
            filled = [k for k, batch in self.open_batches.items() if batch.events]
            if not filled:
                self.open_batches.clear()
                return None
            lane = min(filled, key=lambda k: self.open_batches[k].opened_at)
        batch = self.open_batches.pop(lane, None)
        return batch if batch is not None and batch.events else None
