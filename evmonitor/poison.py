"""Find the events a store refuses for good, without giving up the rest of the batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from evmonitor.errors import SinkRejected

__all__ = ["Event", "Rejected", "isolate_poison"]

Event = dict[str, Any]  # a normalised event, `evmonitor.contract.Event.to_wire()`


class Rejected(NamedTuple):
    """An event a store refused for good, with the store's reason in its own words."""

    event: Event
    reason: str


def isolate_poison(events: Sequence[Event], write: Callable[[Sequence[Event]], list[Rejected]]) -> list[Rejected]:
    """Write `events` through `write`; where the store refuses a whole batch (`SinkRejected`),
    bisect until only the events it refuses remain.

    `write` returns the events it refused one by one (a bulk API's per-document errors) or
    raises `SinkRejected` when it can only refuse the batch as a whole (a transaction).
    `TransientError` propagates untouched: a store that is down is retried, never taken as a
    verdict on the data. With k poison events among n, this costs O(k log n) writes.
    """
    if not events:
        return []
    try:
        return write(events)
    except SinkRejected as exc:
        if len(events) == 1:
            return [Rejected(events[0], exc.detail)]
    middle = len(events) // 2
    return isolate_poison(events[:middle], write) + isolate_poison(events[middle:], write)
