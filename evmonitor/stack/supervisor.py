"""`evmonitor up / down / status`: the embedded stack and the pipeline's processes.

State lives in `<state_dir>/state.json` (default `.evmonitor/`): one entry per component with
pid, address, log file and whether we started it. `up` starts only what is missing (a running
component is left alone, a service already reachable at its URL is used as found); `down` stops
what we started, in order: producers first, then the bridge (it flushes and commits), then
workers (they finish their task), then the services.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evmonitor.config import Settings
from evmonitor.errors import ConfigError
from evmonitor.names import Queue
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
from evmonitor.stack.procs import Proc, port_open, spawn, stop

__all__ = ["APP_COMPONENTS", "Stack", "StopOrder"]

# name -> evmonitor arguments; started in this order
APP_COMPONENTS: dict[str, list[str]] = {
    **{f"worker-{queue}": ["worker", "-Q", queue, "-c", "1", "-n", f"{queue}@%h"] for queue in Queue},
    "beat": ["beat"],
    "bridge": ["bridge"],
    "flower": ["flower"],
    "api": ["api"],  # the REST API, live page and /metrics on EVMON_API_LISTEN
}
StopOrder = ["simulator", "bridge", "api", "flower", "beat", "worker-persist", "worker-index", "worker-maintenance",
             "elasticsearch", "kafka", "redis", "postgres"]  # fmt: skip
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
        return self

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {"components": [c.to_json() for c in self.components.values()], "extra": self.extra}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_file)

    # --- up ---------------------------------------------------------------------------------

    def up(self, *, with_simulator: bool = False, simulator_args: list[str] | None = None) -> list[str]:
        """Start what is missing; return the names of the components started now."""
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
                raise ConfigError(f"{name} is not reachable at {ep.address} and is not local, so it cannot be started here.")
            self.say(f"starting {name} on {ep.address} ...")
            host = "127.0.0.1" if ep.host == "localhost" else ep.host
            if name == "postgres":
                proc = start_postgres(ep.port, self.state_dir, host)
                self.say(f"postgres data in {postgres_home(self.state_dir) / 'data'}")
            else:
                proc = INFRA_STARTERS[name](ep.port, self.log_dir, host)
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
        components = dict(APP_COMPONENTS)
        if with_simulator:
            components["simulator"] = ["simulate", "--live", *(simulator_args or [])]
        for name, args in components.items():
            current = self.components.get(name)
            if current is not None and current.healthy():
                continue
            address = {"flower": f"http://127.0.0.1:{self.settings.flower_port}",
                       "api": f"http://{self.settings.api_listen}"}.get(name, "")  # fmt: skip
            proc = spawn(name, evmonitor_cmd(*args), log_dir=self.log_dir, env=env, address=address)
            self.components[name] = Component(name, "process", address, owned=True, proc=proc)
            started.append(name)
            self.save()
        self.save()
        return started

    def wait_workers(self, queues: tuple[str, ...] = (Queue.PERSIST, Queue.INDEX), timeout_s: float = 60.0) -> None:
        """Block until a worker answers for each queue (Celery inspect over the broker)."""
        wait_for_workers(self.settings, queues, timeout_s=timeout_s, logs=self.log_dir)

    # --- down / status ----------------------------------------------------------------------

    def down(self, only: list[str] | None = None) -> list[str]:
        """Stop what we started (or only the named components), in order; return what stopped."""
        self.load()
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
        if only is None and self.state_file.exists():
            self.state_file.unlink()
        return stopped

    def status(self) -> list[dict[str, Any]]:
        self.load()
        return [c.to_json() for c in self.components.values()]

    def running(self) -> bool:
        self.load()
        return any(c.owned and c.healthy() for c in self.components.values())


def wait_until_stopped(stack: Stack, poll_s: float = 1.0) -> None:
    """Foreground `up`: return when a component we own has died (the caller then stops all)."""
    while True:
        dead = [c.name for c in stack.components.values() if c.proc is not None and not c.proc.alive()]
        if dead:
            stack.say(f"component(s) exited: {', '.join(dead)}; see {stack.log_dir}")
            return
        time.sleep(poll_s)
