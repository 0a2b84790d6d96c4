"""Heartbeats: the processes without a health endpoint of their own say in Redis that they live.

The bridge, the beat that holds the scheduler lock and the OCPP gateway each write
`<stack prefix>heartbeat:<role>:<host>:<pid>` (the stack's Celery key prefix, so stacks sharing one
Redis never see each other's) every `EVERY_S` seconds with a time-to-live of `TTL_S`; the key
holds JSON: the time it was written (`at`) and what the process chose to say (the bridge: its
batches in flight). A process that stops deletes its key; one that dies or hangs lets
it expire, so a reader sees the role down within `TTL_S`. The API's `/api/v1/pipeline` reads them
(`read_heartbeats`); workers need none (they answer Celery's inspect over the broker).

The beat runs on a daemon thread: it says the process is alive and can reach Redis, not that its
main loop makes progress (the bridge's consumer lag and the last write to PostgreSQL say that).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from evmonitor.config import Settings

__all__ = ["EVERY_S", "TTL_S", "read_heartbeats", "start_heartbeat"]

EVERY_S = 5.0
TTL_S = 20

log = logging.getLogger("evmonitor.heartbeat")


def _key(settings: Settings, role: str) -> str:
    return f"{settings.broker_key_prefix}heartbeat:{role}:{socket.gethostname()}:{os.getpid()}"


def start_heartbeat(settings: Settings, role: str, *, every_s: float = EVERY_S, ttl_s: int = TTL_S,
                    state: Callable[[], dict[str, Any]] = dict) -> Callable[[], None]:  # fmt: skip
    """Beat for `role` from a daemon thread until the returned function is called (it deletes the key).

    `state()` (called on that thread: keep it to reading a few numbers) is written along with the time.
    """
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
    key = _key(settings, role)
    stopped = threading.Event()

    def beat() -> None:
        while not stopped.is_set():
            try:
                client.set(key, json.dumps({**state(), "at": round(time.time(), 3)}), ex=ttl_s)
            except redis.RedisError as exc:  # Redis away: the key expires, readers see the role down
                log.debug("heartbeat %s: %s", role, exc)
            stopped.wait(every_s)

    thread = threading.Thread(target=beat, name=f"heartbeat-{role}", daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        thread.join(timeout=3)
        try:
            client.delete(key)
        except redis.RedisError:
            pass
        client.close()

    return stop


def read_heartbeats(client: Any, key_prefix: str) -> dict[str, list[dict[str, Any]]]:
    """role -> the live processes of it: [{"host", "pid", "age_s", **what it said}], from a `redis.Redis` client."""
    found: dict[str, list[dict[str, Any]]] = {}
    keys = sorted(client.scan_iter(match=f"{key_prefix}heartbeat:*", count=1000))
    values = client.mget(keys) if keys else []
    now = time.time()
    for key, value in zip(keys, values):
        if value is None:  # expired between the scan and the read
            continue
        role, host, pid = (key.decode() if isinstance(key, bytes) else key)[len(key_prefix) :].split(":", 3)[1:]
        said = json.loads(value)
        at = float(said.pop("at"))
        found.setdefault(role, []).append({**said, "host": host, "pid": int(pid), "age_s": round(max(0.0, now - at), 1)})
    return found
