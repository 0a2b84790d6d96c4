"""The `evmonitor gateway` role: build the gateway from `Settings`, serve until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from evmonitor.config import Settings
from evmonitor.gateway.publisher import Publisher
from evmonitor.gateway.registry import Registry
from evmonitor.gateway.server import Gateway

__all__ = ["listen_address", "run"]

log = logging.getLogger("evmonitor.gateway")


def listen_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.ocpp_listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def run(settings: Settings) -> None:
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    host, port = listen_address(settings)
    registry = Registry.connect(settings.sqlalchemy_url, settings.sql_dir)
    publisher = Publisher.connect(settings.kafka_bootstrap, timeout_s=settings.ocpp_publish_timeout_s)
    gateway = Gateway(
        registry,
        publisher,
        heartbeat_interval_s=int(settings.heartbeat_interval_s),
        id_tag_hash_key=settings.id_tag_hash_key.encode(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start(host, port)
        log.info("gateway: listening on ws://%s:%d/ocpp/<chargePointId>", host, gateway.port)
        await stop.wait()
        log.info("gateway: stopping: no new connections, finishing messages in flight")
        await gateway.shutdown("gateway shutting down")
    finally:
        publisher.close()
        registry.close()
        log.info("gateway: stopped")
