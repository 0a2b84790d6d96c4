"""Drain mode's disorder: reordered sessions, duplicated messages, bad messages mixed in.

Each step takes a message list and returns a new one; none changes which valid events exist,
so the ground truth of a plan does not depend on the chaos knobs. Duplicates and reordering
stay within one station's messages (one Kafka key, hence one partition), where the pipeline
must cope with them; bad messages land anywhere.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from evmonitor.simulator.messages import Message

__all__ = ["add_duplicates", "mix_in", "reorder_sessions"]


def reorder_sessions(
    messages: Sequence[Message], session_ids: Sequence[str | None], rng: random.Random
) -> list[Message]:
    """Permute each session's events among the positions that session occupies.

    Only the session_* events (those with a session id) move, so a session_completed may now
    come before its session_started, while every other message keeps its place.
    """
    positions: dict[str, list[int]] = {}
    for i, session_id in enumerate(session_ids):
        if session_id is not None:
            positions.setdefault(session_id, []).append(i)
    out = list(messages)
    for places in positions.values():
        moved = [messages[i] for i in places]
        rng.shuffle(moved)
        for i, message in zip(places, moved):
            out[i] = message
    return out


def add_duplicates(messages: Sequence[Message], ratio: float, rng: random.Random) -> tuple[list[Message], int]:
    """Send each message again with probability `ratio`, at a random later position among its
    station's messages (same bytes, same key). Returns the new list and the number added."""
    if not 0 <= ratio <= 1:
        raise ValueError("duplicate_ratio must be in [0, 1]")
    if ratio == 0:
        return list(messages), 0
    by_station: dict[bytes, list[int]] = {}
    for i, message in enumerate(messages):
        by_station.setdefault(message.key, []).append(i)
    after: dict[int, list[Message]] = {}
    added = 0
    for places in by_station.values():
        last = len(places) - 1
        for j, place in enumerate(places):
            if rng.random() < ratio:
                after.setdefault(places[rng.randint(j, last)], []).append(messages[place])
                added += 1
    out: list[Message] = []
    for i, message in enumerate(messages):
        out.append(message)
        out.extend(after.get(i, ()))
    return out, added


def mix_in(messages: Sequence[Message], extra: Sequence[Message], rng: random.Random) -> list[Message]:
    """`messages` with `extra` inserted at uniformly random positions, `extra` in its order."""
    before = sorted(rng.randint(0, len(messages)) for _ in extra)
    out: list[Message] = []
    k = 0
    for i, message in enumerate(messages):
        while k < len(before) and before[k] == i:
            out.append(extra[k])
            k += 1
        out.append(message)
    out.extend(extra[k:])
    return out
