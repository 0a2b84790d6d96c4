"""The API's pure parts: CSV neutralisation, cursors, escaping in pages, the scrape config."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from evmonitor.csvsafe import csv_cell
from evmonitor.api.page import board_page, station_page
from evmonitor.api.queries import PageCursor
from evmonitor.config import REPO_ROOT, Settings

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
