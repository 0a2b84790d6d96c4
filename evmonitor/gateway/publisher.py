"""Kafka for the gateway's event loop: send, then wait for `acks=all` without blocking the loop.

`Publisher.publish` returns only once Kafka acknowledged every record it was given, and raises
`TransientError` if Kafka refused one or did not answer within `timeout_s`. The server answers
the charger after it returns, so a CALLRESULT always means "stored"; after an error the charger
keeps the message and retries, and the retry carries the same event ids (a duplicate at worst,
which the fold ignores).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaError

from evmonitor.contract import TOPIC_BY_TYPE, EventType
from evmonitor.errors import Reason, TransientError
from evmonitor.names import Topic
from evmonitor.storage.kafka import make_producer, translate_errors

__all__ = ["Publisher", "Record", "deadletter_record", "event_record"]

log = logging.getLogger("evmonitor.gateway")


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def event_record(event: dict[str, Any]) -> Record:
    """An event of the contract, keyed by its station so one station's events stay in order."""
    return Record(
        TOPIC_BY_TYPE[EventType(event["event_type"])],
        event["station_id"].encode(),
        json.dumps(event, separators=(",", ":")).encode(),
    )


def deadletter_record(charger_id: str, value: bytes, reason: Reason) -> Record:
    return Record(str(Topic.DEADLETTER), charger_id.encode(), value, (("reason", str(reason).encode()),))


class Publisher:
    def __init__(self, producer: Any, *, timeout_s: float = 10.0) -> None:
        self.producer = producer
        self.timeout_s = timeout_s
        # `send` blocks while the producer has no metadata (Kafka down at start, max_block_ms):
        # never on the event loop
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway-kafka")

    @classmethod
    def connect(cls, bootstrap: str, *, timeout_s: float = 10.0, **overrides: Any) -> "Publisher":
        """A publisher on its own producer, tuned for a charger waiting on the other end."""
        config: dict[str, Any] = dict(
            linger_ms=1,  # send at once: a charger waits for the answer
            max_block_ms=5000,  # a missing broker must not hold a send thread for a minute
            request_timeout_ms=int(timeout_s * 1000),
            # back within a second of Kafka's return, not after the default 30 s backoff
            reconnect_backoff_max_ms=1000,
        )
        config.update(overrides)
        return cls(make_producer(bootstrap, **config), timeout_s=timeout_s)

    async def publish(self, records: Sequence[Record]) -> None:
        """Send `records` in order; return once Kafka acknowledged all of them (see module doc)."""
        if not records:
            return
        loop = asyncio.get_running_loop()
        acks = [loop.create_future() for _ in records]
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._send, loop, records, acks), timeout=self.timeout_s
            )
            await asyncio.wait_for(asyncio.gather(*acks), timeout=self.timeout_s)
        except TimeoutError:
            raise TransientError(f"kafka did not acknowledge within {self.timeout_s}s") from None
        finally:
            for ack in acks:  # given up on: a late ack or error has no one to tell
                if not ack.done():
                    ack.cancel()

    def _send(self, loop: asyncio.AbstractEventLoop, records: Sequence[Record], acks: list[asyncio.Future]) -> None:
        for record, ack in zip(records, acks):
            with translate_errors():
                future = self.producer.send(
                    record.topic, key=record.key, value=record.value, headers=list(record.headers)
                )
            future.add_callback(lambda _meta, ack=ack: loop.call_soon_threadsafe(_settle, ack, None))
            future.add_errback(lambda exc, ack=ack: loop.call_soon_threadsafe(_settle, ack, exc))

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and close. A record still unacknowledged was never answered as stored: dropping it is safe."""
        self._executor.shutdown(wait=True)
        try:
            self.producer.close(timeout=timeout_s)  # flushes first
        except KafkaError as exc:
            log.warning("gateway: Kafka did not take every record before shutdown (%r); their chargers "
                        "were not told they are stored and will send them again", exc)  # fmt: skip


def _settle(ack: asyncio.Future, exc: BaseException | None) -> None:
    if ack.done():
        return
    if exc is None:
        ack.set_result(None)
    else:
        ack.set_exception(TransientError(f"kafka refused a record: {exc!r}"))
