"""`evmonitor demo`: up, simulate in drain mode, wait until processed, reconcile, down."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evmonitor.config import Settings
from evmonitor.names import Queue
from evmonitor.stack.reconcile import compare, observe, wait_drained
from evmonitor.stack.simulate import run_drain
from evmonitor.stack.supervisor import Stack

__all__ = ["run_demo"]


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
) -> bool:
    stack = Stack(settings, say=console.print)
    started = stack.up()
    try:
        stack.wait_workers((Queue.PERSIST, Queue.INDEX))
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            send_task = progress.add_task("sending to Kafka", total=None)
            truth, sent = run_drain(
                settings, stations=stations, sessions=sessions, seed=seed, bad_ratio=bad_ratio,
                duplicate_ratio=duplicate_ratio, reorder=reorder, say=console.print,
                on_progress=lambda n, total: progress.update(send_task, completed=n, total=total),
            )  # fmt: skip
            targets = sent.targets()
            total = sum(targets.values())
            drain_task = progress.add_task("processed (committed offsets)", total=total)
            drained = wait_drained(
                settings, targets, timeout_s=timeout_s,
                on_progress=lambda behind, _: progress.update(drain_task, completed=total - behind),
            )  # fmt: skip
        if ground_truth:
            truth.write(ground_truth)
        if not drained:
            console.print(f"[bold red]not drained after {timeout_s:.0f}s[/]: see the logs in {stack.log_dir}")
        seen = observe(settings, truth, sent)
        rows = compare(truth, seen)
        table = Table(title=f"reconciliation (seed {seed})")
        for col in ("metric", "expected", "PostgreSQL", "Elasticsearch", "ev.deadletter", "match"):
            table.add_column(col, justify="right" if col != "metric" else "left")
        for row in rows:
            mark = "[green]yes[/]" if row.ok else "[bold red]NO[/]"
            table.add_row(row.metric, str(row.expected), str(row.postgres), str(row.elasticsearch), str(row.deadletter_topic), mark)
        console.print(table)
        ok = drained and all(row.ok for row in rows)
        console.print("[bold green]exact: every total matches[/]" if ok else "[bold red]MISMATCH[/]")
        return ok
    finally:
        if not keep and started:
            stack.down(only=started)
