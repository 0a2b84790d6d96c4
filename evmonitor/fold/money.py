"""A session's money, exactly as DESIGN.md defines it; the simulator's ground truth uses the same.
And whether a session is held (invariant 5): a held session has no energy and no cost.

energy = (max meter - meter_start) / 1000 kWh; cost = energy * price, rounded half-up to cents
(PostgreSQL's `round(numeric, 2)`, which computes the generated columns of `charging_sessions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

__all__ = ["GRACE_S", "HeldReason", "held_reason", "session_cost_eur", "session_energy_kwh"]

CENT = Decimal("0.01")


def session_energy_kwh(meter_start_wh: int, meter_max_wh: int) -> Decimal:
    """kWh delivered, exactly: (max meter seen - start meter) / 1000, never negative."""
    return Decimal(max(meter_max_wh, meter_start_wh) - meter_start_wh) / 1000


def session_cost_eur(energy_kwh: Decimal, price_eur_per_kwh: float | Decimal) -> Decimal:
    """EUR for a session: energy times price, rounded half-up to cents."""
    price = price_eur_per_kwh if isinstance(price_eur_per_kwh, Decimal) else Decimal(repr(price_eur_per_kwh))
    return (energy_kwh * price).quantize(CENT, rounding=ROUND_HALF_UP)


class HeldReason(StrEnum):
    """`charging_sessions.held_reason`: why a session is held out of energy and revenue totals."""

    STATION_MISMATCH = "station_mismatch"  # its events name two stations
    CONNECTOR_MISMATCH = "connector_mismatch"  # ... two connectors
    METER_START_MISMATCH = "meter_start_mismatch"  # two session_started with different meter_start_wh
    METER_BELOW_START = "meter_below_start"  # a reading or stop below meter_start_wh
    EXCEEDS_MAX_POWER = "exceeds_max_power"  # more energy than the station's max power allows


GRACE_S = 60  # of full power: absorbs timestamps rounded to the second and meters rounded to the Wh


def held_reason(row: Mapping[str, Any]) -> HeldReason | None:
    """Why the merged session `row` is held, or None: the Python twin of SQL's `evm_held_reason`.

    A pure function of one row, so order and repetition of events cannot change it. A NULL on
    either side of a test (a fact not seen yet) holds nothing.
    """
    g = row.get
    if g("station_id_max") is not None and g("station_id") != g("station_id_max"):
        return HeldReason.STATION_MISMATCH
    if g("connector_id_max") is not None and g("connector_id") != g("connector_id_max"):
        return HeldReason.CONNECTOR_MISMATCH
    start, start_max, lowest = g("meter_start_wh"), g("meter_start_max_wh"), g("meter_min_wh")
    if start is not None and start_max is not None and start != start_max:
        return HeldReason.METER_START_MISMATCH
    if start is not None and lowest is not None and lowest < start:
        return HeldReason.METER_BELOW_START
    limit, top = g("power_limit_kw"), g("meter_max_wh")
    if limit is not None and start is not None and top is not None:
        seconds = (g("last_event_at") - g("start_time")).total_seconds()
        if (top - start) * 3600.0 > limit * 1000.0 * (seconds + GRACE_S):
            return HeldReason.EXCEEDS_MAX_POWER
    return None
