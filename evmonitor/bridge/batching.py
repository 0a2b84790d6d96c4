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
    """Collects events into the open batch; `add` and `due` hand back a batch when it is ready.

    Time is an input (`now`, seconds on a monotonic clock): the batcher never reads a clock.
    """

    def __init__(self, max_events: int, max_age_s: float) -> None:
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.current: Batch | None = None

    def open(self, now: float) -> Batch:
        """The batch the next event joins (opened now if there is none)."""
        if self.current is None:
            self.current = Batch(batch_id=str(uuid.uuid4()), opened_at=now)
        return self.current

    def add(self, event: dict[str, Any], now: float) -> Batch | None:
        batch = self.open(now)
        batch.events.append(event)
        if len(batch.events) >= self.max_events:
            return self.take()
        return None

    def due(self, now: float) -> Batch | None:
        if self.current is not None and self.current.events and now - self.current.opened_at >= self.max_age_s:
            return self.take()
        return None

    def take(self) -> Batch | None:
        batch, self.current = self.current, None
        return batch if batch is not None and batch.events else None
