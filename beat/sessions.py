"""Session quality (sql/006_session_quality.sql): which sessions failed to deliver energy, and why.

A completed session failed when

    ended_in_fault     at its end_time the status in force on its connector, or on connector 0
                       (the whole station), was Faulted: `failure_code` is that status' error code
    under_min_energy   it delivered less than EVMON_MIN_SESSION_WH (meter_max_wh - meter_start_wh):
                       `failure_code` is the error code in force at its end, if any was not NoError

"In force at t" is the latest status event at or before t (ties: the greater event_id), so a
Faulted sent in the same instant as the stop counts. Held sessions (held_reason) keep their own
rule and are not judged (failed NULL): their energy is not to be trusted. A session without a start
meter is judged only on a fault, until its start arrives.

`judge_sessions` recomputes, in one statement at a given `now`, every session that ended within
the lookback window (EVMON_ALERT_LOOKBACK_S): idempotent and order-insensitive, like the fold.
Failed sessions are also outages of their port (beat.outages reads them): run this first.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.contract import ChargePointErrorCode, ChargePointStatus
from evmonitor.storage.postgres import translate_errors

__all__ = ["FailureReason", "judge_sessions"]


class FailureReason(StrEnum):
    """Why a session failed (`charging_sessions.failure_reason`)."""

    ENDED_IN_FAULT = "ended_in_fault"
    UNDER_MIN_ENERGY = "under_min_energy"


_IN_FORCE = """
    LEFT JOIN LATERAL (
        SELECT e.status, e.error_code FROM status_events e
        WHERE e.station_id = s.station_id AND e.connector_id = {connector} AND e.ts <= s.end_time
        ORDER BY e.ts DESC, e.event_id DESC LIMIT 1
    ) {alias} ON true"""

_JUDGE = sa.text(f"""
WITH judged AS (
    SELECT s.id,
           CASE WHEN s.held_reason IS NOT NULL THEN NULL
                WHEN c.status = :faulted OR w.status = :faulted THEN :in_fault
                WHEN s.meter_start_wh IS NULL THEN NULL
                WHEN s.meter_max_wh - s.meter_start_wh < :min_wh THEN :under_min
           END AS reason,
           CASE WHEN c.status = :faulted THEN c.error_code
                WHEN w.status = :faulted THEN w.error_code
                ELSE coalesce(nullif(c.error_code, :no_error), nullif(w.error_code, :no_error))
           END AS code,
           s.held_reason IS NULL AND (c.status = :faulted OR w.status = :faulted OR s.meter_start_wh IS NOT NULL)
               AS judged
    FROM charging_sessions s
    {_IN_FORCE.format(connector="s.connector_id", alias="c")}
    {_IN_FORCE.format(connector="0", alias="w")}
    WHERE s.end_time IS NOT NULL AND s.end_time >= :horizon AND s.end_time <= :now
), verdict AS (
    SELECT id, CASE WHEN judged THEN reason IS NOT NULL END AS failed, reason,
           CASE WHEN reason IS NOT NULL THEN code END AS code
    FROM judged
)
UPDATE charging_sessions s SET failed = v.failed, failure_reason = v.reason, failure_code = v.code
FROM verdict v
WHERE s.id = v.id AND (s.failed, s.failure_reason, s.failure_code) IS DISTINCT FROM (v.failed, v.reason, v.code)
RETURNING v.failed
""")


def judge_sessions(engine: sa.Engine, settings: Settings, now: datetime, *, since: datetime | None = None) -> dict[str, Any]:
    """Judge every session that ended within the lookback at `now` (or since `since`, if earlier: late
    history); return how many verdicts changed."""
    horizon = now - settings.lookback if since is None else min(now - settings.lookback, since)
    params = {"horizon": horizon, "now": now, "min_wh": settings.min_session_wh,
              "faulted": str(ChargePointStatus.FAULTED), "no_error": str(ChargePointErrorCode.NO_ERROR),
              "in_fault": str(FailureReason.ENDED_IN_FAULT), "under_min": str(FailureReason.UNDER_MIN_ENERGY)}  # fmt: skip
    with translate_errors(), engine.begin() as conn:
        changed = conn.execute(_JUDGE, params).scalars().all()
    return {"changed": len(changed), "failed": sum(bool(f) for f in changed)}
