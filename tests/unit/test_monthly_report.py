"""Report honesty and the monthly report's pages: "no data" and "partial" in words, axes from 0.

That a rebuild gives the same bytes is checked on real data in tests/integration/test_monthly_report.py."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import matplotlib
import pytest

from evmonitor.reports import (
    MONTHLY_CSV_COLUMNS,
    DayOutage,
    MonthlyReport,
    MonthTotals,
    OutageLine,
    PortDay,
    PortMonth,
    PortUptime,
    coverage,
    render_csv,
    render_html,
    render_monthly_csv,
    render_monthly_html,
)
from evmonitor.reports.charts import CHARTS
from evmonitor.reports.monthly_charts import MONTHLY_CHARTS
from tests.unit.test_beat_reports import report as daily_report

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 10, 1, tzinfo=BERLIN).astimezone(timezone.utc)
T1 = datetime(2026, 11, 1, tzinfo=BERLIN).astimezone(timezone.utc)
LATE = datetime(2026, 10, 15, 12, tzinfo=BERLIN)
FULL = coverage("month", T0, T1, now=T1 + timedelta(hours=6), first_seen_at=T0 - timedelta(days=9), has_data=True, zone=BERLIN)
HOSTILE = '=HYPERLINK("http://x","y") <b>'


def port(station: str, connector: int, pct: str | None, outage: str = "0.000", excluded: str = "0.000", **kw) -> PortMonth:
    total = Decimal("44700.000")
    return PortMonth(station_id=station, station_name=kw.pop("name", f"Station {station}"), connector_id=connector,
                     coverage=kw.pop("cov", FULL), uptime=PortUptime(total, Decimal(outage), Decimal(excluded),
                                                                     None if pct is None else Decimal(pct)),
                     sessions=kw.pop("sessions", 3), failed_sessions=0, energy_kwh=Decimal("41.250"),
                     peak_kw=kw.pop("peak", 48.5), outages=kw.pop("outages", []))  # fmt: skip


def monthly() -> MonthlyReport:
    outage = OutageLine("outage:A:2:x", "A", 2, datetime(2026, 10, 10, 8, tzinfo=BERLIN), datetime(2026, 10, 10, 8, 45, tzinfo=BERLIN),
                        Decimal("45.000"), ("Faulted",), "PowerMeterFailure", "utility_interruption", True, "grid down")  # fmt: skip
    late = coverage("month", T0, T1, now=T1, first_seen_at=LATE, has_data=True, zone=BERLIN)
    ports = [port("A", 1, "99.732", "120.000"), port("A", 2, "99.866", "105.000", "45.000", outages=[outage]),
             port("B", 1, "100.000", name=HOSTILE, cov=late, peak=None, sessions=0),
             port("C", 1, "90.000", "4470.000")]  # fmt: skip
    days = [DayOutage(date(2026, 10, d), Decimal(10 * (d % 3)), Decimal(45 if d == 10 else 0), True) for d in range(1, 32)]
    totals = MonthTotals(stations=3, ports=4, uptime=PortUptime(Decimal("178800"), Decimal("4695"), Decimal("45"), Decimal("97.399")),
                         outages=1, sessions=9, failed_sessions=0, energy_kwh=Decimal("165.000"), peak_kw=48.5,
                         ports_below_target=1)  # fmt: skip
    return MonthlyReport(network="Test Net", month=date(2026, 10, 1), timezone="Europe/Berlin",
                         generated_at=datetime(2026, 11, 1, 6, tzinfo=BERLIN), coverage=FULL, totals=totals, ports=ports,
                         days=days, target_pct=Decimal(97), excluded_causes=("utility_interruption",),
                         failed_sessions_known=False)  # fmt: skip


def nothing() -> MonthlyReport:
    r = monthly()
    empty = coverage("month", T0, T1, now=T1, first_seen_at=None, has_data=False, zone=BERLIN)
    days = [replace(d, counted_min=Decimal(0), excluded_min=Decimal(0), covered=False) for d in r.days]
    totals = MonthTotals(stations=0, ports=0, uptime=PortUptime(Decimal(0), Decimal(0), Decimal(0), None), outages=0,
                         sessions=0, failed_sessions=0, energy_kwh=Decimal(0), peak_kw=None, ports_below_target=0)  # fmt: skip
    return replace(r, coverage=empty, ports=[], days=days, totals=totals)


@pytest.fixture(scope="module")
def html() -> str:
    return render_monthly_html(monthly())  # three charts: once per module


def test_coverage_says_no_data_partial_or_full_in_words():
    """No record -> 'no data'; built before the end or first seen inside -> 'partial ...' with the span; else full."""
    assert coverage("day", T0, T1, now=T1, first_seen_at=T0, has_data=False, zone=BERLIN).label() == "no data"
    assert coverage("day", T0, T1, now=T0, first_seen_at=T0, has_data=True, zone=BERLIN).no_data  # nothing covered yet
    early = coverage("day", T0, T1, now=T0 + timedelta(hours=14, minutes=30), first_seen_at=T0, has_data=True, zone=BERLIN)
    assert early.label() == "partial day (2026-10-01 00:00 – 2026-10-01 14:30)"
    late = coverage("month", T0, T1, now=T1 + timedelta(days=1), first_seen_at=LATE, has_data=True, zone=BERLIN)
    assert late.label() == "partial month (2026-10-15 12:00 – 2026-10-31 24:00)"
    assert FULL.label() == "full month"


def axis_ticks(fig, axis: int) -> list[str]:
    """The tick labels a reader sees on the first axes' x (1) or y (2) axis, read from the chart as SVG."""
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as <text>, not as glyph paths
        fig.savefig(out, format="svg", metadata={"Date": None})
    svg = "{http://www.w3.org/2000/svg}"
    group = next(g for g in ET.fromstring(out.getvalue()).iter(f"{svg}g") if g.get("id") == f"matplotlib.axis_{axis}")
    return [t.text for g in group.iter(f"{svg}g") if (g.get("id") or "").startswith(("xtick_", "ytick_"))
            for t in g.iter(f"{svg}text")]  # fmt: skip


def test_every_percentage_axis_runs_from_zero():
    """Daily and monthly charts, as drawn (SVG): percentage axes start at 0; uptime and availability end at 100."""
    percentage_axes = {"hourly_utilization": 2, "utilization_by_station": 1, "availability_by_station": 1,
                       "uptime_by_port": 1, "daily_outage_minutes": 2, "outage_minutes_by_cause": 1}  # fmt: skip
    day, month = daily_report(), monthly()
    figures = {key: draw(day) for key, _, draw, _ in CHARTS if key in percentage_axes}
    figures |= {key: draw(month) for key, _, draw, _ in MONTHLY_CHARTS}
    ticks = {key: axis_ticks(figures[key], axis) for key, axis in percentage_axes.items()}
    assert all(t[0] == "0" for t in ticks.values()), ticks
    assert ticks["availability_by_station"][-1] == ticks["uptime_by_port"][-1] == "100"


def test_the_monthly_csv_has_a_row_per_port_and_says_no_data_and_partial(html):
    """Columns as documented; partial month with its span; causes with minutes; names inert; an empty month is one 'no data' row."""
    rows = list(csv.DictReader(io.StringIO(render_monthly_csv(monthly()))))
    assert list(rows[0]) == MONTHLY_CSV_COLUMNS and len(rows) == 4
    a2, b1 = rows[1], rows[2]
    assert (a2["uptime_pct"], a2["t_excluded_min"], a2["failed_sessions"]) == ("99.866", "45.000", "")  # failed: not recorded
    assert a2["outage_minutes_by_cause"] == "utility_interruption 45.000 min (1, excluded)"
    assert (b1["coverage"], b1["covered_from"], b1["peak_kw"]) == ("partial month", "2026-10-15T12:00:00+02:00", "")
    assert b1["station_name"] == "'" + HOSTILE
    [empty] = list(csv.DictReader(io.StringIO(render_monthly_csv(nothing()))))
    assert (empty["month"], empty["coverage"], empty["uptime_pct"], empty["t_total_min"]) == ("2026-10", "no data", "", "")


def test_the_monthly_html_states_figures_and_escapes_names(html):
    """Port lines, the below-target port, the exclusion and the partial span are on the page; names are escaped."""
    for needle in ("99.866 %", "below target", "utility_interruption", "excluded", "grid down", "partial month",
                   "2026-10-15 12:00 – 2026-10-31 24:00", "not recorded", "October 2026", "97.399 %"):
        assert needle in html, needle
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert html.count("data:image/png;base64,") == 3


def test_a_month_or_day_without_data_never_shows_a_percentage():
    """'No data' instead of 0 % or 100 %: banner, cards and CSV; no chart drawn from nothing."""
    page = render_monthly_html(nothing())
    assert "<strong>No data</strong>" in page and "Network uptime</div><div class=\"v\">no data" in page
    assert "data:image/png" not in page and not re.search(r'class="v">[^<]*%', page)
    day = daily_report()
    empty_cov = coverage("day", T0, T0 + timedelta(days=1), now=T1, first_seen_at=None, has_data=False, zone=BERLIN)
    empty = replace(day, stations=[], faults=[], maintenance=[], coverage=empty_cov, ports=[])
    page = render_html(empty)
    assert "<strong>No data</strong>" in page and "Availability</div><div class=\"v\">no data" in page
    assert not re.search(r'class="v">[^<]*%', page)
    assert "chart-hourly" not in page
    [row] = list(csv.DictReader(io.StringIO(render_csv(empty))))
    assert (row["coverage"], row["uptime_pct"], row["station_id"]) == ("no data", "", "")


def test_the_daily_report_has_a_per_port_uptime_line_and_says_partial_day():
    """Per port: uptime, T_outage, excluded; a day built at 14:30 says 'partial day' with its span, in HTML and CSV."""
    day = daily_report()
    day = replace(day, hours=[], faults=[], stations=[replace(s, availability_pct=None) for s in day.stations])  # one chart: fast
    t0 = datetime(2026, 11, 23, tzinfo=BERLIN).astimezone(timezone.utc)
    part = coverage("day", t0, t0 + timedelta(days=1), now=t0 + timedelta(hours=14, minutes=30), first_seen_at=t0,
                    has_data=True, zone=BERLIN)  # fmt: skip
    figures = PortUptime(Decimal("870.000"), Decimal("30.000"), Decimal("10.000"), Decimal("97.701"))
    ports = [PortDay("ST-03", "Station <3> & Co", 0, part, figures), PortDay("ST-03", "Station <3> & Co", 2, part, figures)]
    page = render_html(replace(day, coverage=part, ports=ports))
    assert "<strong>Partial day</strong>: the figures cover 2026-11-23 00:00 – 2026-11-23 14:30" in page
    uptime = page.split('id="uptime"')[1].split("</table>")[0]
    assert "port 2" in uptime and "97.701 %" in uptime and "30.0" in uptime and "port 0" not in uptime
    rows = {r["station_id"]: r for r in csv.DictReader(io.StringIO(render_csv(replace(day, coverage=part, ports=ports))))}
    assert (rows["ST-03"]["coverage"], rows["ST-03"]["uptime_pct"], rows["ST-03"]["t_excluded_min"]) == (
        "partial day", "97.701", "10.000")
    assert rows["ST-01"]["coverage"] == "" and rows["ST-01"]["uptime_pct"] == ""  # no uptime line given: nothing claimed
