"""The chaos harness: kill or cut off one part of a running pipeline, then prove nothing was lost.

Each cell of the matrix runs in its own sandbox (fresh Kafka, search server, Redis, database and
processes). It sends a simulated day with duplicates and reordering, waits until a share of it
(chosen from the seed) is committed, injects the fault(s), keeps them for a few seconds (also
chosen from the seed), restores, waits until everything is committed, and reconciles against the
ground truth.

Faults: `bridge`, `worker` (a whole persist or index worker, pool included), `beat` are SIGKILLed
and restarted; `redis` (a redis-server the sandbox owns, so its queues die with it) is SIGKILLed
and restarted empty; `postgres` and `elasticsearch` are cut off behind a `FaultProxy` (new
connections refused, open ones reset) and restored. `a+b` injects two faults at once.
`gateway` runs the day through the OCPP gateway instead (the fleet as chargers) and SIGKILLs
and restarts the gateway mid-day: chargers reconnect and resend what was not answered.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from evmonitor.names import Queue
from evmonitor.stack.reconcile import compare, observe, wait_drained
from evmonitor.stack.sandbox import DEFAULT_ADMIN_URL, Sandbox
from evmonitor.stack.simulate import RecordingProducer
from evmonitor.storage.kafka import make_producer

__all__ = ["FAULTS", "CellResult", "run_cell", "run_matrix"]

FAULTS = ("bridge", "worker", "beat", "redis", "postgres", "elasticsearch", "gateway")


@dataclass
class CellResult:
    fault: str
    events: int
    at_fraction: float
    down_s: float
    lost: int
    duplicated: int
    exact: bool
    recover_s: float
    detail: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _inject(sandbox: Sandbox, fault: str, rng: random.Random) -> Callable[[], None]:
    """Apply one fault now; return the function that ends it."""
    if fault in ("bridge", "beat", "gateway"):
        sandbox.kill(fault)
        return lambda: sandbox.restart(fault)
    if fault == "worker":
        name = rng.choice(["worker-persist", "worker-index"])
        sandbox.kill(name)
        return lambda: sandbox.restart(name)
    if fault == "redis":
        sandbox.kill("redis")
        return lambda: sandbox.restart("redis")
    if fault in ("postgres", "elasticsearch"):
        proxy = sandbox.proxies[fault]
        proxy.cut()
        return proxy.restore
    raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)} (a+b for two at once)")


def run_cell(
    fault: str,
    *,
    events: int,
    seed: int,
    workdir: Path,
    admin_url: str = DEFAULT_ADMIN_URL,
    drain_timeout_s: float = 300,
    say: Callable[[str], None] = print,
) -> CellResult:
    from evmonitor.simulator import default_window, plan_drain, send

    if "gateway" in fault.split("+"):
        return _run_cell_via_ocpp(fault, events=events, seed=seed, workdir=workdir, admin_url=admin_url,
                                  drain_timeout_s=drain_timeout_s, say=say)  # fmt: skip
    rng = random.Random(f"{seed}:{fault}")
    sessions = max(20, events // 9)
    stations = max(5, min(50, sessions // 40))
    now = datetime.now(timezone.utc)
    start, end = default_window(now)
    plan = plan_drain(stations=stations, sessions=sessions, seed=seed, start=start, end=end,
                      duplicate_ratio=0.05, reorder=True, now=now)  # fmt: skip
    at_fraction = round(rng.uniform(0.1, 0.7), 2)
    down_s = round(rng.uniform(1.0, 4.0), 1)
    with Sandbox(workdir, admin_url=admin_url, proxied=True, republish_after_s=8.0) as sandbox:
        sandbox.start_workers(tuple(Queue))
        sandbox.start("beat", "beat")
        sandbox.start_bridge()
        # Part of the day goes in before the fault, the rest while it lasts: the failed part
        # must see traffic, or the cell proves nothing.
        split = int(len(plan.messages) * rng.uniform(0.3, 0.6))
        producer = RecordingProducer(make_producer(sandbox.settings.kafka_bootstrap))
        send(plan.messages[:split], producer)
        producer.flush()
        wait_drained(sandbox.settings, producer.sent.targets(), timeout_s=drain_timeout_s, until_fraction=at_fraction)
        say(f"  {fault}: injecting at {at_fraction:.0%} of the first {split} messages committed, for {down_s}s")
        outage_started = time.monotonic()
        restores = [_inject(sandbox, f, rng) for f in fault.split("+")]
        send(plan.messages[split:], producer)
        producer.flush()
        producer.close()
        targets = producer.sent.targets()
        time.sleep(max(0.0, down_s - (time.monotonic() - outage_started)))  # the outage itself
        for restore in restores:
            restore()
        restored_at = time.monotonic()
        restarted: list[str] = []

        def supervise(*_: object) -> None:  # what compose's restart policy does, while we wait
            restarted.extend(sandbox.restart_dead())

        supervise()
        drained = wait_drained(sandbox.settings, targets, timeout_s=drain_timeout_s, on_progress=supervise)
        if restarted:
            say(f"  {fault}: restarted as a supervisor would: {', '.join(restarted)}")
        recover_s = time.monotonic() - restored_at
        seen = observe(sandbox.settings, plan.truth, producer.sent)
        rows = compare(plan.truth, seen)
    lost = max(0, plan.truth.valid_events - seen.es_documents) + max(0, plan.truth.sessions - seen.pg_sessions)
    duplicated = max(0, seen.es_documents - plan.truth.valid_events) + seen.pg_session_mismatches - max(
        0, plan.truth.sessions - seen.pg_sessions
    )
    bad = [f"{r.metric.strip()}: expected {r.expected}, got {r.postgres}/{r.elasticsearch}" for r in rows if not r.ok]
    if not drained:
        bad.insert(0, f"not drained after {drain_timeout_s:.0f}s")
    return CellResult(
        fault=fault, events=plan.truth.valid_events + plan.truth.duplicates, at_fraction=at_fraction, down_s=down_s,
        lost=lost, duplicated=duplicated, exact=drained and not bad, recover_s=round(recover_s, 1),
        detail="; ".join(bad),
    )  # fmt: skip


def _run_cell_via_ocpp(
    fault: str, *, events: int, seed: int, workdir: Path, admin_url: str, drain_timeout_s: float,
    say: Callable[[str], None],
) -> CellResult:
    """A cell whose day arrives through the OCPP gateway, the fleet connected as chargers."""
    import threading

    from evmonitor.simulator import default_window, plan_drain
    from evmonitor.stack.ocpp_fleet import OcppDrain
    from evmonitor.stack.procs import free_port, wait_for

    rng = random.Random(f"{seed}:{fault}")
    sessions = max(20, events // 9)
    stations = max(5, min(50, sessions // 40))
    now = datetime.now(timezone.utc)
    start, end = default_window(now)
    # chargers send in order, and only what they resend is duplicated
    plan = plan_drain(stations=stations, sessions=sessions, seed=seed, start=start, end=end, now=now)
    at_fraction = round(rng.uniform(0.1, 0.7), 2)
    down_s = round(rng.uniform(1.0, 4.0), 1)
    with Sandbox(workdir, admin_url=admin_url, proxied=True, republish_after_s=8.0,
                 ocpp_listen=f"127.0.0.1:{free_port()}") as sandbox:  # fmt: skip
        sandbox.start_workers(tuple(Queue))
        sandbox.start("beat", "beat")
        sandbox.start_bridge()
        sandbox.start("gateway", "gateway")
        wait_for(lambda: "listening on" in sandbox.log("gateway"), timeout_s=30, what="the gateway",
                 hint=f"Logs: {sandbox.logs}")  # fmt: skip
        drain = OcppDrain(sandbox.settings, plan, start=start, duplicate_ratio=0.05, seed=seed, heartbeats=False)
        drain.register()
        failure: list[BaseException] = []

        def drive() -> None:
            try:
                drain.run(deadline_s=drain_timeout_s)
            except BaseException as exc:  # reported below, in the cell's result
                failure.append(exc)

        driver = threading.Thread(target=drive, name="ocpp-fleet")
        driver.start()
        wait_for(lambda: drain.answered >= at_fraction * len(drain.events) or not driver.is_alive(),
                 timeout_s=drain_timeout_s, what="the fleet to reach the fault", hint=f"Logs: {sandbox.logs}")  # fmt: skip
        say(f"  {fault}: injecting after {at_fraction:.0%} of {len(drain.events)} OCPP messages answered, for {down_s}s")
        restores = [_inject(sandbox, f, rng) for f in fault.split("+")]
        time.sleep(down_s)  # the outage itself
        for restore in restores:
            restore()
        restored_at = time.monotonic()
        driver.join(timeout=drain_timeout_s)
        if failure or driver.is_alive():
            return CellResult(fault=fault, events=len(drain.events), at_fraction=at_fraction, down_s=down_s, lost=0,
                              duplicated=0, exact=False, recover_s=0.0,
                              detail=f"the fleet did not finish: {failure[0]!r}" if failure else "the fleet hung")  # fmt: skip
        truth, sent = drain.result()
        drained = wait_drained(sandbox.settings, sent.targets(), timeout_s=drain_timeout_s)
        recover_s = time.monotonic() - restored_at
        seen = observe(sandbox.settings, truth, sent)
        rows = compare(truth, seen)
    lost = max(0, truth.valid_events - seen.es_documents) + max(0, truth.sessions - seen.pg_sessions)
    duplicated = max(0, seen.es_documents - truth.valid_events) + seen.pg_session_mismatches - max(
        0, truth.sessions - seen.pg_sessions
    )
    bad = [f"{r.metric.strip()}: expected {r.expected}, got {r.postgres}/{r.elasticsearch}" for r in rows if not r.ok]
    if not drained:
        bad.insert(0, f"not drained after {drain_timeout_s:.0f}s")
    return CellResult(
        fault=fault, events=truth.valid_events + truth.duplicates, at_fraction=at_fraction, down_s=down_s,
        lost=lost, duplicated=duplicated, exact=drained and not bad, recover_s=round(recover_s, 1),
        detail="; ".join(bad),
    )  # fmt: skip


def run_matrix(
    faults: Iterable[str] = FAULTS,
    *,
    events: int = 20_000,
    seed: int = 1,
    admin_url: str = DEFAULT_ADMIN_URL,
    workdir: Path | None = None,
    say: Callable[[str], None] = print,
) -> list[CellResult]:
    results = []
    base = Path(workdir or tempfile.mkdtemp(prefix="evmonitor-chaos-"))
    for i, fault in enumerate(faults):
        say(f"cell {i + 1}: {fault} ({events} events, seed {seed})")
        result = run_cell(fault, events=events, seed=seed + i, workdir=base / f"{i}-{fault}", admin_url=admin_url, say=say)
        say(f"  -> lost {result.lost}, duplicated {result.duplicated}, exact {'yes' if result.exact else 'NO'}, "
            f"recovered in {result.recover_s}s {result.detail}")  # fmt: skip
        results.append(result)
    return results
