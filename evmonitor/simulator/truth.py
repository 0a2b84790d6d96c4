"""Ground truth: what the pipeline must end up with after a simulation drains.

Per-session energy and cost come from `evmonitor.fold.session_energy_kwh` and
`session_cost_eur`, the same functions the pipeline's fold uses, so "exact totals" means equal
Decimals, not close floats. On disk, Decimals are written as JSON numbers (a float with 3 or 2
decimals round-trips exactly) and read back as Decimals.

Drain mode's truth also holds every port's outages (`downtime`, see
`evmonitor.simulator.downtime`): intervals to the microsecond, written as ISO 8601 strings.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from os import PathLike
from pathlib import Path
from typing import Any, TypedDict

from evmonitor.fold import session_cost_eur, session_energy_kwh
from evmonitor.simulator.downtime import Downtime

__all__ = ["GroundTruth", "SessionTruth", "iso_window", "session_truth"]


class SessionTruth(TypedDict):
    """One session as the truth file holds it (a plain dict, so it reads like the JSON)."""

    station_id: str
    energy_kwh: Decimal
    cost_eur: Decimal


def session_truth(
    station_id: str, meter_start_wh: int, meter_max_wh: int, price_eur_per_kwh: float | Decimal
) -> SessionTruth:
    """A session as DESIGN.md derives it: energy from the meters, cost from energy and price."""
    energy = session_energy_kwh(meter_start_wh, meter_max_wh)
    return SessionTruth(station_id=station_id, energy_kwh=energy, cost_eur=session_cost_eur(energy, price_eur_per_kwh))


def iso_window(start: datetime, end: datetime) -> dict[str, str]:
    """{"start", "end"} as ISO 8601 UTC strings, the form the truth file and ES range queries use."""
    return {"start": start.astimezone(timezone.utc).isoformat(), "end": end.astimezone(timezone.utc).isoformat()}


@dataclass
class GroundTruth:
    """Counts and totals of one simulation run; `to_json` is the on-disk shape."""

    seed: int
    station_ids: list[str]
    by_session: dict[str, SessionTruth]
    valid_events: int  # distinct valid event ids sent
    messages: int  # every message sent: valid, duplicates and bad
    window: dict[str, str]  # {"start", "end"}: ISO 8601, UTC (see `iso_window`)
    duplicates: int = 0
    bad_events: int = 0
    deadletters: dict[str, int] = field(default_factory=dict)  # reason -> count of bad events
    run_id: str | None = None  # the run whose ids these are (`RunRandom`)
    downtime: Downtime | None = None  # each port's outages (drain mode only)

    @property
    def stations(self) -> int:
        return len(self.station_ids)

    @property
    def sessions(self) -> int:
        return len(self.by_session)

    @property
    def energy_kwh(self) -> Decimal:
        return sum((s["energy_kwh"] for s in self.by_session.values()), Decimal(0))

    @property
    def cost_eur(self) -> Decimal:
        return sum((s["cost_eur"] for s in self.by_session.values()), Decimal(0))

    @staticmethod
    def count_reasons(reasons: list[Any]) -> dict[str, int]:
        return {str(reason): n for reason, n in sorted(Counter(str(r) for r in reasons).items())}

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "run_id": self.run_id,
            "stations": self.stations,
            "station_ids": list(self.station_ids),
            "sessions": self.sessions,
            "energy_kwh": float(self.energy_kwh),
            "cost_eur": float(self.cost_eur),
            "valid_events": self.valid_events,
            "messages": self.messages,
            "duplicates": self.duplicates,
            "bad_events": self.bad_events,
            "deadletters": dict(self.deadletters),
            "window": dict(self.window),
            "downtime": None if self.downtime is None else self.downtime.to_json(),
            "by_session": {
                session_id: {"station_id": s["station_id"], "energy_kwh": float(s["energy_kwh"]),
                             "cost_eur": float(s["cost_eur"])}
                for session_id, s in self.by_session.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GroundTruth":
        """The inverse of `to_json`; numbers may be floats or Decimals (see `load`)."""

        def dec(value: Any) -> Decimal:
            return value if isinstance(value, Decimal) else Decimal(repr(value))

        return cls(
            seed=data["seed"],
            run_id=data.get("run_id"),
            station_ids=list(data["station_ids"]),
            by_session={
                session_id: SessionTruth(
                    station_id=s["station_id"], energy_kwh=dec(s["energy_kwh"]), cost_eur=dec(s["cost_eur"])
                )
                for session_id, s in data["by_session"].items()
            },
            valid_events=data["valid_events"],
            messages=data["messages"],
            window={"start": data["window"]["start"], "end": data["window"]["end"]},
            duplicates=data.get("duplicates", 0),
            bad_events=data.get("bad_events", 0),
            deadletters=dict(data.get("deadletters", {})),
            downtime=Downtime.from_json(data["downtime"]) if data.get("downtime") else None,
        )

    def write(self, path: str | PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | PathLike[str]) -> "GroundTruth":
        return cls.from_json(json.loads(Path(path).read_text(), parse_float=Decimal))
