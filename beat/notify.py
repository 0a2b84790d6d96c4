"""Alert notifications: a durable outbox delivered to a webhook and by e-mail, with retries.

`upsert_alerts` writes an `alert_outbox` row in the same transaction as an alert that opens or
closes, `supersede` one for an alert that late events withdrew (event `withdrawn`: it no longer
matches the history; its redrawn successor is announced on its own) (sql/008_notify.sql), so a notification exists exactly when the change does. The
`deliver_notifications` job (every EVMON_NOTIFY_INTERVAL_S) gives each recent outbox row one
`alert_deliveries` row per configured channel and sends what is due, one delivery per
transaction (`FOR UPDATE SKIP LOCKED`: concurrent runs never take the same one): a success is
marked delivered and never sent again; a failure (a connection error, a timeout, an HTTP status
other than 2xx, an SMTP error) is retried with exponential backoff (EVMON_NOTIFY_INTERVAL_S,
doubling, capped at EVMON_NOTIFY_RETRY_MAX_S) until EVMON_NOTIFY_MAX_AGE_S, then given up
(logged, `gave_up_at`). Between a send and its commit a crash may repeat one delivery, so every
notification carries its `delivery_id` (the webhook's `X-Evmonitor-Delivery` header and body,
the e-mail's Message-ID): receivers drop one they already have.

Webhook (EVMON_NOTIFY_WEBHOOK_URL, EVMON_NOTIFY_WEBHOOK_SECRET): a JSON POST, headers

    X-Evmonitor-Delivery:   the delivery id (idempotency key)
    X-Evmonitor-Timestamp:  Unix seconds when this attempt was signed
    X-Evmonitor-Signature:  sha256=<hex HMAC-SHA256 over "<timestamp>." + the raw body, keyed
                            with the secret>

A receiver recomputes the HMAC over the timestamp header, a dot and the raw body bytes, compares
it in constant time (`hmac.compare_digest`), rejects a timestamp more than 5 minutes away from
its clock (replay) and ignores a delivery id it has seen (`verify_signature` does the first two).

E-mail (EVMON_NOTIFY_EMAIL_TO, EVMON_SMTP_*): one message per notification to every address,
subject `[evmonitor] <OPENED|CLOSED> <severity> <kind>: <station>`, body the alert's summary and
fields; STARTTLS and login when configured. With no channel configured nothing is sent; outbox
rows are kept 2 x EVMON_NOTIFY_MAX_AGE_S, then pruned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.storage.postgres import translate_errors

__all__ = [
    "Channel",
    "EmailChannel",
    "NotifyError",
    "WebhookChannel",
    "channels",
    "deliver_notifications",
    "sign",
    "verify_signature",
]

log = logging.getLogger("evmonitor.notify")

REPLAY_WINDOW_S = 300


class NotifyError(Exception):
    """One attempt failed; the message says why (it is kept in alert_deliveries.last_error)."""


class Channel(Protocol):
    name: str

    def send(self, delivery_id: str, payload: Mapping[str, Any]) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Evmonitor-Signature value of `body` sent at `timestamp` (Unix seconds, as a string)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and the timestamp is within 5 minutes."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= REPLAY_WINDOW_S and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, secret: str, timeout_s: float) -> None:
        self.url, self.secret, self.timeout_s = url, secret, timeout_s

    def send(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        body = json.dumps({"delivery_id": delivery_id, **payload}, sort_keys=True).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "evmonitor-notify",
            "X-Evmonitor-Delivery": delivery_id, "X-Evmonitor-Timestamp": timestamp,
            "X-Evmonitor-Signature": sign(self.secret, timestamp, body),
        })  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise NotifyError(f"webhook answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise NotifyError(f"webhook unreachable: {getattr(exc, 'reason', exc)}") from None
        if not 200 <= status < 300:
            raise NotifyError(f"webhook answered HTTP {status}")


def _subject(payload: Mapping[str, Any]) -> str:
    station = payload["station_id"]
    if payload.get("station_name") and payload["station_name"] != station:
        station = f"{payload['station_name']} ({station})"
    where = f" connector {payload['connector_id']}" if payload.get("connector_id") not in (None, 0) else ""
    return f"[evmonitor] {payload['event'].upper()} {payload['severity']} {payload['kind']}: {station}{where}"


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        s = self.settings
        message = EmailMessage()
        message["Subject"] = _subject(payload)
        message["From"] = s.smtp_from
        message["To"] = ", ".join(s.notify_email_to)
        message["Message-ID"] = f"<{delivery_id}@evmonitor>"
        fields = "\n".join(f"{k}: {v}" for k, v in payload.items() if k != "summary" and v is not None)
        message.set_content(f"{payload['summary']}\n\n{fields}\ndelivery_id: {delivery_id}\n")
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.notify_timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}") from None


def channels(settings: Settings) -> list[Channel]:
    """The channels the settings configure (none: notifications are off)."""
    out: list[Channel] = []
    if settings.notify_webhook_url:
        out.append(WebhookChannel(settings.notify_webhook_url, settings.notify_webhook_secret, settings.notify_timeout_s))
    if settings.notify_email_to:
        out.append(EmailChannel(settings))
    return out


_ENQUEUE = sa.text("""
INSERT INTO alert_deliveries (outbox_id, channel, next_attempt_at)
SELECT o.id, :channel, :now FROM alert_outbox o WHERE o.created_at >= now() - make_interval(secs => :max_age)
ON CONFLICT DO NOTHING
""")

_NEXT = sa.text("""
SELECT d.outbox_id, d.channel, d.attempts, o.delivery_id::text AS delivery_id, o.payload, o.created_at
FROM alert_deliveries d JOIN alert_outbox o ON o.id = d.outbox_id
WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.next_attempt_at <= :now AND d.channel = ANY(:channels)
ORDER BY o.id, d.channel LIMIT 1 FOR UPDATE OF d SKIP LOCKED
""")


def backoff(settings: Settings, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: the interval, doubling, capped."""
    return timedelta(seconds=min(settings.notify_interval_s * 2 ** max(attempts - 1, 0), settings.notify_retry_max_s))


def deliver_notifications(
    engine: sa.Engine, settings: Settings, now: datetime, *, using: Sequence[Channel] | None = None, limit: int = 500
) -> dict[str, Any]:
    """Send what is due (at most `limit` attempts); return counts per outcome."""
    chans = {c.name: c for c in (channels(settings) if using is None else using)}
    counts: dict[str, Any] = {"channels": sorted(chans), "delivered": 0, "failed": 0, "gave_up": 0, "pruned": 0}
    with translate_errors(), engine.begin() as conn:
        for name in chans:
            conn.execute(_ENQUEUE, {"channel": name, "now": now, "max_age": settings.notify_max_age_s})
        counts["pruned"] = conn.execute(
            sa.text("DELETE FROM alert_outbox WHERE created_at < now() - make_interval(secs => :age)"),
            {"age": 2 * settings.notify_max_age_s},
        ).rowcount
    for _ in range(limit if chans else 0):
        with translate_errors(), engine.begin() as conn:
            row = conn.execute(_NEXT, {"now": now, "channels": sorted(chans)}).first()
            if row is None:
                break
            key = {"id": row.outbox_id, "channel": row.channel, "now": now}
            try:
                chans[row.channel].send(row.delivery_id, row.payload)
            except NotifyError as exc:
                attempts = row.attempts + 1
                expired = now - row.created_at >= timedelta(seconds=settings.notify_max_age_s)
                conn.execute(sa.text(
                    "UPDATE alert_deliveries SET attempts = :attempts, last_error = :error, next_attempt_at = :next, "
                    "gave_up_at = CASE WHEN :expired THEN CAST(:now AS timestamptz) END "
                    "WHERE outbox_id = :id AND channel = :channel"),
                    {**key, "attempts": attempts, "error": str(exc)[:500], "expired": expired,
                     "next": now + backoff(settings, attempts)})  # fmt: skip
                counts["gave_up" if expired else "failed"] += 1
                (log.error if expired else log.warning)(
                    "notify: %s of %s (delivery %s) failed, attempt %d%s: %s", row.channel, row.payload["alert_id"],
                    row.delivery_id, attempts, "; giving up (EVMON_NOTIFY_MAX_AGE_S)" if expired else "", exc)
                continue
            conn.execute(sa.text("UPDATE alert_deliveries SET attempts = attempts + 1, delivered_at = :now, "
                                 "last_error = NULL WHERE outbox_id = :id AND channel = :channel"), key)  # fmt: skip
            counts["delivered"] += 1
    return counts
