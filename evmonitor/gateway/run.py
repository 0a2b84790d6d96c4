"""The `evmonitor gateway` role: build the gateway from `Settings`, serve until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from evmonitor.config import Settings
from evmonitor.errors import ConfigError
from evmonitor.gateway.publisher import Publisher
from evmonitor.gateway.registry import Registry
from evmonitor.gateway.server import Gateway
from evmonitor.heartbeat import start_heartbeat

__all__ = ["listen_address", "run", "tls_context"]

log = logging.getLogger("evmonitor.gateway")


def listen_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.ocpp_listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context when a certificate is configured (security profile 2), else None."""
    if settings.ocpp_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP 1.6 security whitepaper: TLS 1.2 or higher
    try:
        context.load_cert_chain(settings.ocpp_tls_cert, settings.ocpp_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"EVMON_OCPP_TLS_CERT/EVMON_OCPP_TLS_KEY: cannot load the certificate: {exc}") from exc
    return context


def run(settings: Settings) -> None:
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    host, port = listen_address(settings)
    context = tls_context(settings)
    # websockets logs frames at DEBUG, and a frame can carry a driver's id tag
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))
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
    if settings.gateway_metrics_port:
        from evmonitor.gateway.metrics import serve_metrics

        serve_metrics(settings.gateway_metrics_port, gateway.metrics, settings.metrics_address)
        log.info("gateway: metrics on http://%s:%d/metrics", settings.metrics_address, settings.gateway_metrics_port)
    stop_heartbeat = start_heartbeat(settings, "gateway")
    try:
        await gateway.start(host, port, ssl=context)
        scheme = "wss" if context else "ws"
        log.info("gateway: listening on %s://%s:%d/ocpp/<chargePointId>", scheme, host, gateway.port)
        await stop.wait()
        log.info("gateway: stopping: no new connections, finishing messages in flight")
        await gateway.shutdown("gateway shutting down")
    finally:
        stop_heartbeat()
        publisher.close()
        registry.close()
        log.info("gateway: stopped")
