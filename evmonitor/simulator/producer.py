"""The simulator's only I/O: handing messages to a Kafka producer.

A `kafka.KafkaProducer` sends asynchronously; a delivery failure surfaces on the record's
future. `Sender` attaches an errback to each future instead of keeping the futures (a drain
run sends tens of thousands of records) and raises the first failure at the next check, and
at the latest after `flush`. Any object with `send(topic, key=..., value=...)` and `flush()`
works as a producer, which is how the tests run without Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kafka.errors import KafkaError

from evmonitor.errors import TransientError
from evmonitor.simulator.messages import Message

__all__ = ["Sender", "send"]

_PROGRESS_EVERY = 1000


class Sender:
    """Sends `Message`s through `producer`; raises `TransientError` once a delivery failed."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.sent = 0
        self._failures: list[BaseException] = []

    def __call__(self, message: Message) -> None:
        try:
            future = self.producer.send(message.topic, key=message.key, value=message.value)
        except KafkaError as exc:  # buffer full past max_block_ms, metadata unavailable, ...
            raise TransientError(f"kafka: {exc!r}") from exc
        add_errback = getattr(future, "add_errback", None)
        if add_errback is not None:
            add_errback(self._failures.append)
        self.sent += 1

    def check(self) -> None:
        """Raise `TransientError` if any message sent so far failed to be delivered."""
        if self._failures:
            first = self._failures[0]
            raise TransientError(f"kafka: {len(self._failures)} message(s) not delivered: {first!r}") from first

    def flush(self) -> None:
        """Block until every message sent so far is acknowledged or failed; then `check`."""
        try:
            self.producer.flush()
        except KafkaError as exc:
            raise TransientError(f"kafka: {exc!r}") from exc
        self.check()


def send(messages: Iterable[Message], producer: Any, on_progress: Callable[[int], None] | None = None) -> int:
    """Send every message (key and value as given, to its topic), flush, return how many.

    `on_progress` gets the number sent so far every 1000 messages and once at the end. Raises
    `TransientError` if Kafka refused or failed to deliver any of them; messages before the
    failure may have been delivered (valid events are idempotent downstream).
    """
    sender = Sender(producer)
    for message in messages:
        sender(message)
        if sender.sent % _PROGRESS_EVERY == 0:
            sender.check()
            if on_progress is not None:
                on_progress(sender.sent)
    sender.flush()
    if on_progress is not None:
        on_progress(sender.sent)
    return sender.sent
