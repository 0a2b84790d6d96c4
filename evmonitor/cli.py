"""The `evmonitor` command line.

Every command builds one `Settings` (EVMON_* variables and `.env`) and passes it down.
Errors meant for the operator print one clear line on stderr (`evmonitor.cli_support.run_cli`):
exit 2 for a bad option or setting (`ConfigError`), 1 for a service that does not answer.
"""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from evmonitor.cli_support import (
    OPERATOR,
    PROVING,
    ROLES,
    SERVICES,
    OrderedGroup,
    cli_version,
    require,
    run_cli,
    secret_env_files,
    warn_if_exposed,
)
from evmonitor.config import Settings, load_settings
from evmonitor.errors import ConfigError, EvmonitorError
from evmonitor.names import OutageCause, WorkerPool

app = typer.Typer(
    cls=OrderedGroup,
    help="evmonitor: watch an EV charging network in real time.\n\n"
    "Configuration comes from EVMON_* environment variables or a .env file "
    "(EVMON_KAFKA_BOOTSTRAP, EVMON_DATABASE_URL, EVMON_BROKER_URL, EVMON_ELASTICSEARCH_URL, ...).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
console = Console(stderr=True)
out = Console()


def _settings() -> Settings:
    return load_settings()


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)


def main() -> None:
    sys.exit(run_cli(app, _settings))


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"evmonitor {cli_version()}")
        raise typer.Exit()


@app.callback()
def _everywhere(
    version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                 help="Print the version (evmonitor X.Y.Z) and exit."),  # fmt: skip
) -> None:
    # settings, and so passwords, are read from .env: say so if others may read it
    for path in secret_env_files():
        warn_if_exposed(path, lambda line: typer.echo(line, err=True), "settings (passwords)")


# --- one-shot set-up --------------------------------------------------------------------------


@app.command(rich_help_panel=ROLES)
def init() -> None:
    """Create Kafka topics, apply the SQL schema and install the index template. Idempotent."""
    from evmonitor.stack.embedded import init_pipeline, provision_database

    settings = _settings()
    require(settings, "postgres", "kafka", "elasticsearch")
    console.print(f"postgres: {provision_database(settings)}")
    info = init_pipeline(settings)
    out.print_json(data=info)


# --- long-running roles -----------------------------------------------------------------------


@app.command(rich_help_panel=ROLES)
def bridge(log_level: str = typer.Option("INFO", help="Python log level.")) -> None:
    """Run the Kafka -> Celery bridge (consumer group evmonitor-bridge). SIGTERM: flush, commit, exit."""
    import threading

    from evmonitor.bridge.joining import start_joining, stop_on_signals
    from evmonitor.malloc import pin_mmap_threshold

    pin_mmap_threshold()  # large batch buffers go back to the system when freed (evmonitor.malloc)
    _logging(log_level)
    settings, stop = _settings(), threading.Event()
    stop_on_signals(stop)
    early = start_joining(settings, stop)  # the ~3 s group join runs while the rest is imported and built

    from evmonitor.bridge.wiring import run_bridge

    run_bridge(settings, stop, early=early)


@app.command(rich_help_panel=ROLES)
def gateway(log_level: str = typer.Option("INFO", help="Python log level.")) -> None:
    """Run the OCPP 1.6J gateway on EVMON_OCPP_LISTEN: chargers connect to ws://HOST:PORT/ocpp/ID.

    SIGTERM: stop accepting, answer the messages in flight, close every connection with a reason.
    """
    from evmonitor.gateway.run import run

    _logging(log_level)
    settings = _settings()
    key = settings.ocpp_tls_key or settings.ocpp_tls_cert  # without a key file, the key sits in the cert file
    if key is not None:
        warn_if_exposed(Path(key), lambda line: console.print(line, highlight=False, soft_wrap=True), "a TLS private key")
    run(settings)


chargers_app = typer.Typer(help="The chargers the OCPP gateway accepts (registry in PostgreSQL).", no_args_is_help=True)
app.add_typer(chargers_app, name="chargers", rich_help_panel=OPERATOR)


def _registry():
    from evmonitor.gateway.registry import Registry

    settings = _settings()
    require(settings, "postgres")
    return Registry.connect(settings.sqlalchemy_url, settings.sql_dir)


@chargers_app.command("add")
def chargers_add(
    charger_id: str = typer.Argument(..., metavar="ID", help="The chargePointId (also the station_id of its events)."),
    name: str = typer.Option(..., help="Display name."),
    operator: str = typer.Option(..., help="Operator."),
    city: str = typer.Option(..., help="City."),
    lat: float = typer.Option(..., min=-90, max=90, help="Latitude."),
    lon: float = typer.Option(..., min=-180, max=180, help="Longitude."),
    max_power_kw: float = typer.Option(..., min=0.001, max=10_000, help="Maximum power in kW."),
    connectors: int = typer.Option(..., min=1, max=99, help="Number of connectors."),
    price: float = typer.Option(..., min=0, max=100, help="Price in EUR per kWh."),
    password: Optional[str] = typer.Option(
        None, help="Require HTTP Basic auth (OCPP security profile 1); stored only as a slow hash."
    ),
) -> None:
    """Register a charger (or replace its registration): what OCPP does not carry, and its password."""
    from evmonitor.gateway.mapping import ChargerProfile

    if not 1 <= len(charger_id) <= 64 or "/" in charger_id:
        raise ConfigError("a charger id has 1..64 characters and no '/'")
    profile = ChargerProfile(charger_id, name, operator, city, lat, lon, max_power_kw, connectors, price)
    registry = _registry()
    try:
        new = registry.add(profile, password)
    finally:
        registry.close()
    settings = _settings()
    console.print(f"{'registered' if new else 'updated'} {charger_id}"
                  f"{' (password required)' if password else ''}: ws://{settings.ocpp_listen}/ocpp/{charger_id}")  # fmt: skip


@chargers_app.command("list")
def chargers_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The registered chargers (whether a password is set, never the password)."""
    registry = _registry()
    try:
        chargers = registry.list()
    finally:
        registry.close()
    if as_json:
        out.print_json(data=[c.to_json() for c in chargers])
        return
    table = Table("id", "name", "operator", "city", "lat", "lon", "max kW", "connectors", "EUR/kWh", "password")
    for c in chargers:
        p = c.profile
        table.add_row(p.id, p.name, p.operator, p.city, f"{p.latitude:g}", f"{p.longitude:g}", f"{p.max_power_kw:g}",
                      str(p.connector_count), f"{p.price_eur_per_kwh:.4f}", "yes" if c.password_hash else "no")  # fmt: skip
    out.print(table)


@chargers_app.command("remove")
def chargers_remove(charger_id: str = typer.Argument(..., metavar="ID", help="The charger's id (chargers list).")) -> None:
    """Unregister a charger: its next connection is refused (404). Its sessions stay."""
    registry = _registry()
    try:
        removed = registry.remove(charger_id)
    finally:
        registry.close()
    if not removed:
        console.print(f"no charger {charger_id!r} is registered")
        raise typer.Exit(1)
    console.print(f"removed {charger_id}")


def _check_autoscale(value: Optional[str]) -> Optional[str]:
    if value is None:
        return value
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or not 1 <= int(parts[1]) <= int(parts[0]) <= 256:
        raise typer.BadParameter(f"{value!r} is not MAX,MIN with 1 <= MIN <= MAX <= 256 (for example 8,2)")
    return value


@app.command(rich_help_panel=ROLES)
def worker(
    queues: str = typer.Option("persist,index", "--queues", "-Q", help="Comma-separated: persist, index, maintenance."),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, max=256,
                                    help="Pool processes; with --pool threads: threads; with --pool solo: worker processes."),
    pool: WorkerPool = typer.Option(WorkerPool.PREFORK, "--pool", case_sensitive=False,
                                    help="prefork: a parent moving tasks to child processes; solo: tasks run in the "
                                         "worker process itself (no second decode, no pipe; what `up` runs for persist "
                                         "and index: scale out with more worker processes); threads: a thread pool."),
    name: Optional[str] = typer.Option(None, "--hostname", "-n", help="Worker node name, e.g. persist@%h."),
    autoscale: Optional[str] = typer.Option(None, callback=_check_autoscale,
                                            help="MAX,MIN pool processes, instead of --concurrency (prefork only)."),  # fmt: skip
    log_level: str = typer.Option("INFO", help="Python log level."),
    metrics_port: int = typer.Option(0, "--metrics-port", min=0, max=65535,
                                     help="Serve task duration histograms on EVMON_METRICS_ADDRESS:PORT/metrics (0: off)."),
) -> None:
    """Run a Celery worker for the given queues. SIGTERM: finish running tasks, exit.

    With `--pool solo`, `-c N` runs N solo worker processes (node names NAME-1@HOST ... NAME-N@HOST)
    under this one, which hands them its signals.
    """
    if autoscale and pool is not WorkerPool.PREFORK:
        raise typer.BadParameter(f"--autoscale grows a prefork pool, not a {pool.value} one", param_hint="--autoscale")
    from evmonitor.malloc import pin_mmap_threshold

    pin_mmap_threshold()  # before any pool process is forked: they inherit it (evmonitor.malloc)
    settings = _settings()
    samples = _task_metrics(settings, metrics_port) if metrics_port else None
    from evmonitor.app import create_app

    celery = create_app(settings)
    argv = ["worker", "-Q", queues, "--loglevel", log_level, "-E", "--without-mingle", "--without-gossip"]
    argv += ["--pool", pool.value]
    try:
        if pool is WorkerPool.SOLO and concurrency > 1:
            from evmonitor.stack.forked import run_forked

            node, _, host = (name or "celery@%h").partition("@")
            one = [*argv, "-c", "1", "-n"]
            raise typer.Exit(run_forked(concurrency, lambda i: celery.worker_main([*one, f"{node}-{i}@{host or '%h'}"])))
        if pool is not WorkerPool.SOLO:
            argv += ["--autoscale", autoscale] if autoscale else ["-c", str(concurrency)]
        if name:
            argv += ["-n", name]
        celery.worker_main(argv)
    finally:
        if samples is not None:  # reached by this process only: its children leave by os._exit
            import shutil

            shutil.rmtree(samples, ignore_errors=True)


def _task_metrics(settings: Settings, port: int) -> Path:
    """Serve the task histograms of this worker and of every process it forks; return their folder.

    Each process writes its samples to files of its own pid there. Those of a child that exited
    stay and are summed until this process exits (a histogram's counts never go back); prometheus_client's
    `mark_process_dead` would only remove live-gauge files, and there are none.
    """
    import os
    import shutil

    # prometheus_client picks its multiprocess storage when first imported: set the folder first
    if "prometheus_client" in sys.modules:
        raise ConfigError("--metrics-port: prometheus_client was imported too early (a bug)")
    folder = Path(settings.state_dir).resolve() / "metrics" / f"worker-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    from evmonitor.taskmetrics import connect_task_metrics, serve_task_metrics

    connect_task_metrics()
    serve_task_metrics(port, folder, settings.metrics_address)
    console.print(f"worker: task metrics on http://{settings.metrics_address}:{port}/metrics")
    return folder


BEAT_LOCK_KEY = 0x65766D62  # "evmb"


@app.command(rich_help_panel=ROLES)
def beat(log_level: str = typer.Option("INFO", help="Python log level.")) -> None:
    """Run Celery beat: periodic maintenance jobs on queue `maintenance`.

    Only one beat runs at a time: a second one stands by until the first stops (a PostgreSQL
    advisory lock), so no job is ever scheduled twice.
    """
    from beat.leader import LeaderLock
    from evmonitor.app import create_app

    _logging(log_level)
    settings = _settings()
    lock = LeaderLock(settings.sqlalchemy_url, BEAT_LOCK_KEY)
    lock.acquire(say=console.print)
    console.print("beat: holding the scheduler lock")
    lock.watch()
    from evmonitor.heartbeat import start_heartbeat

    stop_heartbeat = start_heartbeat(settings, "beat")  # the leader's; /api/v1/pipeline reads it
    celery = create_app(settings)
    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    try:
        celery.start(["beat", "--loglevel", log_level, "--schedule", str(state / "celerybeat-schedule")])
    finally:
        stop_heartbeat()


@app.command(rich_help_panel=ROLES)
def flower() -> None:
    """Run Flower (task monitoring) with basic auth from EVMON_FLOWER_USER / EVMON_FLOWER_PASSWORD."""
    from evmonitor.app import create_app

    settings = _settings()
    if not settings.flower_password:
        raise ConfigError("set EVMON_FLOWER_PASSWORD (Flower never runs without credentials)")
    celery = create_app(settings)
    celery.start(
        ["flower", f"--port={settings.flower_port}", f"--basic-auth={settings.flower_user}:{settings.flower_password}",
         f"--address={settings.flower_address}"]  # fmt: skip
    )


# --- simulator --------------------------------------------------------------------------------


# the edges of the number options: past them a run would exhaust memory or never end
MAX_STATIONS = 100_000
MAX_SESSIONS = 10_000_000
MAX_SEED = 2**63 - 1
MAX_SPEED = 100_000.0
MAX_SECONDS = 30 * 86_400.0


class Via(StrEnum):
    """How the simulated fleet reaches the pipeline."""

    KAFKA = "kafka"  # events straight into the topics
    OCPP = "ocpp"  # as OCPP 1.6J chargers through the gateway (EVMON_OCPP_LISTEN)


_VIA_HELP = "kafka: events straight into the topics; ocpp: the stations connect as OCPP chargers to the gateway."


def _check_via_ocpp(via: Via, **kafka_only: object) -> None:
    used = [name for name, value in kafka_only.items() if value]
    if via is Via.OCPP and used:
        raise ConfigError(f"--via ocpp sends what chargers send, in order and well-formed: drop {', '.join(used)}")


@app.command(rich_help_panel=PROVING)
def simulate(
    stations: int = typer.Option(50, min=1, max=MAX_STATIONS, help="Stations in the fleet."),
    sessions: int = typer.Option(1000, min=0, max=MAX_SESSIONS, help="Drain mode: sessions to simulate."),
    seed: int = typer.Option(7, min=0, max=MAX_SEED, help="Same seed, same fleet and shape of the day. Session and event ids "
                             "are unique to each run (see --run-id), so runs never merge."),
    run_id: Optional[str] = typer.Option(None, help="Reuse a run's ids (repeat a run exactly); default: a new run."),
    live: bool = typer.Option(False, "--live", help="Real time until Ctrl-C instead of draining a fixed number."),
    speed: float = typer.Option(1.0, min=0.01, max=MAX_SPEED, help="Live mode: how much faster than real life stations live "
                         "(arrivals, durations, intervals); power stays real, so a session delivers SPEED times fewer kWh."),
    duration: Optional[float] = typer.Option(None, min=0.1, max=MAX_SECONDS, help="Live mode: stop after this many seconds."),
    bad_ratio: float = typer.Option(0.0, min=0, max=1, help="Share of malformed messages to mix in."),
    duplicate_ratio: float = typer.Option(0.0, min=0, max=1, help="Probability each valid message is sent twice."),
    reorder: bool = typer.Option(False, help="Send each session's events in random order."),
    meter_interval: float = typer.Option(300, min=1, max=86_400, help="Seconds between meter readings of a session."),
    ground_truth: Optional[Path] = typer.Option(None, help="Write the ground truth JSON here."),
    via: Via = typer.Option(Via.KAFKA, "--via", help=_VIA_HELP),
    wait: bool = typer.Option(False, "--wait", help="Drain mode: return only once the pipeline has processed the run "
                              "(the bridge committed every record, PostgreSQL holds every session); exit 1 if not in time."),
    wait_timeout: float = typer.Option(300, min=1, max=MAX_SECONDS, help="With --wait: give up after this many seconds."),
) -> None:
    """Feed the configured Kafka with a simulated fleet (drain mode by default, --live for real time).

    Every run sends its own session and event ids (printed as `run <id>`), so two runs, even
    with the same seed, add up instead of overwriting each other's sessions. Says on stderr
    how many messages went to which topic of which Kafka; `--wait` then follows the pipeline
    until it has processed them.
    """
    from evmonitor.stack.simulate import run_drain, run_live_until_stopped, wait_processed

    settings = _settings()
    _check_via_ocpp(via, **{"--live": live, "--bad-ratio": bad_ratio, "--reorder": reorder})
    if wait and live:
        raise ConfigError("--wait follows a drain run to its end; a --live run has none: drop one of them")
    require(settings, "kafka", *(("postgres",) if wait or via is Via.OCPP else ()))
    sent = None
    if via is Via.OCPP:
        from evmonitor.stack.ocpp_fleet import run_drain_ocpp

        truth, sent = run_drain_ocpp(settings, stations=stations, sessions=sessions, seed=seed,
                                  duplicate_ratio=duplicate_ratio, meter_interval_s=meter_interval, say=console.print)  # fmt: skip
    elif live:
        truth = run_live_until_stopped(settings, stations=stations, seed=seed, speed=speed, duration_s=duration,
                                       run_id=run_id, say=console.print)  # fmt: skip
    else:
        truth, sent = run_drain(settings, stations=stations, sessions=sessions, seed=seed, bad_ratio=bad_ratio,
                             duplicate_ratio=duplicate_ratio, reorder=reorder, meter_interval_s=meter_interval,
                             run_id=run_id, say=console.print)  # fmt: skip
    if ground_truth:
        truth.write(ground_truth)
        console.print(f"ground truth written to {ground_truth}")
    if wait and sent is not None:
        failure = wait_processed(settings, truth, sent, timeout_s=wait_timeout, say=console.print)
        if failure:
            console.print(f"error: {failure}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)


# --- the embedded stack -----------------------------------------------------------------------


@app.command(rich_help_panel=OPERATOR)
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once everything is ready; stop with `evmonitor down`."),
    simulate_live: bool = typer.Option(False, "--simulate", help="Also run the simulator in live mode."),
    speed: float = typer.Option(60.0, min=0.01, max=MAX_SPEED, help="With --simulate: how much faster than real life stations "
                         "live (arrivals, durations, intervals); power stays real, so a session delivers SPEED times fewer kWh."),
    stations: int = typer.Option(50, min=1, max=MAX_STATIONS, help="With --simulate: stations."),
) -> None:
    """Start the embedded stack (what is not already reachable) and the pipeline's processes.

    Returns (with --detach) or starts watching once every process is ready. A stack that is
    already running is joined, never duplicated; Ctrl-C then leaves it running.
    """
    from evmonitor.stack.supervisor import Stack, wait_until_stopped

    settings = _settings()
    stack = Stack(settings, say=console.print)
    attached = stack.running()
    sim_args = ["--speed", str(speed), "--stations", str(stations)]
    started = stack.up(with_simulator=simulate_live, simulator_args=sim_args)
    console.print(f"started: {', '.join(started) or 'nothing (all running)'}")
    _print_status(stack.status())
    flower = stack.extra.get("flower")
    if flower:
        console.print(f"Flower: http://127.0.0.1:{settings.flower_port}  user [bold]{flower['user']}[/] password [bold]{flower['password']}[/]")
    scheme = "wss" if settings.ocpp_tls_cert else "ws"
    console.print(f"OCPP gateway: {scheme}://{settings.ocpp_listen}/ocpp/<chargePointId>  (register chargers: `evmonitor chargers add`)")
    console.print(f"API and live page: http://{settings.api_listen}/  (sign in with `evmonitor tokens create --name you`)",
                  highlight=False)  # fmt: skip
    targets = stack.metrics_targets()
    console.print("Prometheus scrape targets (one port per process; the API's needs a read token as Bearer): "
                  + ", ".join(f"{name} {url}" for name, url in targets.items()), highlight=False, soft_wrap=True)  # fmt: skip
    if detach:
        console.print("running in the background: `evmonitor status`, `evmonitor down`")
        return
    if attached:
        console.print("joined a stack that was already running: Ctrl-C leaves it running (`evmonitor down` stops it)")
    else:
        console.print("running; Ctrl-C stops everything")
    try:
        wait_until_stopped(stack)
    except KeyboardInterrupt:
        console.print("leaving the stack running" if attached else "stopping ...")
    finally:
        if not attached:
            stack.down()


@app.command(rich_help_panel=OPERATOR)
def down() -> None:
    """Stop what `up` started, gracefully and in order (simulator, bridge, workers, services)."""
    from evmonitor.stack.supervisor import Stack

    stopped = Stack(_settings(), say=console.print).down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _print_status(items: list[dict]) -> None:
    table = Table(title="evmonitor")
    for col in ("component", "pid", "address", "health", "log"):
        table.add_column(col)
    for item in items:
        health = "[green]up[/]" if item["healthy"] else "[red]down[/]"
        owner = "" if item["owned"] or item["kind"] == "process" else " (found)"
        table.add_row(item["name"] + owner, str(item["pid"] or "-"), item["address"] or "-", health, item["log"] or "-")
    out.print(table)


@app.command(rich_help_panel=OPERATOR)
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Each component (pid, address, health), the configured services, and data health.

    Data health: consumer lag, age of the newest event, dead letters, open alerts. Tables go to
    stdout. Exit 1 if the pipeline is not running or any part of it is down.
    """
    from evmonitor.stack.health import data_health
    from evmonitor.stack.supervisor import Stack

    stack = Stack(_settings())
    items = stack.status()
    processes = [item for item in items if item["kind"] == "process"]
    services_up = all(item["healthy"] for item in items if item["kind"] == "service")
    health = data_health(stack.settings) if services_up else []
    if as_json:
        out.print_json(data={"components": items, "data": dict(health)})
    else:
        _print_status(items)
        if health:
            table = Table(title="data health")
            table.add_column("figure")
            table.add_column("value")
            for name, value in health:
                table.add_row(name, value)
            out.print(table)
    for item in items:  # name the setting that points at a service nobody answers on
        spec = SERVICES.get(item["name"]) if item["kind"] == "service" and not item["healthy"] else None
        if spec is not None:
            console.print(f"cannot reach {spec.label} at {item['address']} ({spec.setting})", highlight=False, soft_wrap=True)
    if not processes:
        console.print("nothing is running (start with `evmonitor up`)")
    if not processes or any(not item["healthy"] for item in items):
        raise typer.Exit(1)


@app.command(rich_help_panel=PROVING)
def demo(
    stations: int = typer.Option(50, min=1, max=MAX_STATIONS, help="Stations in the simulated fleet."),
    sessions: int = typer.Option(2000, min=1, max=MAX_SESSIONS, help="Sessions in the simulated day."),
    seed: int = typer.Option(11, min=0, max=MAX_SEED, help="Fixes the fleet and the shape of the day (ids are new every run)."),
    bad_ratio: float = typer.Option(0.0, min=0, max=1, help="Share of malformed messages to mix in."),
    duplicate_ratio: float = typer.Option(0.0, min=0, max=1, help="Probability each valid message is sent twice."),
    reorder: bool = typer.Option(False, "--reorder", help="Send each session's events in random order."),
    ground_truth: Optional[Path] = typer.Option(None, help="Also write the ground truth JSON here."),
    timeout: float = typer.Option(900, min=1, max=MAX_SECONDS, help="Seconds to wait for the pipeline to drain."),
    keep: bool = typer.Option(False, "--keep", help="Leave the sandbox running afterwards (it says how to reach and remove it)."),
    remove: Optional[Path] = typer.Option(None, "--remove", metavar="DIR", help="Throw away a sandbox that --keep left running, and exit."),
    via: Via = typer.Option(Via.KAFKA, "--via", help=_VIA_HELP),
    every_port: bool = typer.Option(False, "--every-port", help="A row per port's outage minutes and uptime %, not only for the ports that differ."),
) -> None:
    """Reconcile a simulated day end to end, on a sandbox of its own; exit 0 only if exact.

    Starts a throw-away pipeline (its own Kafka, search server, Redis, and a fresh database on
    the server of EVMON_ADMIN_DATABASE_URL), sends the day in drain mode, waits until every
    offset is committed and prints expected vs PostgreSQL vs Elasticsearch vs the dead-letter
    topic, then each port's outages and uptime from the outage ledger. The operator's database,
    queues, topics and indices are never touched, so the demo can run any number of times, next
    to a running stack.
    """
    from evmonitor.stack.demo import remove_demo, run_demo

    settings = _settings()
    if remove is not None:
        remove_demo(remove, console)
        return
    _check_via_ocpp(via, **{"--bad-ratio": bad_ratio, "--reorder": reorder})
    ok = run_demo(
        settings, stations=stations, sessions=sessions, seed=seed, bad_ratio=bad_ratio,
        duplicate_ratio=duplicate_ratio, reorder=reorder, ground_truth=ground_truth, timeout_s=timeout,
        keep=keep, console=console, via=str(via), out=out, every_port=every_port,
    )  # fmt: skip
    raise typer.Exit(0 if ok else 1)


@app.command(rich_help_panel=PROVING)
def chaos(
    events: int = typer.Option(20_000, min=500, max=10_000_000, help="Events per cell (valid + duplicates)."),
    seed: int = typer.Option(1, min=0, max=MAX_SEED, help="Chooses fault moments and durations, and the simulated day."),
    faults: str = typer.Option(",".join(("bridge", "worker", "beat", "redis", "postgres", "elasticsearch")),
                               help="Comma-separated cells; 'a+b' injects two faults at once."),  # fmt: skip
    admin_database_url: Optional[str] = typer.Option(None, help="Superuser URL for throw-away databases "
                                                     "(default: EVMON_ADMIN_DATABASE_URL)."),  # fmt: skip
    workdir: Optional[Path] = typer.Option(None, help="Where sandboxes keep logs (default: a temp dir)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the matrix as JSON here."),
) -> None:
    """Fault matrix: kill or cut off each part of a running pipeline mid-stream, then reconcile.

    Each cell runs in its own sandbox (fresh Kafka, search server, Redis, database, processes):
    the bridge, a worker, beat and Redis are SIGKILLed and restarted; PostgreSQL and
    Elasticsearch are cut off behind a fault-injecting proxy and restored. Exit 0 only if every
    cell has 0 lost, 0 duplicated and exact totals.
    """
    from evmonitor.stack.chaos import run_matrix

    settings = _settings()
    results = run_matrix(
        [f.strip() for f in faults.split(",") if f.strip()], events=events, seed=seed,
        admin_url=admin_database_url or settings.admin_database_url, workdir=workdir, say=console.print,
    )  # fmt: skip
    table = Table(title=f"chaos matrix (seed {seed}, {events} events per cell)")
    for col in ("fault", "at", "down s", "events lost", "duplicated", "exact", "recover s"):
        table.add_column(col, justify="left" if col == "fault" else "right")
    for r in results:
        table.add_row(r.fault, f"{r.at_fraction:.0%}", f"{r.down_s}", str(r.lost), str(r.duplicated),
                      "[green]yes[/]" if r.exact else f"[bold red]NO[/] {r.detail}", f"{r.recover_s}")  # fmt: skip
    out.print(table)
    if json_out:
        json_out.write_text(json.dumps([r.to_json() for r in results], indent=2))
    raise typer.Exit(0 if all(r.exact for r in results) else 1)


# --- reports ----------------------------------------------------------------------------------


@app.command(rich_help_panel=OPERATOR)
def report(
    date: Optional[str] = typer.Option(
        None, "--date", "--day", help="Local day YYYY-MM-DD in EVMON_TIMEZONE. Default: yesterday."
    ),
    month: Optional[str] = typer.Option(
        None, "--month", help="Build the monthly report of this local month, YYYY-MM, instead of a daily one."
    ),
) -> None:
    """Build the daily network report (HTML with charts, and CSV) for one day, or with --month the
    monthly one (uptime per port, outages with causes, sessions, kWh, peak kW), now.

    Brings rollups, alerts and the outage ledger up to date first, then writes both files to the
    reports folder (EVMON_REPORTS_DIR, default <state_dir>/reports) and records them.
    """
    from datetime import date as Date
    from datetime import datetime, timezone

    from beat.runner import Context, do_daily_report, do_monthly_report
    from evmonitor.ledger import month_days

    settings = _settings()
    if date and month:
        raise ConfigError("give --date or --month, not both")
    try:
        day = Date.fromisoformat(date) if date else None
    except ValueError:
        raise ConfigError(f"--date must look like 2026-11-23, not {date!r}") from None
    if month:
        month_days(month)  # says what a month looks like before anything connects
    require(settings, "postgres")
    ctx = Context(settings)
    try:
        now = datetime.now(timezone.utc)
        result = do_monthly_report(ctx, now, month, force=True) if month else do_daily_report(ctx, now, day, force=True)
    finally:
        ctx.close()
    if "skipped" in result:
        console.print(f"report not built: {result['skipped']}; try again in a moment")
        raise typer.Exit(1)
    if month:
        uptime = "no data" if result["uptime_pct"] is None else f"{result['uptime_pct']} %"
        console.print(
            f"report for {result['month']} ({result['coverage']}): {result['ports']} ports, uptime {uptime}, "
            f"{result['outages']} outages, {result['sessions']} sessions, {result['energy_kwh']} kWh",
            highlight=False,
        )
    else:
        console.print(
            f"report for {result['day']}: {result['sessions']} sessions, {result['energy_kwh']} kWh, "
            f"EUR {result['revenue_eur']}",
            highlight=False,
        )
    typer.echo(result["html"])
    typer.echo(result["csv"])


# --- uptime: the outage ledger and uptime per port (issue 14) ---------------------------------

outages_app = typer.Typer(help="The outage ledger per charging port, and the causes operators give them.",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(outages_app, name="outages", rich_help_panel=OPERATOR)


def _engine(settings: Settings):
    import sqlalchemy as sa

    require(settings, "postgres")
    return sa.create_engine(settings.sqlalchemy_url)


def _outage_json(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if k == "minutes" and v is not None else v)
            for k, v in row.items()}  # fmt: skip


@outages_app.command("list")
def outages_list(
    station: Optional[str] = typer.Option(None, "--station", help="Only this station."),
    open_only: bool = typer.Option(False, "--open", help="Only outages still going on."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The outages, newest first: port, start, end, minutes, what showed it, cause, excluded or not."""
    from evmonitor.ledger import list_outages

    settings = _settings()
    engine = _engine(settings)
    try:
        rows = list_outages(engine, settings, station_id=station, open_only=open_only)
    finally:
        engine.dispose()
    if as_json:
        out.print_json(data=[_outage_json(r) for r in rows])
        return
    table = Table("station", "port", "start (UTC)", "end (UTC)", "min", "signals", "cause", "excluded", "note")
    table.add_column("id", overflow="fold")  # never cut: it is what `outages exclude` takes
    for r in rows:
        table.add_row(r["station_id"], str(r["connector_id"]), f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
                      "open" if r["ended_at"] is None else f"{r['ended_at']:%Y-%m-%d %H:%M:%S}",
                      "" if r["minutes"] is None else str(r["minutes"]), ",".join(r["signals"]), r["cause"],
                      "yes" if r["excluded"] else "no", r["note"] or "", r["id"])  # fmt: skip
    out.print(table)


def _set_cause(outage_id: str, cause: OutageCause, note: Optional[str], by: Optional[str]) -> dict:
    from datetime import datetime, timezone

    from evmonitor.ledger import default_user, set_cause

    settings = _settings()
    engine = _engine(settings)
    try:
        return set_cause(engine, settings, outage_id, cause, note, by=by or default_user(), now=datetime.now(timezone.utc))
    finally:
        engine.dispose()


@outages_app.command("exclude")
def outages_exclude(
    outage_id: str = typer.Argument(..., metavar="ID", help="The outage's id (outages list)."),
    cause: OutageCause = typer.Option(..., "--cause", help="Why the port was down."),
    note: str = typer.Option(..., "--note", help="What happened (kept with the outage and in the audit)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who decides (default: the OS user)."),
) -> None:
    """Give an outage its cause: causes in EVMON_UPTIME_EXCLUDED_CAUSES do not count against uptime."""
    row = _set_cause(outage_id, cause, note, by)
    verdict = "excluded from" if row["excluded"] else "still counted against (cause not in EVMON_UPTIME_EXCLUDED_CAUSES)"
    console.print(f"{outage_id}: cause {row['cause']}, {verdict} uptime", highlight=False)


@outages_app.command("include")
def outages_include(
    outage_id: str = typer.Argument(..., metavar="ID", help="The outage's id (outages list)."),
    note: Optional[str] = typer.Option(None, "--note", help="Why it counts after all."),
    by: Optional[str] = typer.Option(None, "--by", help="Who decides (default: the OS user)."),
) -> None:
    """Count an outage against uptime again: its cause goes back to `unknown`."""
    _set_cause(outage_id, OutageCause.UNKNOWN, note, by)
    console.print(f"{outage_id}: cause unknown, counted against uptime", highlight=False)


@app.command(rich_help_panel=OPERATOR)
def uptime(
    station: Optional[str] = typer.Option(None, "--station", help="Only this station."),
    first: Optional[str] = typer.Option(None, "--from", help="First local day YYYY-MM-DD (EVMON_TIMEZONE)."),
    last: Optional[str] = typer.Option(None, "--to", help="Last local day, inclusive."),
    month: Optional[str] = typer.Option(None, "--month", help="A whole month YYYY-MM instead of --from/--to."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    as_csv: bool = typer.Option(False, "--csv", help="CSV on standard output."),
    trailing: bool = typer.Option(False, "--trailing", help="With --month: per port, one row per month (see --months) "
                                  "with that month's uptime and the trailing-12-month figures ending with it."),
    months: int = typer.Option(12, "--months", min=1, max=120, help="How many months --trailing shows, ending with --month."),
    refresh: bool = typer.Option(True, "--refresh/--no-refresh", help="First bring the outage ledger up to date "
                                 "(beat does it every EVMON_OUTAGES_INTERVAL_S); --no-refresh reads it as it is."),
) -> None:
    """Uptime per port and per station: (T_total - (T_outage - T_excluded)) / T_total x 100.

    Minutes of the period (from when the station was first seen, if later), from the outage
    ledger that beat keeps; outages whose cause is in EVMON_UPTIME_EXCLUDED_CAUSES are T_excluded.
    With --month, --json also gives each port's trailing-12-month uptime ending with that month.
    """
    import csv
    from datetime import datetime, timezone

    from evmonitor.ledger import TRAILING_COLUMNS, UPTIME_COLUMNS, parse_period, trailing_table, uptime_report, uptime_rows

    if as_json and as_csv:
        raise ConfigError("give --json or --csv, not both")
    if trailing and not month:
        raise ConfigError("--trailing needs --month YYYY-MM (the last month of the table)")
    first_day, last_day = parse_period(first, last, month)
    settings = _settings()
    require(settings, "postgres")
    now = datetime.now(timezone.utc)
    if refresh:
        _refresh_ledger(settings, now)
    engine = _engine(settings)
    try:
        if trailing:
            table_rows = trailing_table(engine, settings, month, months, now, station_id=station)
        elif as_json:
            out.print_json(data=uptime_report(engine, settings, first_day, last_day, now, station_id=station,
                                              month=month))  # fmt: skip
            return
        else:
            rows = [r.to_json() for r in uptime_rows(engine, settings, first_day, last_day, now, station_id=station)]
    finally:
        engine.dispose()
    if trailing:
        _trailing_out(table_rows, TRAILING_COLUMNS, as_json=as_json, as_csv=as_csv)
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=UPTIME_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        table = Table("station", "port", "from", "to", "T_total min", "T_outage min", "T_excluded min", "uptime %")
        for r in rows:
            table.add_row(r["station_id"], "all" if r["connector_id"] is None else str(r["connector_id"]),
                          r["period_from"], r["period_to"], r["t_total_min"], r["t_outage_min"], r["t_excluded_min"],
                          r["uptime_pct"] or "no data")  # fmt: skip
        out.print(table)


def _refresh_ledger(settings: Settings, now) -> None:
    """Run beat's faults and outage jobs once at `now` (idempotent; skipped while beat runs them)."""
    from beat.runner import Context, do_faults, do_outages

    ctx = Context(settings)
    try:
        do_faults(ctx, now)
        do_outages(ctx, now)
    except EvmonitorError as exc:
        console.print(f"[yellow]warning:[/] the outage ledger was not refreshed ({exc}); figures are as of beat's "
                      "last run", highlight=False)  # fmt: skip
    finally:
        ctx.close()


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value:.3f}"


def _trailing_out(rows: list[dict], columns: tuple[str, ...], *, as_json: bool, as_csv: bool) -> None:
    import csv

    if as_json:
        out.print_json(data=rows)
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        table = Table("station", "port", "month", "month uptime %", "12 months from", "T_total min", "T_outage min",
                      "T_excluded min", "12-month uptime %")  # fmt: skip
        for r in rows:
            table.add_row(r["station_id"], str(r["connector_id"]), r["month"], _pct(r["month_uptime_pct"]),
                          r["trailing_from"], f"{r['t_total_min']:.3f}", f"{r['t_outage_min']:.3f}",
                          f"{r['t_excluded_min']:.3f}", _pct(r["uptime_pct"]))  # fmt: skip
        out.print(table)


# --- the operator's commands (evmonitor/cli_operator.py) ---------------------------------------

from evmonitor.cli_operator import register as _register_operator_commands  # noqa: E402

_register_operator_commands(app)
