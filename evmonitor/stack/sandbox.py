"""A throw-away evmonitor: fresh Kafka (tansu), Elasticsearch API (osmem) and Redis on free ports,
a fresh PostgreSQL database, and the pipeline's processes, all torn down on exit.

Used by the integration tests (one sandbox per test, so no test sees another's data), by the
chaos harness (one per cell), by the benchmarks and by `evmonitor demo`, which never touches the
operator's database, queues, topics or indices. A sandbox is thrown away when its `with` block
ends (and its processes die with the process that made it), unless it was made with `keep=True`:
then `detach()` leaves it running and `Sandbox.remove(workdir)` throws it away later. With `proxied=True`, PostgreSQL and the search server are reached
through `FaultProxy`s so they can be cut off without losing what they hold.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from evmonitor.bridge.joining import ASSIGNED
from evmonitor.config import Settings
from evmonitor.errors import ConfigError
from evmonitor.names import INGEST_POOL, Queue, WorkerPool
from evmonitor.stack.embedded import (
    child_env,
    evmonitor_cmd,
    init_pipeline,
    postgres_home,
    start_kafka,
    start_redis,
    start_postgres,
    start_search,
    wait_for_workers,
)
from evmonitor.stack.faultproxy import FaultProxy
from evmonitor.stack.private import write_private
from evmonitor.stack.procs import Proc, free_port, port_open, spawn, stop, stop_all, wait_for

__all__ = ["DEFAULT_ADMIN_URL", "Sandbox"]

DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


class Sandbox:
    def __init__(self, workdir: Path, *, admin_url: str = DEFAULT_ADMIN_URL, proxied: bool = False,
                 keep: bool = False, embedded_postgres: bool = False, **overrides: Any) -> None:  # fmt: skip
        self.workdir = Path(workdir)
        self.keep = keep
        self.detached = False
        self.embedded_postgres = embedded_postgres  # start one in the workdir if admin_url's server is not there
        self.logs = self.workdir / "logs"
        self.admin_url = admin_url
        self.proxied = proxied
        self.overrides = overrides
        self.services: dict[str, Proc] = {}
        self.processes: dict[str, Proc] = {}
        self.commands: dict[str, list[str]] = {}
        self.proxies: dict[str, FaultProxy] = {}
        self.database = f"evmon_sandbox_{uuid.uuid4().hex[:12]}"
        self._admin: sa.Engine | None = None
        self.settings: Settings

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> "Sandbox":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.detached:
            self.close()

    def _start(self) -> None:
        admin = sa.engine.make_url(self.admin_url)
        host, port = admin.host or "127.0.0.1", admin.port or 5432
        if self.embedded_postgres and not port_open(host, port):
            port = free_port()
            self.services["postgres"] = start_postgres(port, self.workdir, "127.0.0.1")
            self.admin_url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        self._admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        wait_for(lambda: self._admin.connect().close() is None, timeout_s=20, what=f"PostgreSQL at {self.admin_url}",
                 hint="Start it (Debian: pg_ctlcluster 15 main start) or point EVMON_ADMIN_DATABASE_URL (the "
                      "tests: EVMON_TEST_ADMIN_DATABASE_URL) at a superuser URL of a running server.")  # fmt: skip
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.database}"')
        kafka_port, es_port, self.redis_port = free_port(), free_port(), free_port()
        self.services["kafka"] = start_kafka(kafka_port, self.logs, die_with_parent=not self.keep)
        self.services["elasticsearch"] = start_search(es_port, self.logs, die_with_parent=not self.keep)
        self.services["redis"] = start_redis(self.redis_port, self.logs, die_with_parent=not self.keep)
        admin = sa.engine.make_url(self.admin_url)
        pg = (admin.host or "127.0.0.1", admin.port or 5432)
        es = ("127.0.0.1", es_port)
        if self.proxied:
            self.proxies["postgres"] = FaultProxy(pg)
            self.proxies["elasticsearch"] = FaultProxy(es)
            pg = ("127.0.0.1", self.proxies["postgres"].port)
            es = ("127.0.0.1", self.proxies["elasticsearch"].port)
        values: dict[str, Any] = dict(
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            elasticsearch_url=f"http://{es[0]}:{es[1]}",
            broker_url=f"redis://127.0.0.1:{self.redis_port}/0",
            database_url=admin.set(database=self.database, host=pg[0], port=pg[1]).render_as_string(hide_password=False),
            state_dir=self.workdir / "state",
            topic_partitions=3,
            batch_max_ms=100,
            commit_interval_s=0.5,
            republish_after_s=20,
        )
        values.update(self.overrides)
        self.settings = Settings(_env_file=None, **values)
        init_pipeline(self.settings)

    def close(self) -> None:
        # a sandbox's data is thrown away: no order to keep, so everything stops at once
        stop_all(list(self.processes.values()), timeout_s=15)
        self.processes.clear()
        for proxy in self.proxies.values():
            proxy.close()
        own_postgres = "postgres" in self.services
        if self._admin is not None:
            try:
                if not own_postgres:  # our own server goes whole, with its data folder
                    with self._admin.connect() as conn:
                        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                self._admin.dispose()
        stop_all(list(self.services.values()), timeout_s=5)
        if own_postgres:
            shutil.rmtree(postgres_home(self.workdir), ignore_errors=True)

    # --- keeping a sandbox -------------------------------------------------------------------

    MANIFEST = "sandbox.json"
    ENV_FILE = "sandbox.env"

    def detach(self) -> Path:
        """Leave the sandbox running (it must have been made with `keep=True`); return its env file.

        Writes `<workdir>/sandbox.env` (its EVMON_* settings, to `source` before running
        `evmonitor` against it) and `<workdir>/sandbox.json` (what `Sandbox.remove` needs).
        """
        if not self.keep:
            raise ConfigError("only a sandbox made with keep=True can be left running")
        procs = [*self.processes.values(), *self.services.values()]
        manifest = {"database": self.database, "admin_url": self.admin_url, "procs": [p.to_json() for p in procs]}
        # both may hold the database password
        write_private(self.workdir / self.MANIFEST, json.dumps(manifest, indent=2))
        env_file = self.workdir / self.ENV_FILE
        lines = [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()) if k.startswith("EVMON_")]
        write_private(env_file, "\n".join(lines) + "\n")
        self.detached = True
        return env_file

    @classmethod
    def remove(cls, workdir: Path) -> str:
        """Stop a kept sandbox's processes, drop its database and delete its folder."""
        workdir = Path(workdir)
        manifest_path = workdir / cls.MANIFEST
        if not manifest_path.exists():
            raise ConfigError(f"{workdir} holds no kept sandbox ({cls.MANIFEST} is missing)")
        manifest = json.loads(manifest_path.read_text())
        procs = [Proc(**p) for p in manifest["procs"]]
        if any(p.name == "postgres" for p in procs):  # its own server: the whole cluster goes with the folder
            stop_all(procs, timeout_s=15)
            shutil.rmtree(postgres_home(workdir), ignore_errors=True)
            shutil.rmtree(workdir)
            return manifest["database"]
        stop_all(procs, timeout_s=15)
        admin = sa.create_engine(manifest["admin_url"], isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{manifest["database"]}" WITH (FORCE)')
        finally:
            admin.dispose()
        shutil.rmtree(workdir)
        return manifest["database"]

    # --- processes --------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return child_env(self.settings)

    def start(self, name: str, *args: str) -> Proc:
        self.commands[name] = list(args)
        proc = spawn(name, evmonitor_cmd(*args), log_dir=self.logs, env=self.env, die_with_parent=not self.keep)
        self.processes[name] = proc
        return proc

    def start_worker(self, queue: str, name: str | None = None, concurrency: int = 1, pool: str | None = None) -> Proc:
        """Start a worker for `queue`: one process (in the sandbox's `processes`) whatever `concurrency`.

        `pool` defaults to what `evmonitor up` runs: `INGEST_POOL` (solo) for persist and index,
        prefork for maintenance. With solo, `concurrency=n` is n solo worker processes under the
        one started (node names NAME-1@HOST ... NAME-n@HOST), which is how ingest scales best (each
        decodes its own tasks, no pipe); with prefork it is n pool children.
        """
        name = name or f"worker-{queue}"
        pool = pool or (INGEST_POOL if queue in (Queue.PERSIST, Queue.INDEX) else WorkerPool.PREFORK)
        return self.start(name, "worker", "-Q", queue, "--pool", pool, "-c", str(concurrency), "-n", f"{name}@%h")

    def start_workers(self, queues: tuple[str, ...] = (Queue.PERSIST, Queue.INDEX)) -> None:
        for queue in queues:
            self.start_worker(queue)
        self.wait_workers(queues)

    def start_bridge(self, wait: bool = True) -> Proc:
        """Start the bridge; with `wait`, return once it has joined its group and got partitions."""
        before = self.log("bridge").count(ASSIGNED)
        proc = self.start("bridge", "bridge")
        if wait:
            wait_for(lambda: self.log("bridge").count(ASSIGNED) > before, timeout_s=60,
                     what="the bridge to join its group", hint=f"Logs: {self.logs}")  # fmt: skip
        return proc

    def wait_workers(self, queues: tuple[str, ...], timeout_s: float = 60) -> None:
        wait_for_workers(self.settings, queues, timeout_s=timeout_s, logs=self.logs)

    def stop(self, name: str, **kwargs: Any) -> bool:
        return stop(self.processes.pop(name), **kwargs)

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started (a Celery worker and its pool)."""
        proc = self.processes[name] if name in self.processes else self.services[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not proc.alive(), timeout_s=10, what=f"{name} to die")

    def restart(self, name: str) -> Proc:
        if name == "redis":
            self.services["redis"] = start_redis(self.redis_port, self.logs, die_with_parent=not self.keep)
            return self.services["redis"]
        if name not in self.commands:
            raise ConfigError(f"{name} was never started in this sandbox")
        return self.start(name, *self.commands[name])

    def restart_dead(self) -> list[str]:
        """Start again every process of ours that has exited, as a supervisor would; return their names.

        Production restarts a crashed process (compose: `restart: unless-stopped`). A Celery
        worker can shut itself down when Redis dies under it (kombu acks a finished task on the
        closed channel: "Unrecoverable error: AttributeError"); the fault matrix proves that
        nothing is lost then, not that such a process never exits.
        """
        dead = [name for name, proc in self.processes.items() if not proc.alive()]
        for name in dead:
            self.restart(name)
        return dead

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
