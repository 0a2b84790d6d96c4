"""The daily report's pages: self-contained HTML an operator can read, CSV a spreadsheet can."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from evmonitor.reports import CSV_COLUMNS, AlertLine, DailyReport, HourPoint, MaintenanceLine, StationDay, Totals
from evmonitor.reports import render_csv, render_html
from evmonitor.reports.model import pct, top_and_bottom

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 23)
MIDNIGHT = datetime(2026, 11, 23, tzinfo=BERLIN)


def station(i: int, util: str, kwh: str = "10.000", availability: str | None = "100.00") -> StationDay:
    return StationDay(
        station_id=f"ST-{i:02d}", name=f"Station <{i}> & Co", operator="VoltWay", city="Berlin", connectors=2,
        sessions_started=i, sessions_completed=i, energy_kwh=Decimal(kwh), revenue_eur=Decimal("5.90"),
        occupied_connector_min=Decimal("60.000"), utilization_pct=Decimal(util),
        availability_pct=None if availability is None else Decimal(availability), faults=1 if i == 3 else 0,
    )  # fmt: skip


def report() -> DailyReport:
    stations = [station(i, f"{i * 3}.50", availability="91.30" if i == 3 else "100.00") for i in range(1, 9)]
    hours = [HourPoint(MIDNIGHT + timedelta(hours=h), h % 3, Decimal(h), Decimal(h) / 2, Decimal(h % 5))
             for h in range(24)]  # fmt: skip
    fault = AlertLine(kind="connector_fault", station_id="ST-03", station_name="Station <3> & Co",
                      since=MIDNIGHT + timedelta(hours=9), until=MIDNIGHT + timedelta(hours=10, minutes=15),
                      state="recovered", connector_id=2, error_code="GroundFailure", info="RCD tripped")  # fmt: skip
    still = AlertLine(kind="connector_fault", station_id="ST-05", station_name="Station <5> & Co",
                      since=MIDNIGHT + timedelta(hours=22), until=None, state="open at day end", connector_id=1,
                      error_code="OverVoltage", until_day_end=MIDNIGHT + timedelta(days=1))  # fmt: skip
    totals = Totals(stations=8, connectors=16, sessions_started=36, sessions_completed=36,
                    energy_kwh=Decimal("80.000"), revenue_eur=Decimal("47.20"), utilization_pct=Decimal("13.50"),
                    availability_pct=Decimal("98.91"), open_faults=1, recovered_faults=1, offline_stations=0,
                    stale_sessions=0)  # fmt: skip
    return DailyReport(network="Test Net", day=DAY, timezone="Europe/Berlin", generated_at=MIDNIGHT + timedelta(days=1, hours=6),
                       totals=totals, stations=stations, hours=hours, faults=[fault, still],
                       maintenance=[MaintenanceLine(1, "ST-03", "Station <3> & Co", 3, 2, Decimal("1.50"),
                                                    MIDNIGHT + timedelta(hours=9))])  # fmt: skip


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(report())  # drawing five charts takes a second or two: once per module


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("link", "script", "iframe"):
            self.scripts += 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_data(self, data):
        self.text.append(data)


def test_the_html_is_self_contained_with_charts_as_inline_png(html):
    """Every image is a base64 PNG data URI; no script, stylesheet link or external URL."""
    page = _Page()
    page.feed(html)
    assert len(page.images) == 5
    assert all(src.startswith("data:image/png;base64,iVBORw0KGgo") for src in page.images)
    assert page.scripts == 0 and page.links == []
    assert not re.search(r"(src|href)=\"https?://", html)


def test_the_html_states_totals_faults_and_escapes_names(html):
    """Totals, both faults with their state and the maintenance ranking are on the page; names are escaped."""
    page = _Page()
    page.feed(html)
    text = " ".join(page.text)
    for needle in ("36", "80.0 kWh", "€ 47.20", "13.5 %", "98.91 %", "GroundFailure", "OverVoltage", "recovered",
                   "open at day end", "1 h 15 min", "≥ 2 h 00 min", "Monday 23 November 2026", "Europe/Berlin"):
        assert needle in text, needle
    assert "Station <3> & Co" in text and "Station <3>" not in html


def test_top_and_bottom_never_share_a_station():
    """With few stations the lists split them; best first, worst last."""
    ranked = report().ranked
    assert [s.station_id for s in ranked[:2]] == ["ST-08", "ST-07"]
    top, bottom = top_and_bottom(ranked[:3])
    assert len(top) == 2 and len(bottom) == 1 and not set(map(id, top)) & set(map(id, bottom))
    assert top_and_bottom([]) == ([], [])


def test_the_csv_has_one_row_per_station_with_exact_numbers():
    """Columns as documented; Decimals written exactly; an unmeasured availability is empty."""
    r = report()
    rows = list(csv.DictReader(io.StringIO(render_csv(r))))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == 8
    assert sum(Decimal(row["energy_kwh"]) for row in rows) == Decimal("80.000")
    assert rows[2]["availability_pct"] == "91.30" and rows[0]["day"] == "2026-11-23"


def test_pct_rounds_half_up_and_refuses_division_by_zero():
    """Percentages use two decimals, half up; a zero denominator gives None."""
    assert pct(1, 8) == Decimal("12.50") and pct(1, 3) == Decimal("33.33") and pct(1, 0) is None
