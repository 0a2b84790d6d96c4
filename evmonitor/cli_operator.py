"""The operator's commands: `api`, `tokens`, `stations`, `station`, `sessions`, `alerts`.

They read through `evmonitor.api.queries`, the module the REST API uses, so the command line
and the API never disagree. Tables go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from evmonitor.cli_support import OPERATOR, ROLES, Unreachable, explain_unreachable, require
from evmonitor.config import Settings, load_settings
from evmonitor.errors import ConfigError

__all__ = ["register"]

out = Console()
err = Console(stderr=True)
tokens_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from evmonitor.storage.postgres import create_engine

    return create_engine(settings.sqlalchemy_url, connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"})


def _clock(settings: Settings) -> tuple[datetime, datetime, datetime]:
    now = datetime.now(timezone.utc)
    day_start = now.astimezone(settings.zone).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)
    return now, day_start, now - settings.offline_after


def _read(settings: Settings, fn, **kwargs: Any) -> Any:  # type: ignore[no-untyped-def]
    from evmonitor.errors import TransientError
    from evmonitor.storage.postgres import translate_errors

    require(settings, "postgres")
    engine = _engine(settings)
    try:
        with translate_errors(), engine.begin() as conn:
            return fn(conn, **kwargs)
    except TransientError as exc:
        raise Unreachable(explain_unreachable(exc, settings) or f"PostgreSQL (EVMON_DATABASE_URL): {exc}") from None
    finally:
        engine.dispose()


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, default=lambda v: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else str(v),
                          indent=2))  # fmt: skip


def _t(ts: datetime | None) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%SZ")


def api(listen: Optional[str] = typer.Option(None, help="HOST:PORT (default EVMON_API_LISTEN, 127.0.0.1:8000)."),
        log_level: str = typer.Option("info", help="uvicorn log level.")) -> None:  # fmt: skip
    """Run the REST API, the live operator page and /metrics (uvicorn)."""
    import uvicorn

    from evmonitor.api import create_api

    settings = load_settings(**({"api_listen": listen} if listen else {}))
    host, _, port = settings.api_listen.rpartition(":")
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"--listen / EVMON_API_LISTEN={settings.api_listen!r}: the port must be 1..65535")
    err.print(f"api: http://{host}:{port}/  (docs /docs, metrics /metrics)")
    uvicorn.run(create_api(settings), host=host, port=int(port), log_level=log_level, access_log=False)


@tokens_app.command("create")
def tokens_create(name: str = typer.Option(..., "--name", help="Who or what uses it (shown in lists and logs)."),
                  scope: str = typer.Option("read", "--scope", help="read, or operate (also acknowledge and resolve alerts)."),
                  ) -> None:  # fmt: skip
    """Create a token and print it once; only its SHA-256 is stored."""
    from evmonitor.api import queries

    if scope not in ("read", "operate"):
        raise ConfigError(f"--scope must be read or operate, not {scope!r}")
    if not name.strip() or len(name) > 200:
        raise ConfigError("--name must be 1 to 200 characters")
    row, secret = _read(load_settings(), queries.create_token, name=name.strip(), scope=scope)
    err.print(f"token {row['id']} '{row['name']}' scope {row['scope']}; it is shown only now:")
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List tokens (never their secrets)."""
    from evmonitor.api import queries

    rows = _read(load_settings(), queries.list_tokens)
    if as_json:
        return _json(rows)
    table = Table()
    for col in ("id", "name", "scope", "prefix", "created", "last used", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["scope"], r["prefix"] + "…", _t(r["created_at"]), _t(r["last_used_at"]),
                      _t(r["revoked_at"]))  # fmt: skip
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token: str = typer.Argument(..., help="The token's id or name.")) -> None:
    """Revoke a token by id or name: the API refuses it at once, and its browser sessions end."""
    from evmonitor.api import queries

    n = _read(load_settings(), queries.revoke_token, ident=token)
    if not n:
        raise ConfigError(f"no live token with id or name {token!r} (evmonitor tokens list)")
    err.print(f"revoked {n} token(s)")


def stations(status: Optional[str] = typer.Option(None, "--status", help="Faulted, Offline, Charging, Available, ..."),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:  # fmt: skip
    """List stations with their board status (as on the live page)."""
    from evmonitor.api import queries

    settings = load_settings()
    if status is not None and status not in queries.BOARD_STATUSES:
        raise ConfigError(f"--status must be one of {', '.join(queries.BOARD_STATUSES)}")
    _, _, offline_before = _clock(settings)
    rows, _ = _read(settings, queries.station_list, offline_before=offline_before, status=status, limit=100_000)
    if as_json:
        return _json(rows)
    table = Table()
    for col in ("station", "name", "operator", "city", "status", "connectors", "last seen"):
        table.add_column(col)
    for r in rows:
        conns = " ".join(f"{c['connector_id']}:{c['status']}" for c in r["connectors"])
        table.add_row(r["id"], r["name"], r["operator"] or "-", r["city"] or "-", r["status"], conns, _t(r["last_seen_at"]))
    out.print(table)


def station(station_id: str = typer.Argument(..., help="The station's id."),
            as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:  # fmt: skip
    """One station: connectors, open alerts, today's sessions and kWh."""
    from evmonitor.api import queries

    settings = load_settings()
    _, day_start, offline_before = _clock(settings)
    found = _read(settings, queries.station_detail, station_id=station_id, offline_before=offline_before, day_start=day_start)
    if found is None:
        raise ConfigError(f"no station {station_id!r} (evmonitor stations)")
    if as_json:
        return _json(found)
    out.print(f"[bold]{found['name']}[/] {found['id']}  {found['operator'] or ''} {found['city'] or ''}", highlight=False)
    out.print(f"status {found['status']}, last seen {_t(found['last_seen_at'])}; today {found['today']['sessions']} "
              f"sessions, {found['today']['energy_kwh']:.3f} kWh, EUR {found['today']['revenue_eur']:.2f}", highlight=False)  # fmt: skip
    table = Table(title="connectors")
    for col in ("#", "status", "error", "since"):
        table.add_column(col)
    for c in found["connectors"]:
        table.add_row(str(c["connector_id"]), c["status"], c["error_code"], _t(c["status_at"]))
    out.print(table)
    for a in found["open_alerts"]:
        out.print(f"alert {a['severity']} {a['kind']}: {a['message']}", highlight=False)


def sessions(active: bool = typer.Option(False, "--active", help="Only sessions charging now."),
             station_id: Optional[str] = typer.Option(None, "--station", help="Only this station's."),
             limit: int = typer.Option(50, "--limit", min=1, max=100_000, help="At most this many, newest first."),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:  # fmt: skip
    """List sessions, newest first."""
    from evmonitor.api import queries

    rows, _ = _read(load_settings(), queries.session_list, status="active" if active else None, station_id=station_id,
                    limit=limit)  # fmt: skip
    if as_json:
        return _json(rows)
    table = Table()
    for col in ("session", "station", "conn", "status", "start", "end", "kWh", "EUR"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"][:8], r["station_id"], str(r["connector_id"]), r["status"], _t(r["start_time"]),
                      _t(r["end_time"]), f"{r['energy_delivered_kwh'] or 0:.3f}", f"{r['cost_eur'] or 0:.2f}")  # fmt: skip
    out.print(table)


def alerts(open_only: bool = typer.Option(False, "--open", help="Only open alerts."),
           limit: int = typer.Option(50, "--limit", min=1, max=100_000, help="At most this many, newest first."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:  # fmt: skip
    """List alerts, newest first."""
    from evmonitor.api import queries

    rows, _ = _read(load_settings(), queries.alert_list, status="open" if open_only else None, limit=limit)
    if as_json:
        return _json(rows)
    table = Table()
    for col in ("since", "severity", "kind", "station", "status", "message"):
        table.add_column(col)
    for r in rows:
        table.add_row(_t(r["since"]), r["severity"], r["kind"], r["station_id"], r["status"], r["message"])
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the operator's commands to the `evmonitor` app, under their help panels."""
    for fn, name in ((stations, "stations"), (station, "station"), (sessions, "sessions"), (alerts, "alerts")):
        app.command(name, rich_help_panel=OPERATOR)(fn)
    app.command("api", rich_help_panel=ROLES)(api)
    app.add_typer(tokens_app, name="tokens", rich_help_panel=OPERATOR)
