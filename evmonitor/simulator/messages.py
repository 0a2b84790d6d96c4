"""What the simulator hands to Kafka: `Message`, and the small helpers that make one.

Time inside the simulator is integer milliseconds since the epoch (UTC): integers sort, add and
compare exactly, so a plan is byte-identical for a given seed, and the wire format (RFC 3339
with milliseconds and `Z`) carries no more precision than the plan has.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from evmonitor.contract import TOPIC_BY_TYPE, EventType
from evmonitor.errors import Reason

__all__ = ["Message", "RunRandom", "encode", "event_message", "iso_ms", "new_uuid", "to_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Message:
    """One Kafka record: `value` goes to `topic` keyed by `key` (the station id, UTF-8).

    `expected` is None for a valid event (and its duplicates); for a deliberately bad one it is
    the `Reason` that `evmonitor.contract.validate` must give it.
    """

    topic: str
    key: bytes
    value: bytes
    expected: Reason | None = None


def to_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds (floor); naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} is naive; pass an aware datetime (UTC)")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds: `2024-05-01T08:15:00.250Z`."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


class RunRandom(random.Random):
    """A generator that also stands for one run: the ids it mints (`new_uuid`) are unique to it.

    `--seed` fixes the fleet and the shape of the day; the run id makes a second run of the same
    seed send other session and event ids, so two runs never merge into each other's sessions.
    The run changes no draw: every other number the generator gives is the seed's own.
    """

    def __init__(self, seed: str, run_id: str | None = None) -> None:
        super().__init__(seed)
        self.run_id = run_id
        digest = hashlib.sha256(f"evmonitor-run:{run_id}".encode()).digest()[:16]
        self.run_mask = int.from_bytes(digest, "big") if run_id is not None else 0


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng`: repeatable for a seed, and unique to a `RunRandom`'s run."""
    drawn = rng.getrandbits(128) ^ getattr(rng, "run_mask", 0)
    return str(uuid.UUID(int=drawn, version=4))


def encode(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; non-ASCII stays UTF-8 (station names) as real chargers send it."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def event_message(event: dict[str, Any]) -> Message:
    """A valid event as the message that carries it: its type's topic, keyed by station."""
    return Message(
        topic=TOPIC_BY_TYPE[EventType(event["event_type"])],
        key=event["station_id"].encode(),
        value=encode(event),
    )
