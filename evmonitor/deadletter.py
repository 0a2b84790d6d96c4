"""Dead letters: every rejected record, with its reason and its original bytes, on `ev.deadletter`.

A record is JSON:

    {"reason": "missing_field", "detail": "...", "stage": "bridge" | "persist" | "index",
     "source": {"topic": ..., "partition": ..., "offset": ..., "key": ...},
     "received_at": "...Z", "event_id": ... (when known), "original_b64": "..."}

and carries the reason in a Kafka header too, so tools can route without parsing. Records are
keyed like their source (the station id) and must be flushed before the bridge commits past
them: `DeadLetters.flush` raises if Kafka did not take them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evmonitor.errors import Reason, TransientError
from evmonitor.names import Stage

__all__ = ["DeadLetters", "Source", "deadletter_record", "parse_record"]


@dataclass(frozen=True, slots=True)
class Source:
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None


def deadletter_record(
    *,
    reason: Reason | str,
    detail: str,
    original: bytes,
    source: Source,
    received_at: datetime,
    stage: Stage = Stage.BRIDGE,
    event_id: str | None = None,
) -> bytes:
    record: dict[str, Any] = {
        "reason": str(reason),
        "detail": detail,
        "stage": stage,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "key": source.key.decode("utf-8", "replace") if source.key is not None else None,
        },
        "received_at": received_at.isoformat().replace("+00:00", "Z"),
        "original_b64": base64.b64encode(original).decode("ascii"),
    }
    if event_id is not None:
        record["event_id"] = event_id
    return json.dumps(record, separators=(",", ":")).encode()


def parse_record(value: bytes) -> dict[str, Any]:
    record = json.loads(value)
    record["original"] = base64.b64decode(record.pop("original_b64"))
    return record


class DeadLetters:
    """Sends dead-letter records through a KafkaProducer; counts them by reason."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.counts: dict[str, int] = {}
        self._pending: list[Any] = []

    def send(self, record: bytes, *, reason: Reason | str, key: bytes | None) -> None:
        self._pending.append((self._send(record, reason, key), record, reason, key))
        self.counts[str(reason)] = self.counts.get(str(reason), 0) + 1

    def _send(self, record: bytes, reason: Reason | str, key: bytes | None) -> Any:
        return self.producer.send(self.topic, key=key, value=record, headers=[("reason", str(reason).encode())])

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until Kafka acknowledged every record sent so far.

        Records Kafka refused are sent again on the next call; until then this raises
        `TransientError`, and the caller must not commit past them.
        """
        if not self._pending:
            return
        self.producer.flush(timeout=timeout_s)
        failed = [item for item in self._pending if not item[0].succeeded()]
        if failed:
            error = failed[0][0].exception
            self._pending = [(self._send(rec, reason, key), rec, reason, key) for _, rec, reason, key in failed]
            raise TransientError(f"dead-letter write failed for {len(failed)} records: {error!r}")
        self._pending = []
