"""The API's pure parts: CSV neutralisation, cursors, escaping in pages, the scrape config."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from evmonitor.csvsafe import csv_cell
from evmonitor.api.page import board_page, station_page
from evmonitor.api.deps import _iso_date, _rfc3339, earlier
from evmonitor.api.queries import PageCursor
from evmonitor.config import REPO_ROOT, Settings
from evmonitor.heartbeat import read_heartbeats

T = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
EVIL = '<script>alert("x")</script>&"\''


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_get_a_leading_quote(cell):
    """OWASP's rule: a cell starting with = + - @ tab or CR is prefixed with a single quote."""
    assert csv_cell(cell) == "'" + cell


@given(st.text().filter(lambda s: not s.startswith(("=", "+", "-", "@", "\t", "\r"))))
def test_other_cells_are_left_alone(cell):
    """Any other cell is written as it is."""
    assert csv_cell(cell) == cell


@given(st.one_of(st.text(max_size=30), st.integers()), st.text(max_size=30))
def test_a_cursor_gives_back_its_key(a, b):
    """Encoding then decoding a cursor returns the key it was made from."""
    assert PageCursor.decode(PageCursor.encode(a, b), 2) == [a, b]


@given(st.text(max_size=60))
def test_anything_that_is_not_our_cursor_is_a_value_error(text):
    """A forged or garbled cursor raises ValueError (the API answers 422), never anything else."""
    try:
        PageCursor.decode(text, 2)
    except ValueError:
        pass


def _board(name: str) -> dict:
    station = {"id": "ST-1", "name": name, "operator": EVIL, "city": "Köln", "status": "Faulted",
               "connectors": [{"connector_id": 1, "status": "Faulted", "error_code": "GroundFailure"}], "last_seen_at": T}
    alert = {"severity": "critical", "kind": "connector_fault", "station_id": "ST-1", "message": EVIL}
    return {"counters": {"sessions_running": 1, "sessions_done": 2, "energy_kwh": 3.0, "revenue_eur": 4.0},
            "stations_by_status": {"Faulted": 1}, "stations": [station], "open_alerts": [alert],
            "pipeline": {"last_write_at": T, "idle_s": 1.0, "sinks": [], "open_alerts_by_kind": {}}}  # fmt: skip


def test_the_board_escapes_every_text_and_shows_status_as_a_word():
    """Markup in a station's name, operator or an alert is shown as text; the status is a word."""
    html = board_page(_board(EVIL), EVIL)
    assert '<script>alert("x")' not in html.split("<script>\n(function")[0]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'data-station-id="ST-1" data-status="Faulted"' in html and ">Faulted</span>" in html


def test_the_station_page_escapes_every_text():
    """The station page escapes names, operators and messages too."""
    station = {**_board(EVIL)["stations"][0], "connectors": [{"connector_id": 1, "status": "Faulted",
               "error_code": "GroundFailure", "info": EVIL, "status_at": T}], "open_alerts": _board(EVIL)["open_alerts"],
               "today": {"sessions": 0, "energy_kwh": 0.0, "revenue_eur": 0.0}}  # fmt: skip
    assert "<script>" not in station_page(station, [], [], None)


def test_the_scrape_config_targets_the_default_api_address():
    """prometheus/prometheus.yml scrapes the API where `evmonitor up` starts it, with a bearer token."""
    config = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    api = next(j for j in config["scrape_configs"] if j["job_name"] == "evmonitor-api")
    assert api["static_configs"][0]["targets"] == [Settings(_env_file=None).api_listen]
    assert api["authorization"]["type"] == "Bearer"


def test_the_scrape_config_lists_the_ports_up_gives_each_process():
    """prometheus/prometheus.yml and `evmonitor up` agree: bridge, workers and gateway at EVMON_METRICS_PORT_BASE + n."""
    from evmonitor.stack.supervisor import METRICS_OFFSETS

    config = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    listed = {t for job in config["scrape_configs"] if job["job_name"] != "evmonitor-api"
              for c in job["static_configs"] for t in c["targets"]}  # fmt: skip
    base = Settings(_env_file=None).metrics_port_base
    assert listed == {f"127.0.0.1:{base + n}" for n in METRICS_OFFSETS.values()}


@pytest.mark.parametrize("text", ["2026-01-31T08:00:00Z", "2026-01-31T08:00:00.25+01:00", "2026-01-31 08:00"])
def test_times_in_rfc_3339_pass(text):
    assert _rfc3339(text) == text


@pytest.mark.parametrize("text", ["0", "0.5", "1700000000", "yesterday", "2026-01-31T8:00"])
def test_anything_else_is_refused_before_pydantic_reads_it_as_seconds_since_1970(text):
    with pytest.raises(ValueError, match="RFC 3339"):
        _rfc3339(text)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        _iso_date(text)


def test_a_default_window_before_year_one_is_clamped():
    assert earlier(date(1, 1, 5), timedelta(days=30)) == date.min
    assert earlier(datetime(1, 1, 1, 3, tzinfo=timezone.utc), timedelta(hours=24)) == datetime.min.replace(tzinfo=timezone.utc)
    assert earlier(date(2026, 1, 31), timedelta(days=30)) == date(2026, 1, 1)


class _Redis:
    """The two calls read_heartbeats makes, over a dict (expired keys are simply absent)."""

    def __init__(self, keys: dict[bytes, bytes]) -> None:
        self.keys = keys

    def scan_iter(self, match: str, count: int):
        return [k for k in self.keys if k.decode().startswith(match.rstrip("*"))]

    def mget(self, keys):
        return [self.keys.get(k) for k in keys]


def test_heartbeats_are_read_per_role_with_what_they_said_and_their_age():
    now = time.time()
    found = read_heartbeats(_Redis({
        b"evmonitor:s1:heartbeat:bridge:host-a:11": json.dumps({"at": now - 3, "batches_in_flight": 2}).encode(),
        b"evmonitor:s1:heartbeat:beat:host-b:12": json.dumps({"at": now}).encode(),
        b"evmonitor:s2:heartbeat:gateway:host-c:13": json.dumps({"at": now}).encode(),  # another stack's
    }), "evmonitor:s1:")
    assert set(found) == {"bridge", "beat"}
    (bridge,) = found["bridge"]
    assert (bridge["host"], bridge["pid"], bridge["batches_in_flight"]) == ("host-a", 11, 2) and 2 <= bridge["age_s"] <= 5
