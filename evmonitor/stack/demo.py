"""`evmonitor demo`: a sandbox, a simulated day in drain mode, wait until processed, reconcile.

The demo runs on a sandbox of its own (`evmonitor.stack.sandbox`): its own Kafka (tansu), search
server (osmem) and Redis on free ports, and a throw-away database on the server of
`EVMON_ADMIN_DATABASE_URL` (or, when no server answers there, an embedded PostgreSQL of its own). So it can run any number of times, in any order, next to a live
network: the operator's database, queues, topics and indices are never read or written, and
each run's ids are its own (`run_drain` mints a run id). `keep=True` leaves the sandbox running
and says how to reach it and how to remove it.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evmonitor.config import Settings
from evmonitor.names import Queue
from evmonitor.stack.ocpp_fleet import run_drain_ocpp
from evmonitor.stack.procs import free_port, wait_for
from evmonitor.stack.reconcile import compare, observe, wait_drained
from evmonitor.stack.sandbox import Sandbox
from evmonitor.stack.simulate import new_run_id, run_drain

__all__ = ["remove_demo", "run_demo"]


def run_demo(
    settings: Settings,
    *,
    stations: int,
    sessions: int,
    seed: int,
    bad_ratio: float,
    duplicate_ratio: float,
    reorder: bool,
    ground_truth: Path | None,
    timeout_s: float,
    keep: bool,
    console: Console,
    via: str = "kafka",
    out: Console | None = None,
) -> bool:
    """Run the demo; True if every figure matched the ground truth exactly.

    `via="ocpp"`: the sandbox also runs the OCPP gateway, and the fleet reaches it as chargers.
    """
    run_id = new_run_id()
    workdir = Path(settings.state_dir).resolve() / "demo" / run_id[:8]
    console.print(f"demo: sandbox in {workdir} (its own Kafka, search server, Redis and database)")
    gateway = {"ocpp_listen": f"127.0.0.1:{free_port()}"} if via == "ocpp" else {}
    with Sandbox(workdir, admin_url=settings.admin_database_url, keep=keep, embedded_postgres=True,
                 timezone=settings.timezone, **gateway) as sandbox:  # fmt: skip
        sandbox.start_workers((Queue.PERSIST, Queue.INDEX, Queue.MAINTENANCE))
        sandbox.start("beat", "beat")
        sandbox.start_bridge()
        if via == "ocpp":
            sandbox.start("gateway", "gateway")
            wait_for(lambda: "listening on" in sandbox.log("gateway"), timeout_s=30, what="the OCPP gateway",
                     hint=f"Logs: {sandbox.logs}")  # fmt: skip
        box = sandbox.settings
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            send_task = progress.add_task(f"sending via {via}", total=None)
            on_progress = lambda n, total: progress.update(send_task, completed=n, total=total)  # noqa: E731
            if via == "ocpp":  # the stations connect to the sandbox's gateway as OCPP chargers
                truth, sent = run_drain_ocpp(box, stations=stations, sessions=sessions, seed=seed,
                                             duplicate_ratio=duplicate_ratio, say=console.print, on_progress=on_progress)  # fmt: skip
            else:
                truth, sent = run_drain(
                    box, stations=stations, sessions=sessions, seed=seed, bad_ratio=bad_ratio,
                    duplicate_ratio=duplicate_ratio, reorder=reorder, run_id=run_id, say=console.print,
                    on_progress=on_progress,
                )  # fmt: skip
            targets = sent.targets()
            total = sum(targets.values())
            drain_task = progress.add_task("processed (committed offsets)", total=total)
            drained = wait_drained(
                box, targets, timeout_s=timeout_s,
                on_progress=lambda behind, _: progress.update(drain_task, completed=total - behind),
            )  # fmt: skip
        if ground_truth:
            truth.write(ground_truth)
        if not drained:
            console.print(f"[bold red]not drained after {timeout_s:.0f}s[/]: see the logs in {sandbox.logs}")
        rows = compare(truth, observe(box, truth, sent))
        table = Table(title=f"reconciliation (seed {seed}, run {run_id[:8]})")
        for col in ("metric", "expected", "PostgreSQL", "Elasticsearch", "ev.deadletter", "match"):
            table.add_column(col, justify="right" if col != "metric" else "left")
        for row in rows:
            mark = "[green]yes[/]" if row.ok else "[bold red]NO[/]"
            table.add_row(row.metric, str(row.expected), str(row.postgres), str(row.elasticsearch), str(row.deadletter_topic), mark)
        (out or console).print(table)  # the result: stdout, where the CLI keeps tables
        ok = drained and all(row.ok for row in rows)
        console.print("[bold green]exact: every total matches[/]" if ok else "[bold red]MISMATCH[/]")
        if keep:
            env_file = sandbox.detach()
            console.print(
                f"the sandbox keeps running (logs: {sandbox.logs}).\n"
                f"  reach it:  set -a; . {env_file}; set +a   then e.g. `evmonitor report`, "
                f"`psql \"$EVMON_DATABASE_URL\"` (database {sandbox.database}), curl \"$EVMON_ELASTICSEARCH_URL\"\n"
                f"  remove it: evmonitor demo --remove {workdir}",
                highlight=False,
            )
        return ok


def remove_demo(workdir: Path, console: Console) -> None:
    """Throw away a sandbox that `evmonitor demo --keep` left running."""
    database = Sandbox.remove(workdir)
    console.print(f"removed the demo sandbox in {workdir} and its database {database}")
