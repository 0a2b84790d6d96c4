"""The one contract both stores implement: `Sink.write(events) -> list[Rejected]`.

A batch task holds valid, normalised events and needs three outcomes, no more: the events are
in the store; some are refused for good (dead-letter those, keep the rest); or the store is down
(retry the whole batch later). Every store answers in these terms, whatever its driver raises:
each store maps its driver's exceptions once, in its own `translate_errors`, to `TransientError`
or `SinkRejected`, and `SinkRejected` never leaves `write`: the store bisects the batch
(`evmonitor.poison.isolate_poison`) and returns the refused events as `Rejected`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from evmonitor.names import SinkName
from evmonitor.poison import Event, Rejected

__all__ = ["Event", "Rejected", "Sink"]


class Sink(Protocol):
    """A store of valid events: PostgreSQL (`PostgresStore`), Elasticsearch (`SearchStore`).

    `write` blocks until the store has answered for every event of the batch: one request or
    transaction, or O(k log n) of them when k of n events are refused. When it returns, every
    event not in the returned list is durably in the store, and every event in it was refused
    for good, for a reason retrying cannot fix: the caller dead-letters those. It raises
    `TransientError` when the store is unreachable, busy or failing (connection lost, timeout,
    429/5xx, deadlock); then nothing is decided about any event and the caller retries the
    whole batch, which is harmless because every write is idempotent. It raises nothing else
    for the data.
    """

    name: SinkName

    def write(self, events: Sequence[Event]) -> list[Rejected]: ...
