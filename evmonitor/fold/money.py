"""A session's money, exactly as DESIGN.md defines it; the simulator's ground truth uses the same.

energy = (max meter - meter_start) / 1000 kWh; cost = energy * price, rounded half-up to cents
(PostgreSQL's `round(numeric, 2)`, which computes the generated columns of `charging_sessions`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["session_cost_eur", "session_energy_kwh"]

CENT = Decimal("0.01")


def session_energy_kwh(meter_start_wh: int, meter_max_wh: int) -> Decimal:
    """kWh delivered, exactly: (max meter seen - start meter) / 1000, never negative."""
    return Decimal(max(meter_max_wh, meter_start_wh) - meter_start_wh) / 1000


def session_cost_eur(energy_kwh: Decimal, price_eur_per_kwh: float | Decimal) -> Decimal:
    """EUR for a session: energy times price, rounded half-up to cents."""
    price = price_eur_per_kwh if isinstance(price_eur_per_kwh, Decimal) else Decimal(repr(price_eur_per_kwh))
    return (energy_kwh * price).quantize(CENT, rounding=ROUND_HALF_UP)
