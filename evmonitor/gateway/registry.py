"""The charger registry and the transaction ids the gateway mints, in PostgreSQL (sql/003_gateway.sql).

Every method is a short, synchronous transaction: the server calls them from a worker thread.
PostgreSQL errors are translated once, by `evmonitor.storage.postgres.translate_errors`, into
`TransientError` (retry: the charger gets a CALLERROR and sends again) or `SinkRejected`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from evmonitor.gateway.mapping import ChargerProfile, Transaction
from evmonitor.gateway.passwords import hash_password
from evmonitor.storage.postgres import apply_schema, create_engine, translate_errors

__all__ = ["Charger", "Registry"]

_PROFILE_COLUMNS = ("id", "name", "operator", "city", "latitude", "longitude", "max_power_kw",
                    "connector_count", "price_eur_per_kwh")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Charger:
    """A registered charger: its profile and, when it must authenticate, its password hash."""

    profile: ChargerProfile
    password_hash: str | None

    @property
    def id(self) -> str:
        return self.profile.id

    def to_json(self) -> dict[str, Any]:
        """For `chargers list --json`: the profile and whether a password is set (never the hash)."""
        out: dict[str, Any] = {name: getattr(self.profile, name) for name in _PROFILE_COLUMNS}
        out["password"] = self.password_hash is not None
        return out


def _charger(row: Any) -> Charger:
    values = dict(row._mapping)
    password_hash = values.pop("password_hash")
    values["price_eur_per_kwh"] = float(values["price_eur_per_kwh"])
    return Charger(ChargerProfile(**values), password_hash)


class Registry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def connect(cls, url: str, sql_dir: Path | None = None, **engine_kwargs: Any) -> "Registry":
        engine = create_engine(url, **engine_kwargs)
        if sql_dir is not None:
            apply_schema(engine, sql_dir)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- chargers ---------------------------------------------------------------------------

    def add(self, profile: ChargerProfile, password: str | None = None) -> bool:
        """Register a charger, or replace its profile and password; True if it is new."""
        values = {name: getattr(profile, name) for name in _PROFILE_COLUMNS}
        values["password_hash"] = hash_password(password) if password else None
        columns = ", ".join(values)
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in values if name != "id")
        with translate_errors(), self.engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    f"INSERT INTO gateway_chargers ({columns}) VALUES ({', '.join(':' + n for n in values)}) "
                    f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now() "
                    "RETURNING (xmax = 0) AS inserted"
                ),
                values,
            ).one()
        return bool(row.inserted)

    def get(self, charger_id: str) -> Charger | None:
        with translate_errors(), self.engine.connect() as conn:
            row = conn.execute(
                sa.text(f"SELECT {', '.join(_PROFILE_COLUMNS)}, password_hash FROM gateway_chargers WHERE id = :id"),
                {"id": charger_id},
            ).one_or_none()
        return _charger(row) if row is not None else None

    def list(self) -> list[Charger]:
        with translate_errors(), self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(f"SELECT {', '.join(_PROFILE_COLUMNS)}, password_hash FROM gateway_chargers ORDER BY id")
            ).all()
        return [_charger(row) for row in rows]

    def remove(self, charger_id: str) -> bool:
        """Unregister a charger (its transactions stay, so a running session can still be stopped)."""
        with translate_errors(), self.engine.begin() as conn:
            result = conn.execute(sa.text("DELETE FROM gateway_chargers WHERE id = :id"), {"id": charger_id})
        return result.rowcount > 0

    # --- transactions -----------------------------------------------------------------------

    def mint_transaction(
        self,
        charger_id: str,
        *,
        connector_id: int,
        id_tag_hash: str,
        meter_start_wh: int,
        started_at: datetime,
        price_eur_per_kwh: float,
    ) -> Transaction:
        """The transaction id for this start, committed before it returns.

        The same charger, connector, id tag, meter start and timestamp always get the same id
        (and the price fixed at the first attempt): a charger's retry is the same transaction.
        """
        key = {"charger_id": charger_id, "connector_id": connector_id, "id_tag_hash": id_tag_hash,
               "meter_start_wh": meter_start_wh, "started_at": started_at}  # fmt: skip
        with translate_errors(), self.engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    "INSERT INTO gateway_transactions "
                    "(charger_id, connector_id, id_tag_hash, meter_start_wh, started_at, price_eur_per_kwh) "
                    "VALUES (:charger_id, :connector_id, :id_tag_hash, :meter_start_wh, :started_at, :price) "
                    "ON CONFLICT (charger_id, connector_id, id_tag_hash, meter_start_wh, started_at) DO NOTHING "
                    "RETURNING id, price_eur_per_kwh"
                ),
                {**key, "price": price_eur_per_kwh},
            ).one_or_none()
            if row is None:  # a retry: the first attempt's row (committed, or we waited for it)
                row = conn.execute(
                    sa.text(
                        "SELECT id, price_eur_per_kwh FROM gateway_transactions WHERE charger_id = :charger_id "
                        "AND connector_id = :connector_id AND id_tag_hash = :id_tag_hash "
                        "AND meter_start_wh = :meter_start_wh AND started_at = :started_at"
                    ),
                    key,
                ).one()
        return Transaction(row.id, charger_id, connector_id, float(row.price_eur_per_kwh))

    def transaction(self, charger_id: str, transaction_id: int) -> Transaction | None:
        """A transaction this gateway minted for this charger, or None."""
        if not 0 < transaction_id < 2**31:
            return None
        with translate_errors(), self.engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT id, connector_id, price_eur_per_kwh FROM gateway_transactions "
                    "WHERE id = :id AND charger_id = :charger_id"
                ),
                {"id": transaction_id, "charger_id": charger_id},
            ).one_or_none()
        if row is None:
            return None
        return Transaction(row.id, charger_id, row.connector_id, float(row.price_eur_per_kwh))
