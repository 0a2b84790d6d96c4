"""The OCPP 1.6J gateway: one WebSocket per charger at `/ocpp/<chargePointId>`, events to Kafka.

The loop only reads, calls the pure mapping (`evmonitor.gateway.mapping`), publishes, answers:

    handshake   path -> registry: unknown id 404; password set -> HTTP Basic (security
                profile 1), wrong or missing 401; subprotocol ocpp1.6 required (else 400)
    CALL        raw payload -> mapping -> events (+ dead letters for what cannot be read)
                -> Kafka, acks=all -> CALLRESULT
    Kafka down  CALLERROR InternalError: the charger keeps the message and retries; the retry
                maps to the same event ids, so it is stored once
    close       a `station_status` Unavailable for connector 0, published at once
    shutdown    stop accepting, let each charger's message in flight finish, close with 1001

Handlers read the payload as the charger sent it (schema validation off: real chargers deviate,
the mapping is lenient where nothing is lost and dead-letters the rest with the raw frame).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from http import HTTPStatus
from ssl import SSLContext
from typing import Any
from urllib.parse import unquote

from ocpp.exceptions import FormationViolationError, InternalError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, AuthorizationStatus, DataTransferStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from evmonitor.contract import ChargePointErrorCode, ChargePointStatus, hash_id_tag
from evmonitor.deadletter import Source
from evmonitor.deadletter import deadletter_record as deadletter_value
from evmonitor.errors import InvalidEvent, Reason, TransientError
from evmonitor.gateway import mapping
from evmonitor.gateway.metrics import GatewayMetrics
from evmonitor.gateway.passwords import verify_password
from evmonitor.gateway.publisher import Publisher, Record, deadletter_record, event_record
from evmonitor.gateway.registry import Charger, Registry
from evmonitor.names import Stage

__all__ = ["Gateway", "SUBPROTOCOL"]

SUBPROTOCOL = "ocpp1.6"
_PATH = re.compile(r"^/ocpp/([^/?#]+)/?(?:\?.*)?$")

log = logging.getLogger("evmonitor.gateway")


class _RedactIdTags(logging.Filter):
    """The ocpp library logs whole frames; an idTag identifies a person and stays out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = mapping.redact_id_tags(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# the library's per-frame INFO lines carry whole payloads: only its warnings and errors, redacted
_ocpp_log = logging.getLogger("evmonitor.gateway.ocpp")
_ocpp_log.setLevel(logging.WARNING)
_ocpp_log.addFilter(_RedactIdTags())


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Gateway:
    """The server: handshakes, one `_ChargerSession` per connection, shutdown."""

    def __init__(
        self,
        registry: Registry,
        publisher: Publisher,
        *,
        heartbeat_interval_s: int = 900,
        id_tag_hash_key: bytes = b"",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.heartbeat_interval_s = heartbeat_interval_s
        self.id_tag_hash_key = id_tag_hash_key
        self.clock = clock
        # last status a charger reported for connector 0, kept across its reconnects (heartbeats)
        self.last_status: dict[str, tuple[ChargePointStatus, ChargePointErrorCode]] = {}
        self.sessions: dict[str, _ChargerSession] = {}
        self._accepted: dict[ServerConnection, Charger] = {}
        self._server: Server | None = None
        self.metrics = GatewayMetrics(lambda: len(self.sessions), frozenset(str(a.value) for a in Action))

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, host: str, port: int, *, ssl: SSLContext | None = None) -> Server:
        """Listen on host:port; with `ssl`, wss:// only (OCPP security profile 2: TLS and Basic auth)."""
        self._server = await serve(
            self._serve_charger,
            host,
            port,
            subprotocols=[SUBPROTOCOL],  # a client offering none is refused by websockets (400)
            process_request=self._handshake,
            ping_interval=60,
            ping_timeout=60,
            max_size=1024 * 1024,
            server_header="evmonitor-gateway",
            ssl=ssl,
        )
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def shutdown(self, reason: str = "gateway shutting down") -> None:
        """Stop accepting, let each charger's message in flight finish, then close with 1001."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        await asyncio.gather(*(session.close(reason) for session in list(self.sessions.values())))
        await self._server.wait_closed()

    # --- handshake --------------------------------------------------------------------------

    async def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        match = _PATH.match(request.path)
        if match is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Connect to /ocpp/<chargePointId>\n")
        charger_id = unquote(match.group(1))
        remote = connection.remote_address
        try:
            charger = await asyncio.to_thread(self.registry.get, charger_id)
        except TransientError as exc:
            log.error("gateway: registry unavailable, refusing %r: %s", charger_id, exc)
            self.metrics.handshakes.labels("refused").inc()
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Registry unavailable, retry later\n")
        if charger is None:
            log.warning("gateway: refused unknown charge point %r from %s (404)", charger_id, remote)
            self.metrics.handshakes.labels("refused").inc()
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown charge point\n")
        if charger.password_hash is not None:
            password = _basic_password(request.headers.get("Authorization"), charger_id)
            if password is None or not await asyncio.to_thread(verify_password, password, charger.password_hash):
                log.warning("gateway: refused %r from %s: %s password (401)", charger_id, remote,
                            "missing" if password is None else "wrong")  # fmt: skip
                response = connection.respond(HTTPStatus.UNAUTHORIZED, "Authentication required\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="evmonitor", charset="UTF-8"'
                self.metrics.handshakes.labels("refused").inc()
                return response
        self._accepted[connection] = charger
        self.metrics.handshakes.labels("accepted").inc()
        return None

    # --- one connection ---------------------------------------------------------------------

    async def _serve_charger(self, connection: ServerConnection) -> None:
        charger = self._accepted.pop(connection)
        session = _ChargerSession(charger, connection, self)
        previous = self.sessions.get(charger.id)
        self.sessions[charger.id] = session
        if previous is not None:  # the charger reconnected before we saw its old socket die
            await previous.close("replaced by a new connection from the same charge point")
        log.info("gateway: %s connected from %s", charger.id, connection.remote_address)
        try:
            while True:
                try:
                    frame = await connection.recv()
                except ConnectionClosed:
                    break
                async with session.busy:
                    await session.route_message(frame)
        finally:
            replaced = self.sessions.get(charger.id) is not session
            if not replaced:
                del self.sessions[charger.id]
            close = connection.close_reason or f"code {connection.close_code}"
            log.info("gateway: %s disconnected (%s)", charger.id, close)
            if not replaced:
                await self._publish_offline(charger.id, str(connection.id), close)

    async def _publish_offline(self, charger_id: str, connection_id: str, close: str) -> None:
        event = mapping.offline_event(
            charger_id, connection_id=connection_id, closed_at=self.clock(), info=f"connection closed: {close}"
        )
        try:
            await self.publisher.publish([event_record(event)])
            self.metrics.published.labels("event").inc()
        except TransientError as exc:
            log.error("gateway: could not publish that %s went offline: %s", charger_id, exc)


def _basic_password(header: str | None, charger_id: str) -> str | None:
    """The password of an HTTP Basic `Authorization` header whose user is the charge point id."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password if sep and user == charger_id else None


class _ChargerSession(ChargePoint):
    """The OCPP conversation with one connected charger. Messages are handled one at a time."""

    def __init__(self, charger: Charger, connection: ServerConnection, gateway: Gateway) -> None:
        super().__init__(charger.id, connection, logger=_ocpp_log)
        self.charger = charger
        self.gateway = gateway
        self.busy = asyncio.Lock()
        self._frame = ""
        self._payload: Any = None
        self._answered = ""  # "ok" or "error": what the CALL being handled was answered with

    async def close(self, reason: str) -> None:
        """Close once the message being handled (if any) is answered."""
        async with self.busy:
            await self._connection.close(CloseCode.GOING_AWAY, reason)

    async def route_message(self, raw_msg: Any) -> None:
        # keep the frame as the charger sent it: the mapping reads the camelCase payload, and a
        # dead letter carries the frame
        self._frame = raw_msg if isinstance(raw_msg, str) else bytes(raw_msg).decode("utf-8", "replace")
        try:
            parsed = json.loads(self._frame)
            self._payload = parsed[3] if isinstance(parsed, list) and len(parsed) > 3 else None
        except (ValueError, RecursionError):
            parsed, self._payload = None, None
        if log.isEnabledFor(logging.DEBUG) and isinstance(parsed, list) and len(parsed) > 2:
            log.debug("gateway: %s: received %s %s", self.id, parsed[2] if parsed[0] == 2 else "answer", parsed[1])
        self._answered = ""
        await super().route_message(self._frame)
        if isinstance(parsed, list) and len(parsed) > 2 and parsed[0] == 2:
            self.gateway.metrics.message(str(parsed[2]), self._answered or "error")
        elif self._answered:  # a frame that was no readable CALL, answered with a CALLERROR
            self.gateway.metrics.message("other", self._answered)

    async def _send(self, message: str) -> None:
        # the answer to a CALL: [3, ...] CALLRESULT or [4, ...] CALLERROR
        self._answered = "error" if message.lstrip("[ ").startswith("4") else "ok"
        await super()._send(message)

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.gateway.clock()

    async def _publish(self, events: Sequence[dict[str, Any]], unreadable: Sequence[mapping.Unreadable] = ()) -> None:
        records: list[Record] = [event_record(event) for event in events]
        records += [self._deadletter(item.reason, item.detail) for item in unreadable]
        try:
            await self.gateway.publisher.publish(records)
            self.gateway.metrics.published.labels("event").inc(len(records) - len(unreadable))
            self.gateway.metrics.published.labels("deadletter").inc(len(unreadable))
        except TransientError as exc:
            log.warning("gateway: %s: not stored, answering InternalError so it retries: %s", self.id, exc)
            raise InternalError(description="Could not store the message; retry later") from None

    def _deadletter(self, reason: Reason, detail: str) -> Record:
        action = self._action()
        log.warning("gateway: %s %s unreadable (%s): %s", self.id, action, reason, detail)
        value = deadletter_value(
            reason=reason,
            detail=f"charger {self.id}: {action}: {detail}"[:1000],
            original=mapping.redact_id_tags(self._frame).encode(),
            source=Source(key=self.id.encode()),
            received_at=self.now,
            stage=Stage.GATEWAY,
        )
        return deadletter_record(self.id, value, reason)

    def _action(self) -> str:
        try:
            return str(json.loads(self._frame)[2])
        except (ValueError, LookupError, TypeError):
            return "?"

    async def _store_or_deadletter(self, read: Callable[[], mapping.Readings]) -> None:
        try:
            readings = read()
        except InvalidEvent as exc:  # the whole message: kept as a dead letter, answered as stored
            readings = mapping.Readings([], [mapping.Unreadable(exc.reason, exc.detail)])
        await self._publish(readings.events, readings.unreadable)

    async def _registry(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(method, *args, **kwargs)
        except TransientError as exc:
            log.warning("gateway: %s: registry unavailable, answering InternalError: %s", self.id, exc)
            raise InternalError(description="Registry unavailable; retry later") from None

    # --- Core profile -----------------------------------------------------------------------

    @on(Action.boot_notification, skip_schema_validation=True)
    async def on_boot_notification(self, call_unique_id: str, **_: Any) -> call_result.BootNotification:
        charger = await self._registry(self.gateway.registry.get, self.id) or self.charger
        received_at = self.now
        await self._store_or_deadletter(lambda: mapping.Readings(
            [mapping.boot_event(charger.profile, self._payload, unique_id=call_unique_id, received_at=received_at)], []
        ))  # fmt: skip
        return call_result.BootNotification(
            current_time=_ocpp_time(received_at), interval=self.gateway.heartbeat_interval_s,
            status=RegistrationStatus.accepted,
        )  # fmt: skip

    @on(Action.status_notification, skip_schema_validation=True)
    async def on_status_notification(self, call_unique_id: str, **_: Any) -> call_result.StatusNotification:
        received_at = self.now
        events: list[dict[str, Any]] = []

        def read() -> mapping.Readings:
            events.append(mapping.status_event(self.id, self._payload, unique_id=call_unique_id, received_at=received_at))
            return mapping.Readings(events, [])

        await self._store_or_deadletter(read)
        for event in events:
            if event["connector_id"] == 0:
                self.gateway.last_status[self.id] = (
                    ChargePointStatus(event["status"]), ChargePointErrorCode(event["error_code"])
                )  # fmt: skip
        return call_result.StatusNotification()

    @on(Action.heartbeat, skip_schema_validation=True)
    async def on_heartbeat(self, call_unique_id: str, **_: Any) -> call_result.Heartbeat:
        received_at = self.now
        status, error_code = self.gateway.last_status.get(
            self.id, (ChargePointStatus.AVAILABLE, ChargePointErrorCode.NO_ERROR)
        )
        event = mapping.heartbeat_event(
            self.id, status=status, error_code=error_code, unique_id=call_unique_id, received_at=received_at
        )
        try:
            await self._publish([event])
        except InternalError:
            pass  # a missed liveness ping loses nothing; the charger still needs the time
        return call_result.Heartbeat(current_time=_ocpp_time(received_at))

    @on(Action.authorize, skip_schema_validation=True)
    async def on_authorize(self, **_: Any) -> call_result.Authorize:
        # evmonitor monitors; authorising drivers is the operator's CSMS's job
        return call_result.Authorize(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))

    @on(Action.start_transaction, skip_schema_validation=True)
    async def on_start_transaction(self, **_: Any) -> call_result.StartTransaction:
        try:
            start = mapping.parse_start(self._payload)
        except InvalidEvent as exc:
            await self._publish([], [mapping.Unreadable(exc.reason, exc.detail)])
            raise FormationViolationError(description=f"StartTransaction unreadable: {exc.detail}"[:255]) from None
        charger = await self._registry(self.gateway.registry.get, self.id) or self.charger
        transaction = await self._registry(
            self.gateway.registry.mint_transaction,
            self.id,
            connector_id=start.connector_id,
            id_tag_hash=hash_id_tag(start.id_tag, self.gateway.id_tag_hash_key),
            meter_start_wh=start.meter_start_wh,
            started_at=start.timestamp,
            price_eur_per_kwh=charger.profile.price_eur_per_kwh,
        )
        await self._publish([mapping.session_started_event(start, transaction, id_tag_key=self.gateway.id_tag_hash_key)])
        return call_result.StartTransaction(
            transaction_id=transaction.id, id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted)
        )

    @on(Action.meter_values, skip_schema_validation=True)
    async def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        await self._store_or_deadletter(lambda: mapping.meter_values_events(self.id, self._payload))
        return call_result.MeterValues()

    @on(Action.stop_transaction, skip_schema_validation=True)
    async def on_stop_transaction(self, **_: Any) -> call_result.StopTransaction:
        payload = self._payload
        transaction = None
        transaction_id = mapping.transaction_id_of(payload)
        if transaction_id is not None:
            transaction = await self._registry(self.gateway.registry.transaction, self.id, transaction_id)
        await self._store_or_deadletter(lambda: mapping.stop_events(self.id, payload, transaction))
        if isinstance(payload, dict) and payload.get("idTag"):
            return call_result.StopTransaction(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))
        return call_result.StopTransaction()

    @on(Action.data_transfer, skip_schema_validation=True)
    async def on_data_transfer(self, **_: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)


def _ocpp_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
