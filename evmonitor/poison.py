"""Find the events a store refuses for good, without giving up the rest of the batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from evmonitor.errors import SinkRejected

__all__ = ["isolate_poison"]

E = TypeVar("E")


def isolate_poison(events: Sequence[E], write: Callable[[Sequence[E]], Any]) -> list[tuple[E, str]]:
    """Write `events`; if the store rejects the batch, bisect until only poison events remain.

    Returns the rejected events with the store's reason; everything else has been written.
    `TransientError` from `write` propagates untouched: a store that is down is retried, never
    taken as a verdict on the data. With k poison events among n, this costs O(k log n) writes.
    """
    if not events:
        return []
    try:
        write(events)
        return []
    except SinkRejected as exc:
        if len(events) == 1:
            return [(events[0], exc.detail)]
    middle = len(events) // 2
    return isolate_poison(events[:middle], write) + isolate_poison(events[middle:], write)
