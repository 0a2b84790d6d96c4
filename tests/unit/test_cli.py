"""The command line's edges: help on every option, panels, numbers checked, one-line errors, secrets."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evmonitor.cli import app
from evmonitor.cli_support import (
    OPERATOR,
    PROVING,
    ROLES,
    cli_version,
    explain_unreachable,
    run_cli,
    service_address,
    warn_if_exposed,
)
from evmonitor.config import Settings, load_settings
from evmonitor.stack.private import write_private
from evmonitor.stack.simulate import sent_summary

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> Iterator[tuple[list[str], object]]:
    """(path, click command) for every command and group under `evmonitor`, the root included."""
    root = typer.main.get_command(app)

    def walk(path: list[str], command: object) -> Iterator[tuple[list[str], object]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk([*path, name], sub)

    yield from walk([], root)


COMMANDS = list(_commands())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, int]:
    """Every service setting points at a port where nothing listens; no .env is read."""
    ports = {name: _closed_port() for name in ("postgres", "kafka", "redis", "search")}
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("EVMON_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("EVMON_DATABASE_URL", f"postgresql://u:p@127.0.0.1:{ports['postgres']}/x")
    monkeypatch.setenv("EVMON_ADMIN_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres")
    monkeypatch.setenv("EVMON_KAFKA_BOOTSTRAP", f"127.0.0.1:{ports['kafka']}")
    monkeypatch.setenv("EVMON_BROKER_URL", f"redis://127.0.0.1:{ports['redis']}/0")
    monkeypatch.setenv("EVMON_ELASTICSEARCH_URL", f"http://127.0.0.1:{ports['search']}")
    monkeypatch.setenv("EVMON_STATE_DIR", str(tmp_path / "state"))
    return ports


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(app, load_settings, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "evmonitor" for p, _ in COMMANDS])
def test_every_option_and_argument_says_what_it_is_for(path, command):
    """Each parameter of each command has help text; a command without a docstring fails too."""
    missing = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert not missing, f"evmonitor {' '.join(path)}: no help for {missing}"
    assert path == [] or (command.help or "").strip(), f"evmonitor {' '.join(path)} has no description"


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "evmonitor" for p, _ in COMMANDS])
def test_help_shows_no_bool_metavar(path, command):
    """A flag takes no value, so `--help` never prints `<bool>` after it."""
    done = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "<bool>" not in done.output and "BOOLEAN" not in done.output


def test_help_lists_operator_commands_first_then_roles_then_proving_tools():
    """The operator's daily commands come first; the internal roles and the proving tools follow in their own panels."""
    text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    positions = [text.index(f"─ {panel} ") for panel in (OPERATOR, ROLES, PROVING)]
    assert positions == sorted(positions)
    assert "─ Commands " not in text  # Typer's default panel would be printed above the operator's
    operator = text[positions[0]:positions[1]]
    for name in ("up", "down", "status", "stations", "station", "sessions", "alerts", "outages", "uptime", "report",
                 "tokens", "chargers"):  # fmt: skip
        assert f"│ {name} " in operator, name
    roles = text[positions[1]:positions[2]]
    assert all(f"│ {name} " in roles for name in ("bridge", "worker", "beat", "gateway", "api", "flower", "init"))
    assert all(f"│ {name} " in text[positions[2]:] for name in ("simulate", "demo", "chaos"))


def test_version_comes_from_the_package_metadata(capsys):
    """`--version` and `-V` print `evmonitor <version>` on stdout and exit 0."""
    from importlib.metadata import version

    for flag in ("--version", "-V"):
        code, out, _ = _run([flag], capsys)
        assert (code, out) == (0, f"evmonitor {version('evmonitor')}\n")
    assert cli_version() == version("evmonitor")


# --- numbers are checked at the edge ------------------------------------------------------------


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "evmonitor" for p, _ in COMMANDS])
def test_every_number_option_has_bounds(path, command):
    """An int or float option without a min or max would take any value into the code below."""
    for p in command.params:
        descriptor = getattr(p, "type_descriptor", None)
        if descriptor is not None and descriptor.annotation in (int, float) and not getattr(p, "is_flag", False):
            assert p.min is not None or p.max is not None, f"evmonitor {' '.join(path)} --{p.name} has no bounds"


BAD_VALUES = [
    ["simulate", "--meter-interval", "-5"],
    ["simulate", "--stations", "0"],
    ["simulate", "--stations", "1000000000"],
    ["simulate", "--sessions", "-1"],
    ["simulate", "--seed", "-1"],
    ["simulate", "--speed", "0"],
    ["simulate", "--duration", "-1"],
    ["simulate", "--bad-ratio", "2"],
    ["simulate", "--wait-timeout", "0"],
    ["simulate", "--stations", "many"],
    ["up", "--speed", "0"],
    ["up", "--stations", "0"],
    ["demo", "--sessions", "0"],
    ["demo", "--timeout", "0"],
    ["chaos", "--events", "10"],
    ["worker", "-c", "0"],
    ["worker", "--autoscale", "2,5"],
    ["worker", "--autoscale", "lots"],
    ["worker", "--metrics-port", "70000"],
    ["worker", "--pool", "gevent"],
    ["worker", "--pool", "solo", "--autoscale", "4,2"],
    ["sessions", "--limit", "0"],
    ["alerts", "--limit", "-3"],
    ["chargers", "add", "CP1", "--name", "n", "--operator", "o", "--city", "c", "--lat", "91", "--lon", "0",
     "--max-power-kw", "22", "--connectors", "2", "--price", "0.3"],
    ["simulate", "--no-such-option"],
]


@pytest.mark.parametrize("args", BAD_VALUES, ids=[" ".join(a[:3]) for a in BAD_VALUES])
def test_a_bad_value_is_one_usage_line_and_exit_2(args, offline, capsys):
    """Out of range or not a number: exit 2 and one line on stderr naming the option, no traceback."""
    code, out, err = _run(args, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert f"evmonitor {args[0]}" in err


def test_a_port_out_of_range_is_refused_before_the_server_starts(offline, capsys):
    """`api --listen HOST:99999` says which setting, instead of uvicorn's OverflowError traceback."""
    code, out, err = _run(["api", "--listen", "127.0.0.1:99999"], capsys)
    assert (code, out) == (2, "")
    assert err == "error: --listen / EVMON_API_LISTEN='127.0.0.1:99999': the port must be 1..65535\n"


def test_the_installed_command_prints_usage_errors_as_one_line():
    """The real entry point (a subprocess) wires the one-line errors: no framed box, no traceback."""
    done = subprocess.run([sys.executable, "-m", "evmonitor", "simulate", "--meter-interval", "-5"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "--meter-interval" in done.stderr and "Traceback" not in done.stderr


# --- a service that does not answer names its setting ---------------------------------------------


@pytest.mark.parametrize("args", [["stations"], ["station", "X"], ["sessions", "--active"], ["alerts", "--open"],
                                  ["tokens", "list"], ["tokens", "create", "--name", "me"], ["outages", "list"],
                                  ["uptime", "--month", "2026-11"], ["report"], ["chargers", "list"], ["init"]])  # fmt: skip
def test_unreachable_postgres_is_named_with_its_setting(args, offline, capsys):
    """One line: what, where, which setting, why; exit 1, nothing on stdout."""
    code, out, err = _run(args, capsys)
    assert (code, out) == (1, "")
    assert err == (f"error: cannot reach PostgreSQL at 127.0.0.1:{offline['postgres']} (EVMON_DATABASE_URL): "
                   "connection refused\n")  # fmt: skip


def test_unreachable_kafka_is_named_with_its_setting(offline, capsys):
    """`simulate` says which Kafka it could not reach before planning anything."""
    code, out, err = _run(["simulate", "--stations", "1", "--sessions", "1"], capsys)
    assert (code, out) == (1, "")
    assert err == f"error: cannot reach Kafka at 127.0.0.1:{offline['kafka']} (EVMON_KAFKA_BOOTSTRAP): connection refused\n"


def test_status_names_the_setting_of_each_service_that_does_not_answer(offline, capsys):
    """`status` keeps its table on stdout and names each unreachable service's setting on stderr."""
    code, out, err = _run(["status"], capsys)
    assert code == 1 and "component" in out
    for label, key, setting in (("PostgreSQL", "postgres", "EVMON_DATABASE_URL"), ("Kafka", "kafka", "EVMON_KAFKA_BOOTSTRAP"),
                                ("Redis", "redis", "EVMON_BROKER_URL"),
                                ("Elasticsearch", "search", "EVMON_ELASTICSEARCH_URL")):  # fmt: skip
        assert f"cannot reach {label} at 127.0.0.1:{offline[key]} ({setting})" in err


def test_driver_connection_errors_are_explained_with_address_and_setting():
    """A driver's error that escapes a command still becomes one line naming the setting."""
    import sqlalchemy as sa
    from kafka.errors import KafkaTimeoutError

    settings = Settings(_env_file=None, database_url="postgresql://u@db.example:6543/x",
                        admin_database_url="postgresql://postgres@admin.example:5433/postgres",
                        kafka_bootstrap="k1:9093,k2:9094")  # fmt: skip
    assert explain_unreachable(KafkaTimeoutError("Unable to bootstrap from k1:9093"), settings) == (
        "cannot reach Kafka at k1:9093,k2:9094 (EVMON_KAFKA_BOOTSTRAP): KafkaTimeoutError: Unable to bootstrap from k1:9093")
    admin = sa.exc.OperationalError("connect", {}, Exception('connection to server at "admin.example", port 5433 '
                                                             "failed: Connection refused"))  # fmt: skip
    assert explain_unreachable(admin, settings) == (
        "cannot reach PostgreSQL at admin.example:5433 (EVMON_ADMIN_DATABASE_URL): connection refused")
    assert explain_unreachable(ValueError("connection refused"), settings) is None  # not a driver's: a bug, a traceback
    assert service_address("redis://:pw@cache:6380/0", 6379) == [("cache", 6380)]


# --- secrets ----------------------------------------------------------------------------------------


def test_files_with_secrets_are_written_for_the_owner_only(tmp_path):
    """Whatever the umask, and also over a file that others could read."""
    target = tmp_path / "stack.json"
    target.write_text("old")
    target.chmod(0o644)
    old = os.umask(0)
    try:
        write_private(target, '{"flower": {"password": "x"}}')
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text())["flower"]["password"] == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["stack.json"]  # no temporary file left behind


def test_the_stack_state_file_holding_flowers_password_is_private(tmp_path):
    """`up` records Flower's generated password in the state file: only its owner may read it."""
    from evmonitor.stack.supervisor import Stack

    stack = Stack(Settings(_env_file=None, state_dir=tmp_path / "state"), say=lambda _: None)
    stack.extra["flower"] = {"user": "evmonitor", "password": "secret"}
    stack.save()
    assert stat.S_IMODE(stack.state_file.stat().st_mode) == 0o600


def test_a_dotenv_others_may_read_gets_a_warning_with_the_fix(offline, tmp_path, capsys):
    """The warning names the file and `chmod 600`; a private .env gets none."""
    env = tmp_path / ".env"
    env.write_text("EVMON_FLOWER_PASSWORD=secret\n")
    env.chmod(0o644)
    _, _, err = _run(["uptime"], capsys)  # any command; this one stops at its own options
    assert f"warning: {env} holds settings (passwords) and others may read it (mode 0644): chmod 600 {env}" in err
    env.chmod(0o600)
    _, _, err = _run(["uptime"], capsys)
    assert "warning" not in err


def test_warn_if_exposed_ignores_missing_files_and_folders(tmp_path):
    """Nothing to say about what is not a file."""
    said: list[str] = []
    assert not warn_if_exposed(tmp_path / "absent", said.append)
    assert not warn_if_exposed(tmp_path, said.append)
    assert said == []


# --- simulate says what it sent where ---------------------------------------------------------------


def test_sent_summary_names_run_kafka_and_topics():
    """One line: how many, which run, which Kafka (and its setting), per topic."""
    from collections import Counter

    line = sent_summary("r1", "127.0.0.1:9092", Counter({"ev.status": 1234, "ev.meter": 12}))
    assert line == ("simulator: sent 1,246 messages of run r1 to Kafka at 127.0.0.1:9092 (EVMON_KAFKA_BOOTSTRAP): "
                    "ev.meter 12, ev.status 1,234")  # fmt: skip


def test_wait_needs_a_drain_run(offline, capsys):
    """`--wait --live` is refused before anything is sent."""
    code, _, err = _run(["simulate", "--live", "--wait"], capsys)
    assert code == 2 and "--wait" in err and err.count("\n") == 1


def test_up_names_the_setting_of_a_remote_service_it_cannot_reach(offline, monkeypatch, capsys):
    """`up` starts local services only; a remote one that does not answer is named with its setting."""
    monkeypatch.setenv("EVMON_KAFKA_BOOTSTRAP", "192.0.2.1:9092")  # TEST-NET-1: never routed
    code, out, err = _run(["up", "--detach"], capsys)
    assert code == 2
    assert err.endswith("error: cannot reach kafka at 192.0.2.1:9092 (EVMON_KAFKA_BOOTSTRAP), and it is not local, "
                        "so it cannot be started here\n"), err


def test_a_database_error_that_is_not_a_connection_error_is_not_called_unreachable():
    """A missing column is a bug or a schema to apply, not a server to look for."""
    import sqlalchemy as sa

    from evmonitor.errors import TransientError

    settings = Settings(_env_file=None)
    missing = sa.exc.ProgrammingError("SELECT connector_id", {}, Exception('column "connector_id" does not exist'))
    try:
        raise TransientError("postgresql unavailable: column does not exist") from missing
    except TransientError as exc:
        assert explain_unreachable(exc, settings) is None


def test_require_leaves_a_unix_socket_url_to_the_driver(offline):
    """`postgresql:///db?host=/run/postgresql` has no TCP port to probe: no false 'cannot reach'."""
    from evmonitor.cli_support import Unreachable, require

    require(Settings(_env_file=None, database_url="postgresql+psycopg2:///x?host=/nonexistent"), "postgres")
    with pytest.raises(Unreachable, match="EVMON_DATABASE_URL"):
        require(load_settings(), "postgres")


def test_a_command_added_without_a_panel_joins_the_operators_not_a_panel_above_it():
    """Commands other branches add with a bare `@app.command()` land in Operator, never in Typer's first panel."""
    from evmonitor.cli_support import OrderedGroup

    demo = typer.Typer(cls=OrderedGroup, rich_markup_mode="markdown")
    demo.command("bridge", rich_help_panel=ROLES)(lambda: None)
    demo.command("notifications")(lambda: None)
    demo.command("up", rich_help_panel=OPERATOR)(lambda: None)
    text = CliRunner().invoke(demo, ["--help"], env={"COLUMNS": "200"}).output
    assert "─ Commands " not in text
    assert text.index(f"─ {OPERATOR} ") < text.index("│ up ") < text.index("│ notifications ") < text.index(f"─ {ROLES} ")
