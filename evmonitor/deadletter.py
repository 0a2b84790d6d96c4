"""Dead letters: every rejected record, with its reason and its original bytes, on `ev.deadletter`.

A record is JSON:

    {"reason": "missing_field", "detail": "...", "stage": "bridge" | "persist" | "index",
     "source": {"topic": ..., "partition": ..., "offset": ..., "key": ...},
     "received_at": "...Z", "event_id": ... (when known), "original_b64": "..."}

and carries the reason in a Kafka header too, so tools can route without parsing. Records are
keyed like their source (the station id) and must be flushed before the bridge commits past
them: `DeadLetters.flush` raises if Kafka did not take them.

`DeadLetters.send` only queues a record; `dispatch` hands the queue to the producer back to back
(the bridge calls it once per poll), so kafka-python appends them to its batches one after
another instead of between the validation of records; `flush` dispatches what is queued, then
waits for Kafka's acknowledgement of every record.

The bridge sends a `DeadLetter` rather than the record's bytes: `dispatch` encodes it right before
the producer copies it into a batch, and until Kafka acknowledges it `DeadLetters` keeps the
`DeadLetter` (whose original the consumer's record holds anyway) for a resend, not its encoded
record, 4/3 of the original. Kept until the next commit, those records were ~90 MB per second of
a 10% bad stream, all of it fresh memory: the page faults of a `too_large` record's ~333 KB came
to half of its encoding's cost. Encoded and dropped at once, they reuse the same memory.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pybase64

from evmonitor.errors import Reason, TransientError
from evmonitor.names import Stage

__all__ = ["DeadLetter", "DeadLetters", "Source", "deadletter_record", "parse_record"]


@dataclass(frozen=True, slots=True)
class Source:
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None


def _dumps(value: Any) -> bytes:
    """`json.dumps(value, separators=(",", ":")).encode()`, ~10x faster: orjson gives the same
    bytes whenever its output is printable ASCII. It leaves non-ASCII and DEL unescaped where
    json.dumps writes `\\uXXXX`, and refuses what json.dumps takes (a lone surrogate, an integer
    beyond 64 bits): those take the standard library's encoder. json.dumps with `separators`
    builds a JSONEncoder per call: ~5 µs of a ~8 µs dead letter."""
    try:
        out = orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
    else:
        if out.isascii() and b"\x7f" not in out:
            return out
    return json.dumps(value, separators=(",", ":")).encode()


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
    }
    # The original's base64 is ASCII that JSON never escapes, so it is spliced in as bytes rather
    # than run through the encoder (a 300 KB `too_large` original took ~1 ms that way); the bytes
    # are the same as `json.dumps` of the whole record gives. pybase64 (SIMD) encodes a 185 KB
    # original in 8 µs where the standard library takes 290 µs.
    head = _dumps(record)
    tail = b'"}' if event_id is None else b'","event_id":' + _dumps(event_id) + b"}"
    return b"".join((head[:-1], b',"original_b64":"', pybase64.b64encode(original), tail))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter yet to be encoded: `encode()` is `deadletter_record` of these fields, the
    same bytes every time, so `DeadLetters` may encode it again for a resend."""

    reason: Reason | str
    detail: str
    original: bytes
    source: Source
    received_at: datetime
    stage: Stage = Stage.BRIDGE
    event_id: str | None = None

    def encode(self) -> bytes:
        return deadletter_record(reason=self.reason, detail=self.detail, original=self.original, source=self.source,
                                 received_at=self.received_at, stage=self.stage, event_id=self.event_id)  # fmt: skip


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
        self._queued: list[tuple[bytes | DeadLetter, str, bytes | None]] = []
        self._pending: list[tuple[Any, bytes | DeadLetter, str, bytes | None]] = []  # (future, record, reason, key)
        self._sent = False  # records went to the producer since the last `flush`

    def send(self, record: bytes | DeadLetter, *, reason: Reason | str, key: bytes | None) -> None:
        """Queue one record (its bytes, or a `DeadLetter` encoded when dispatched) for the next
        `dispatch` (or `flush`)."""
        reason = str(reason)
        self._queued.append((record, reason, key))
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def dispatch(self) -> None:
        """Hand every queued record to the producer, back to back; Kafka acknowledges them later.

        Should the producer raise (no metadata, buffer full past `max_block_ms`), the records not
        handed over stay queued and the error propagates.
        """
        self._forget_acknowledged()
        queued, self._queued = self._queued, []
        for i, (record, reason, key) in enumerate(queued):
            try:
                future = self._send(record if type(record) is bytes else record.encode(), reason, key)
            except BaseException:
                self._queued[:0] = queued[i:]
                raise
            self._pending.append((future, record, reason, key))
            self._sent = True

    def _forget_acknowledged(self) -> None:
        """Drop the records at the head of `_pending` that Kafka has acknowledged.

        Kafka acknowledges a dead letter within milliseconds, while `flush` comes with the next
        commit, up to a second later: kept that long, every record's future (and kafka-python's
        objects behind it, five or so per record) outlived two young garbage collections, and
        the bad input's ~60,000 such objects a second made the collector run full collections
        of the whole heap (~0.3 s of a bench.bridge_loop --bad round, ~30 CPU-µs per bad record).
        Dropped here, once per poll, they die young. Only the head is looked at, up to the first
        record not acknowledged (or refused: `flush` deals with it), so this costs one check per
        record dropped; futures complete in about the order they were sent. Reading a future the
        sender thread completes is safe: kafka-python sets its `exception` before `is_done`, and
        completes it only once Kafka acknowledged the record (retries included) or gave up on it.
        """
        pending = self._pending
        done = 0
        for future, *_ in pending:
            if not future.succeeded():
                break
            done += 1
        if done:
            del pending[:done]

    def _send(self, record: bytes, reason: str, key: bytes | None) -> Any:
        return self.producer.send(self.topic, key=key, value=record, headers=[("reason", reason.encode())])

    @property
    def pending(self) -> int:
        """Records queued, or sent and not yet seen acknowledged (by `dispatch` or `flush`)."""
        return len(self._pending) + len(self._queued)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until Kafka acknowledged every record sent so far.

        Records Kafka refused are sent again on the next call; until then this raises
        `TransientError`, and the caller must not commit past them.
        """
        self.dispatch()
        if not self._sent:
            return
        self.producer.flush(timeout=timeout_s)
        self._sent = False
        failed = [item for item in self._pending if not item[0].succeeded()]
        if failed:
            error = failed[0][0].exception
            self._pending = []
            self._queued[:0] = [(rec, reason, key) for _, rec, reason, key in failed]
            self.dispatch()
            raise TransientError(f"dead-letter write failed for {len(failed)} records: {error!r}")
        self._pending = []
