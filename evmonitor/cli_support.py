"""The edges of the `evmonitor` command line, kept out of the commands themselves.

    run_cli          runs the Typer app: a usage error or an error of ours is one line on stderr
                     (exit 2 for usage and settings, 1 for a service that cannot be reached),
                     never a traceback
    OrderedGroup     `--help` lists the operator's commands first, then the pipeline's roles,
                     then the tools that prove it
    require          one TCP probe per service a command needs: `cannot reach PostgreSQL at
                     127.0.0.1:5999 (EVMON_DATABASE_URL): connection refused`
    warn_if_exposed  a file that holds secrets and that others may read gets a warning naming
                     the `chmod 600` that fixes it (a warning, not a refusal: a secret mounted
                     read-only by a container runtime must still work)
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from typer.core import TyperGroup, TyperOption

from evmonitor.config import Settings
from evmonitor.errors import ConfigError, EvmonitorError

__all__ = [
    "OPERATOR",
    "PANELS",
    "PROVING",
    "ROLES",
    "SERVICES",
    "OrderedGroup",
    "Unreachable",
    "cli_version",
    "explain_unreachable",
    "require",
    "run_cli",
    "secret_env_files",
    "service_address",
    "warn_if_exposed",
]

OPERATOR = "Operator"
ROLES = "Pipeline roles (what evmonitor up runs)"
PROVING = "Proving tools"
PANELS = (OPERATOR, ROLES, PROVING)

# the order an operator meets them in `--help`; a command not listed follows those of its panel
COMMAND_ORDER = ("up", "down", "status", "stations", "station", "sessions", "alerts", "outages", "uptime", "report",
                 "chargers", "tokens", "api", "bridge", "worker", "beat", "gateway", "flower", "init",
                 "simulate", "demo", "chaos")  # fmt: skip


def cli_version() -> str:
    try:
        return version("evmonitor")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


class OrderedGroup(TyperGroup):
    """A Typer group whose help lists commands by panel (operator first), then by `COMMAND_ORDER`.

    A command registered without a panel joins the operator's: Typer prints its default panel
    ("Commands") before every other, which would put it above the operator's daily commands.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(self.commands)
        for command in self.commands.values():
            # unset is None or Typer's falsy DefaultPlaceholder
            if not isinstance(getattr(command, "rich_help_panel", None), str):
                command.rich_help_panel = OPERATOR  # type: ignore[attr-defined]

        def rank(item: tuple[int, str]) -> tuple[int, int, int]:
            index, name = item
            panel = getattr(self.commands[name], "rich_help_panel", OPERATOR)
            order = COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER)
            return (PANELS.index(panel) if panel in PANELS else len(PANELS), order, index)

        return [name for _, name in sorted(enumerate(names), key=rank)]


def _flags_take_no_value() -> None:
    """Typer's rich help prints the type after every option, `<bool>` after a flag too: a flag takes no value."""
    original = TyperOption.display_type_rich
    if getattr(original, "_evmonitor", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich._evmonitor = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()


# --- services: where they are and which setting says so ---------------------------------------


@dataclass(frozen=True)
class Service:
    label: str
    setting: str
    value: Callable[[Settings], str]
    default_port: int


SERVICES: dict[str, Service] = {
    "postgres": Service("PostgreSQL", "EVMON_DATABASE_URL", lambda s: s.database_url, 5432),
    "admin": Service("PostgreSQL", "EVMON_ADMIN_DATABASE_URL", lambda s: s.admin_database_url, 5432),
    "kafka": Service("Kafka", "EVMON_KAFKA_BOOTSTRAP", lambda s: s.kafka_bootstrap, 9092),
    "redis": Service("Redis", "EVMON_BROKER_URL", lambda s: s.broker_url, 6379),
    "elasticsearch": Service("Elasticsearch", "EVMON_ELASTICSEARCH_URL", lambda s: s.elasticsearch_url, 9200),
}


class Unreachable(EvmonitorError):
    """A service a command needs does not answer (exit 1: nothing to change in the command itself)."""


def service_address(value: str, default_port: int) -> list[tuple[str, int]]:
    """(host, port) of a URL or of a comma-separated `host:port` list (Kafka's bootstrap)."""
    if "://" in value:
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = None
        return [(parts.hostname or "127.0.0.1", port or default_port)]
    found = []
    for item in value.split(","):
        host, _, port = item.strip().rpartition(":")
        found.append((host.strip("[]") or "127.0.0.1", int(port) if port.isdigit() else default_port))
    return found


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "no answer (timed out)"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return str(exc) or type(exc).__name__


def require(settings: Settings, *names: str, timeout_s: float = 3.0) -> None:
    """Raise `Unreachable`, naming the setting, unless every service in `names` accepts a TCP connection.

    Cheap (one connect each) and before any driver gets to retry for tens of seconds; a service
    that accepts the connection but then refuses (a password, a missing database) is the
    driver's to report, through `explain_unreachable`.
    """
    for name in names:
        service = SERVICES[name]
        value = service.value(settings)
        if "://" in value and (urlsplit(value).hostname is None or "host=" in urlsplit(value).query):
            continue  # a Unix socket (postgresql:///db?host=/run/postgresql): the driver knows best
        addresses = service_address(value, service.default_port)
        failure: BaseException | None = None
        for host, port in addresses:
            try:
                with socket.create_connection((host, port), timeout=timeout_s):
                    failure = None
                    break
            except OSError as exc:
                failure = exc
        if failure is not None:
            where = ",".join(f"{h}:{p}" for h, p in addresses)
            raise Unreachable(f"cannot reach {service.label} at {where} ({service.setting}): {_reason(failure)}")


_SERVICE_OF_MODULE = (("psycopg2", "postgres"), ("sqlalchemy", "postgres"), ("kafka", "kafka"), ("redis", "redis"),
                      ("kombu", "redis"), ("elastic", "elasticsearch"), ("evmonitor.storage.postgres", "postgres"),
                      ("evmonitor.storage.kafka", "kafka"), ("evmonitor.storage.search", "elasticsearch"))  # fmt: skip
# what drivers say when the server is not there (never "unavailable": ours says it of any SQL error)
_CONNECTION_WORDS = ("connection to server", "could not connect", "connection refused", "timed out", "timeout expired",
                     "unable to bootstrap", "nobrokersavailable", "no brokers", "could not translate host name",
                     "name or service not known", "connection reset", "server closed the connection",
                     "error connecting", "connectionerror", "failed to establish a new connection")  # fmt: skip


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain_unreachable(exc: BaseException, settings: Settings | None) -> str | None:
    """One line for a driver's connection error (`cannot reach Kafka at ... (EVMON_KAFKA_BOOTSTRAP): ...`), else None."""
    chain = list(_chain(exc))
    service = None
    for link in chain:
        module = type(link).__module__
        service = next((name for prefix, name in _SERVICE_OF_MODULE if module.startswith(prefix)), None)
        if service:
            break
    text = " ".join(f"{type(link).__name__} {link}" for link in chain).lower()
    if service is None or not any(word in text for word in _CONNECTION_WORDS):
        return None
    detail = next((str(link).strip().splitlines()[0] for link in reversed(chain) if str(link).strip()), type(exc).__name__)
    if "refused" in text:
        detail = "connection refused"
    if settings is None:
        return f"cannot reach {SERVICES[service].label} ({SERVICES[service].setting}): {detail}"
    if service == "postgres":
        # the admin URL (`init`, `up`, `demo`) and the application's URL may name different servers
        match = re.search(r'at "([^"]+)", port (\d+)', " ".join(str(link) for link in chain))
        if match and (match.group(1), int(match.group(2))) in service_address(settings.admin_database_url, 5432) \
                and (match.group(1), int(match.group(2))) not in service_address(settings.database_url, 5432):  # fmt: skip
            service = "admin"
    spec = SERVICES[service]
    where = ",".join(f"{h}:{p}" for h, p in service_address(spec.value(settings), spec.default_port))
    return f"cannot reach {spec.label} at {where} ({spec.setting}): {detail}"


# --- files that hold secrets ------------------------------------------------------------------


def warn_if_exposed(path: Path, say: Callable[[str], None], what: str = "secrets") -> bool:
    """Warn (via `say`) if `path` exists and its group or others may read it; return whether it did."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if not stat.S_ISREG(mode) or not mode & 0o077:
        return False
    say(f"warning: {path} holds {what} and others may read it (mode {stat.S_IMODE(mode):04o}): chmod 600 {path}")
    return True


# --- running the app --------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run_cli(app: typer.Typer, settings: Callable[[], Settings], args: list[str] | None = None) -> int:
    """Run `app` and return the exit code; every error an operator can meet is one line on stderr.

    Usage errors (a bad option, a number out of its range) exit 2, as click's do, but as one
    line instead of a framed box; `ConfigError` exits 2; `Unreachable`, another error of ours or
    a driver's connection error exits 1. Anything else is a bug and keeps its traceback.
    """
    try:  # Typer >= 0.2x carries its own click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    except ImportError:  # pragma: no cover - older Typer on click itself
        from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    def err(text: str) -> None:
        # our own errors may carry lines on purpose (a log's tail under "exited at start")
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()

    try:
        result = app(args=args, standalone_mode=False, prog_name="evmonitor")
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except NoArgsIsHelpError:
        return 2  # the help was printed already
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        err(f"error: {_one_line(exc.format_message())}{where}")
        return 2
    except ClickException as exc:
        err(f"error: {_one_line(exc.format_message())}")
        return exc.exit_code
    except typer.Abort:
        err("aborted")
        return 130
    except ConfigError as exc:
        err(f"error: {exc}")
        return 2
    except EvmonitorError as exc:
        line = explain_unreachable(exc, _quiet(settings)) if not isinstance(exc, Unreachable) else None
        err(f"error: {line or exc}")
        return 1
    except Exception as exc:
        line = explain_unreachable(exc, _quiet(settings))
        if line is None:
            raise
        err(f"error: {line}")
        return 1


def _quiet(settings: Callable[[], Settings]) -> Settings | None:
    try:
        return settings()
    except Exception:  # noqa: BLE001 - only to name an address in an error line
        return None


def secret_env_files(cwd: Path | None = None) -> list[Path]:
    """The files evmonitor reads settings (and so passwords) from: `.env` of the current directory."""
    return [Path(cwd or os.getcwd()) / ".env"]
