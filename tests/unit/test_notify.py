"""The webhook signature as a receiver checks it, and the retry backoff."""

from __future__ import annotations

from datetime import timedelta

from beat.notify import backoff, sign, verify_signature
from evmonitor.config import Settings

BODY = b'{"alert_id": "fault:ST-1:1:2026-11-24T12:00:00Z", "event": "opened"}'


def test_a_receiver_accepts_the_signed_body_and_nothing_else():
    signature = sign("key", "1764000000", BODY)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_signature("key", "1764000000", BODY, signature, now=1764000000 + 60)
    assert not verify_signature("other", "1764000000", BODY, signature, now=1764000000)  # wrong secret
    assert not verify_signature("key", "1764000000", BODY + b" ", signature, now=1764000000)  # body changed
    assert not verify_signature("key", "1764000001", BODY, signature, now=1764000000)  # timestamp changed
    assert not verify_signature("key", "1764000000", BODY, signature, now=1764000000 + 301)  # a replay, too late
    assert not verify_signature("key", "soon", BODY, signature)


def test_backoff_doubles_from_the_interval_up_to_the_cap():
    settings = Settings(_env_file=None, notify_interval_s=10, notify_retry_max_s=60)
    assert [backoff(settings, n) for n in range(1, 6)] == [timedelta(seconds=s) for s in (10, 20, 40, 60, 60)]
