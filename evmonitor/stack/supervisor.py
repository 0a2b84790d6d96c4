"""`evmonitor up / down / status`: the embedded stack and the pipeline's processes.

State lives in `<state_dir>/state.json` (EVMON_STATE_DIR, default a per-user folder, so `up`,
`status` and `down` from any directory see the same stack): one entry per component with pid,
address, log file and whether we started it. `up` and `down` hold `<state_dir>/stack.lock`, so
two of them never interleave. `up` starts only what is missing (a running component is left
alone, a service already reachable at its URL is used as found) and returns once every process
it started is ready; `down` stops what we started, in order: producers first, then the bridge (it
flushes and commits), then workers (they finish their task), then the services.

A stack whose Kafka we started keeps its log in memory: each such start gets a new stack id
(`EVMON_STACK_ID`, the prefix of its Celery keys in Redis), so tasks queued for a log that no
longer exists are never run against the new one; `down` deletes the old keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evmonitor.config import Settings
from evmonitor.errors import ConfigError
from evmonitor.names import INGEST_POOL, Queue, WorkerPool
from evmonitor.stack.embedded import (
    child_env,
    endpoints,
    evmonitor_cmd,
    init_pipeline,
    postgres_home,
    provision_database,
    start_kafka,
    start_postgres,
    start_redis,
    start_search,
    wait_for_workers,
)
from evmonitor.stack.private import write_private
from evmonitor.stack.procs import Proc, free_port, port_open, spawn, stop

__all__ = ["APP_COMPONENTS", "Stack", "StopOrder", "app_components"]

# name -> evmonitor arguments; started in this order (`app_components` sets the ingest workers' -c)
APP_COMPONENTS: dict[str, list[str]] = {
    # persist and index on INGEST_POOL (solo: one decode per task, no pipe; scale out with more processes,
    # `-c N` of them under one parent: EVMON_PERSIST_PROCESSES, EVMON_INDEX_PROCESSES)
    **{f"worker-{queue}": ["worker", "-Q", queue, "--pool", INGEST_POOL if queue in (Queue.PERSIST, Queue.INDEX)
                           else WorkerPool.PREFORK, "-c", "1", "-n", f"{queue}@%h"] for queue in Queue},  # fmt: skip
    "beat": ["beat"],
    "bridge": ["bridge"],
    "flower": ["flower"],
    "gateway": ["gateway"],
    "api": ["api"],  # the REST API, live page and /metrics on EVMON_API_LISTEN
}
StopOrder = ["simulator", "gateway", "bridge", "api", "flower", "beat", "worker-persist", "worker-index",
             "worker-maintenance", "elasticsearch", "kafka", "redis", "postgres"]  # fmt: skip
# the processes whose /metrics `up` serves, at EVMON_METRICS_PORT_BASE + offset (prometheus/prometheus.yml
# lists the same ports); the API serves its own on EVMON_API_LISTEN
METRICS_OFFSETS: dict[str, int] = {"bridge": 0, "worker-persist": 1, "worker-index": 2, "worker-maintenance": 3,
                                   "gateway": 4}  # fmt: skip
# the setting that says where each service is (named when one cannot be reached)
SERVICE_SETTINGS: dict[str, str] = {"kafka": "EVMON_KAFKA_BOOTSTRAP", "postgres": "EVMON_DATABASE_URL",
                                    "redis": "EVMON_BROKER_URL", "elasticsearch": "EVMON_ELASTICSEARCH_URL"}  # fmt: skip
# the setting that chooses the port of each component that listens (checked free before it starts)
PORT_SETTINGS: dict[str, str] = {"flower": "EVMON_FLOWER_PORT", "gateway": "EVMON_OCPP_LISTEN", "api": "EVMON_API_LISTEN"}


def app_components(settings: Settings) -> dict[str, list[str]]:
    """`APP_COMPONENTS`, with as many solo worker processes for persist and index as `settings` ask."""
    components = {name: list(args) for name, args in APP_COMPONENTS.items()}
    for queue, processes in ((Queue.PERSIST, settings.persist_processes), (Queue.INDEX, settings.index_processes)):
        args = components[f"worker-{queue}"]
        args[args.index("-c") + 1] = str(processes)
    return components


INFRA_STARTERS: dict[str, Callable[[int, Path, str], Proc]] = {
    "redis": lambda port, logs, host: start_redis(port, logs, host),
    "kafka": lambda port, logs, host: start_kafka(port, logs, host),
    "elasticsearch": lambda port, logs, host: start_search(port, logs, host),
}


@dataclass
class Component:
    name: str
    kind: str  # "service" or "process"
    address: str = ""
    owned: bool = False
    proc: Proc | None = None
    log_offset: int = 0  # where this start's lines begin in its (appended) log

    def healthy(self) -> bool:
        if self.proc is not None:
            return self.proc.alive()
        host, _, port = self.address.rpartition(":")
        return bool(port) and port_open(host, int(port))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "address": self.address,
            "owned": self.owned,
            "pid": self.proc.pid if self.proc else None,
            "log": self.proc.log if self.proc else None,
            "proc": self.proc.to_json() if self.proc else None,
            "healthy": self.healthy(),
        }


@dataclass
class Stack:
    settings: Settings
    say: Callable[[str], None] = print
    components: dict[str, Component] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return Path(self.settings.state_dir).resolve()

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    # --- persistence ------------------------------------------------------------------------

    def load(self) -> "Stack":
        if self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            for item in data.get("components", []):
                proc = Proc(**item["proc"]) if item.get("proc") else None
                self.components[item["name"]] = Component(item["name"], item["kind"], item["address"], item["owned"], proc)
            self.extra = data.get("extra", {})
        self._adopt_stack_id()
        return self

    def _adopt_stack_id(self) -> None:
        stack_id = self.extra.get("stack_id")
        if stack_id and not self.settings.stack_id:
            self.settings = self.settings.model_copy(update={"stack_id": stack_id})

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the stack's lock: a second `up` or `down` waits instead of racing this one."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "stack.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.say("another `evmonitor up` or `down` is at work on this stack; waiting for it ...")
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {"components": [c.to_json() for c in self.components.values()], "extra": self.extra}
        write_private(self.state_file, json.dumps(data, indent=2))  # it holds Flower's generated password

    # --- up ---------------------------------------------------------------------------------

    def up(self, *, with_simulator: bool = False, simulator_args: list[str] | None = None,
           ready_timeout_s: float = 120.0) -> list[str]:  # fmt: skip
        """Start what is missing, wait until it is ready; return the names of the components started now.

        Raises `ConfigError` naming the process (with its log's last lines) if one exits at start.
        """
        with self.locked():
            started = self._up(with_simulator, simulator_args)
            self.wait_ready(started, timeout_s=ready_timeout_s)
        return started

    def _up(self, with_simulator: bool, simulator_args: list[str] | None) -> list[str]:
        self.load()
        started: list[str] = []
        for name, ep in endpoints(self.settings).items():
            current = self.components.get(name)
            if current is not None and current.healthy():
                continue
            if ep.reachable():
                self.components[name] = Component(name, "service", ep.address, owned=False)
                self.say(f"found {name} at {ep.address}")
                continue
            if not ep.local:
                setting = SERVICE_SETTINGS.get(name, "its setting")
                raise ConfigError(f"cannot reach {name} at {ep.address} ({setting}), and it is not local, so it cannot "
                                  "be started here")  # fmt: skip
            self.say(f"starting {name} on {ep.address} ...")
            host = "127.0.0.1" if ep.host == "localhost" else ep.host
            if name == "postgres":
                proc = start_postgres(ep.port, self.state_dir, host)
                self.say(f"postgres data in {postgres_home(self.state_dir) / 'data'}")
            else:
                proc = INFRA_STARTERS[name](ep.port, self.log_dir, host)
            if name == "kafka" and not self.settings.stack_id:
                # a new in-memory log: tasks queued for an earlier one must never run against it
                self.extra["stack_id"] = uuid.uuid4().hex[:12]
                self._adopt_stack_id()
            self.components[name] = Component(name, "service", ep.address, owned=True, proc=proc)
            started.append(name)
            self.save()

        self.say(f"postgres: {provision_database(self.settings)}")
        info = init_pipeline(self.settings)
        self.say(f"topics created: {info['topics_created'] or 'none (all exist)'}; schema: {', '.join(info['schema_files'])}")

        env = child_env(self.settings)
        if not self.settings.flower_password:
            flower = self.extra.get("flower") or {"user": self.settings.flower_user, "password": secrets.token_urlsafe(12)}
            self.extra["flower"] = flower
            env["EVMON_FLOWER_USER"], env["EVMON_FLOWER_PASSWORD"] = flower["user"], flower["password"]
        components = app_components(self.settings)
        if with_simulator:
            components["simulator"] = ["simulate", "--live", *(simulator_args or [])]
        for name, args in components.items():
            current = self.components.get(name)
            if current is not None and current.healthy():
                continue
            address = {"flower": f"http://127.0.0.1:{self.settings.flower_port}",
                       "api": f"http://{self.settings.api_listen}"}.get(name, "")  # fmt: skip
            if name == "gateway":
                address = f"{'wss' if self.settings.ocpp_tls_cert else 'ws'}://{self.settings.ocpp_listen}/ocpp/"
            if address and _listening(address):
                raise ConfigError(f"{address} is taken by another program, so {name} cannot listen there: "
                                  f"stop that program or set {PORT_SETTINGS.get(name, 'its port setting')}")  # fmt: skip
            proc_env, args = self._with_metrics(name, env, list(args))
            log = self.log_dir / f"{name}.log"
            offset = log.stat().st_size if log.exists() else 0
            proc = spawn(name, evmonitor_cmd(*args), log_dir=self.log_dir, env=proc_env, address=address)
            self.components[name] = Component(name, "process", address, owned=True, proc=proc, log_offset=offset)
            started.append(name)
            self.save()
        self.save()
        return started

    def _with_metrics(self, name: str, env: dict[str, str], args: list[str]) -> tuple[dict[str, str], list[str]]:
        """The environment and arguments that make `name` serve /metrics, and its scrape target noted in state."""
        targets = self.extra.setdefault("metrics", {})
        targets.pop(name, None)
        base = self.settings.metrics_port_base
        if name not in METRICS_OFFSETS or not base:
            return env, args
        chosen = {"bridge": self.settings.bridge_metrics_port, "gateway": self.settings.gateway_metrics_port}.get(name)
        port = chosen or base + METRICS_OFFSETS[name]
        if not chosen and not _bindable(self.settings.metrics_address, port):
            taken, port = port, free_port()
            self.say(f"{name}: metrics port {taken} is taken, serving /metrics on {port} instead "
                     f"(set EVMON_METRICS_PORT_BASE to keep prometheus/prometheus.yml's ports)")  # fmt: skip
        host = "127.0.0.1" if self.settings.metrics_address in ("0.0.0.0", "::", "") else self.settings.metrics_address
        targets[name] = f"{host}:{port}"
        if name == "bridge":
            return {**env, "EVMON_BRIDGE_METRICS_PORT": str(port)}, args
        if name == "gateway":
            return {**env, "EVMON_GATEWAY_METRICS_PORT": str(port)}, args
        return env, [*args, "--metrics-port", str(port)]

    def metrics_targets(self) -> dict[str, str]:
        """Every /metrics this stack serves: component -> URL (the API's needs a token)."""
        found = {"api": f"http://{self.settings.api_listen}/metrics"}
        found.update((name, f"http://{target}/metrics") for name, target in sorted(self.extra.get("metrics", {}).items()))
        return found

    def wait_ready(self, names: list[str], *, timeout_s: float) -> None:
        """Return once each named process is ready; raise `ConfigError` if one exits meanwhile."""
        processes = [self.components[n] for n in names if self.components[n].kind == "process"]
        queues = tuple(Queue(n.removeprefix("worker-")) for n in names if n.startswith("worker-"))
        deadline = time.monotonic() + timeout_s
        pending = {c.name: c for c in processes}
        while pending:
            for name, comp in list(pending.items()):
                if not comp.proc.alive():
                    raise ConfigError(f"{name} exited at start; the last lines of {comp.proc.log}:\n{_tail(comp.proc.log)}")
                if _ready(comp):
                    del pending[name]
            if set(pending) <= {f"worker-{q}" for q in queues} and pending:
                remaining = max(1.0, deadline - time.monotonic())
                waiting = dict(pending)

                def gone() -> str | None:
                    for name, comp in waiting.items():
                        if not comp.proc.alive():
                            return f"{name} exited at start; the last lines of {comp.proc.log}:\n{_tail(comp.proc.log)}"
                    return None

                wait_for_workers(self.settings, tuple(Queue(n.removeprefix("worker-")) for n in pending),
                                 timeout_s=remaining, logs=self.log_dir, gone=gone)  # fmt: skip
                pending.clear()
            if pending and time.monotonic() > deadline:
                raise ConfigError(f"not ready after {timeout_s:.0f} s: {', '.join(sorted(pending))}; see {self.log_dir}")
            if pending:
                time.sleep(0.2)  # polling other processes' start-up

    def wait_workers(self, queues: tuple[str, ...] = (Queue.PERSIST, Queue.INDEX), timeout_s: float = 60.0) -> None:
        """Block until a worker answers for each queue (Celery inspect over the broker)."""
        wait_for_workers(self.settings, queues, timeout_s=timeout_s, logs=self.log_dir)

    # --- down / status ----------------------------------------------------------------------

    def down(self, only: list[str] | None = None) -> list[str]:
        """Stop what we started (or only the named components), in order; return what stopped."""
        with self.locked():
            return self._down(only)

    def _down(self, only: list[str] | None) -> list[str]:
        self.load()
        owned_kafka = bool(self.components.get("kafka") and self.components["kafka"].owned)
        stopped = []
        for name in StopOrder:
            comp = self.components.get(name)
            if comp is None or (only is not None and name not in only):
                continue
            if comp.owned and comp.proc is not None:
                graceful = stop(comp.proc, timeout_s=45.0 if name == "bridge" else 30.0)
                self.say(f"stopped {name}" + ("" if graceful else " (killed after timeout)"))
                stopped.append(name)
            del self.components[name]
            self.save()
        if only is None:
            if owned_kafka and self.extra.get("stack_id"):
                self._forget_queued_tasks()
            if self.state_file.exists():
                self.state_file.unlink()
        return stopped

    def _forget_queued_tasks(self) -> None:
        """Delete this stack's Celery keys: the in-memory log they came from is gone with Kafka."""
        import redis

        try:
            client = redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=2)
            keys = list(client.scan_iter(match=self.settings.broker_key_prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
                self.say(f"deleted {len(keys)} Celery keys of this stack from Redis")
        except redis.RedisError:
            pass  # Redis is gone too (we started it, or it keeps nothing): so are the keys

    def status(self) -> list[dict[str, Any]]:
        """Every component this stack started or found, and every configured service, checked now."""
        self.load()
        items = [c.to_json() for c in self.components.values()]
        for name, ep in endpoints(self.settings).items():
            if name not in self.components:
                items.append(Component(name, "service", ep.address, owned=False).to_json())
        return items

    def running(self) -> bool:
        self.load()
        return any(c.owned and c.healthy() for c in self.components.values())


# log lines that say a process is serving (components with an address are ready when it answers)
_READY_MARKERS = {
    "bridge": "bridge: assigned",
    "beat": ("beat: holding the scheduler lock", "standing by"),
    "simulator": "simulator: live",
}


def _ready(comp: Component) -> bool:
    if comp.name.startswith("worker-"):
        return False  # asked over the broker, all at once (`wait_workers`)
    markers = _READY_MARKERS.get(comp.name)
    if markers is not None:
        log = Path(comp.proc.log)
        text = log.read_bytes()[comp.log_offset:].decode(errors="replace") if log.exists() else ""
        return any(m in text for m in ((markers,) if isinstance(markers, str) else markers))
    if comp.address:
        return _listening(comp.address)
    return comp.healthy()


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
            return True
        except OSError:
            return False


def _listening(address: str) -> bool:
    host, _, port = (urlsplit(address).netloc if "://" in address else address).rpartition(":")
    return port_open(host, int(port))


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_stopped(stack: Stack, poll_s: float = 1.0) -> None:
    """Foreground `up`: return when a component we own has died (the caller then stops all)."""
    while True:
        dead = [c.name for c in stack.components.values() if c.proc is not None and not c.proc.alive()]
        if dead:
            stack.say(f"component(s) exited: {', '.join(dead)}; see {stack.log_dir}")
            return
        time.sleep(poll_s)
