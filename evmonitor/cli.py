"""The `evmonitor` command line. Filled in step by step; see README.md."""

from __future__ import annotations

import typer

app = typer.Typer(help="evmonitor: watch an EV charging network in real time.", no_args_is_help=True)


def main() -> None:
    app()


# Command names are fixed (docker-compose.yml and the README use them); bodies land step by step.
for _name, _help in [
    ("init", "Create topics, schema and index template (idempotent), then exit."),
    ("bridge", "Run the Kafka -> Celery bridge."),
    ("worker", "Run a Celery worker for the given queues."),
    ("beat", "Run Celery beat (periodic maintenance jobs)."),
    ("flower", "Run Flower with basic auth."),
    ("simulate", "Feed the configured Kafka with a simulated fleet."),
    ("up", "Start the embedded stack and the pipeline."),
    ("down", "Stop what `up` started, gracefully and in order."),
    ("status", "Show each component's pid, address and health."),
    ("demo", "Up, simulate, drain, reconcile, down."),
]:
    app.command(_name, help=_help)(lambda: (_ for _ in ()).throw(typer.Exit(2)))
