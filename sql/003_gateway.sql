-- evmonitor OCPP gateway schema: the charger registry and the transaction ids it mints.
-- Applied at every start after 002_maintenance.sql; every statement is idempotent.

-- What OCPP does not carry (name, place, power, price) and, for security profile 1, the
-- charger's password as a slow hash (evmonitor/gateway/passwords.py); never the password itself.
CREATE TABLE IF NOT EXISTS gateway_chargers (
    id                  text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),  -- chargePointId = station_id
    name                text NOT NULL,
    operator            text NOT NULL,
    city                text NOT NULL,
    latitude            double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude           double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    max_power_kw        double precision NOT NULL CHECK (max_power_kw > 0),
    connector_count     integer NOT NULL CHECK (connector_count BETWEEN 1 AND 99),
    price_eur_per_kwh   numeric(8, 4) NOT NULL CHECK (price_eur_per_kwh >= 0),
    password_hash       text,                          -- NULL: no password (security profile 0)
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per StartTransaction the gateway accepted. The identity is the OCPP transactionId:
-- positive and within 32 bits (OCPP's integer). The unique key makes a charger's retry of the
-- same StartTransaction get the same id back; the id tag is kept only as its hash. The price
-- is fixed at the start so that a retried start is the same event even after a price change.
CREATE TABLE IF NOT EXISTS gateway_transactions (
    id                  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charger_id          text NOT NULL,
    connector_id        integer NOT NULL,
    id_tag_hash         text NOT NULL,
    meter_start_wh      bigint NOT NULL,
    started_at          timestamptz NOT NULL,
    price_eur_per_kwh   numeric(8, 4) NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (charger_id, connector_id, id_tag_hash, meter_start_wh, started_at)
);
