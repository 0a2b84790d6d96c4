"""Hostile names in the daily report: escaped in HTML, inert in CSV, harmless to the charts."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evmonitor.csvsafe import FORMULA_PREFIXES, csv_cell, csv_row, csv_writer
from evmonitor.reports import render_csv, render_html
from tests.unit.test_beat_reports import report

HYPERLINK = '=HYPERLINK("http://x","y")'
SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
# (station name, operator, city) of the eight stations of the report fixture
HOSTILE_NAMES = [
    (HYPERLINK, "VoltWay", "Berlin"),
    (SCRIPT, "+31 20 555 0000", "@Berlin"),
    (ATTRIBUTE, "-1+1", "\t=1+1"),
    ("'; DROP TABLE charging_stations; --", "\r=cmd|' /C calc'!A0", "Köln"),
    ("$$", r"$\foo{$", "a_b"),
    ("Ladepark & <Co>", "=1+1", "Berlin"),
    ("Normal station", "VoltWay", "Berlin"),
    ("-", "@", "="),
]


def hostile_report():
    r = report()
    stations = [replace(s, name=n, operator=o, city=c) for s, (n, o, c) in zip(r.stations, HOSTILE_NAMES)]
    stations[0] = replace(stations[0], revenue_eur=Decimal("-1.50"))  # a number we write: stays a number
    return replace(r, stations=stations)


@pytest.mark.parametrize(
    "value, expected",
    [(HYPERLINK, "'" + HYPERLINK), ("+31", "'+31"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), (SCRIPT, SCRIPT), ("Berlin", "Berlin"), ("", ""), (" =1", " =1"),
     (-3, -3), (Decimal("-1.50"), Decimal("-1.50")), (-0.5, -0.5), (None, None)],
)  # fmt: skip
def test_csv_cell_neutralises_formula_text_only(value, expected):
    """Text starting with = + - @ tab or CR gets a leading quote; other text and every number stay as they are."""
    assert csv_cell(value) == expected


@given(st.lists(st.text(max_size=20) | st.integers() | st.decimals(allow_nan=False, allow_infinity=False),
                min_size=1, max_size=6))  # fmt: skip
def test_a_csv_row_reads_back_as_sent_or_quoted_never_as_a_formula(cells):
    """Any row written through csv_row reads back as one row, each cell as sent or as sent after one quote."""
    out = io.StringIO()
    csv_writer(out).writerow(csv_row(cells))
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline=""), strict=True))
    assert len(rows) == 1 and len(rows[0]) == len(cells)  # whatever line breaks the cells hold
    for sent, read in zip(cells, rows[0]):
        assert read == str(sent) or (isinstance(sent, str) and read == "'" + sent)
        assert not (isinstance(sent, str) and read.startswith(FORMULA_PREFIXES))


def test_the_daily_csv_turns_hostile_names_into_text_and_keeps_numbers():
    """A station named =HYPERLINK(...) gives a cell starting with a quote; markup is kept as sent; numbers stay."""
    rows = list(csv.DictReader(io.StringIO(render_csv(hostile_report()), newline="")))
    assert len(rows) == 8  # the CR inside a name did not break its row
    cells = [(row["station_name"], row["operator"], row["city"]) for row in rows]  # sorted by station id
    assert cells[0][0] == "'" + HYPERLINK
    assert cells[1] == (SCRIPT, "'+31 20 555 0000", "'@Berlin")
    assert cells[2] == (ATTRIBUTE, "'-1+1", "'\t=1+1")
    assert cells[3] == ("'; DROP TABLE charging_stations; --", "'\r=cmd|' /C calc'!A0", "Köln")
    assert cells[7] == ("'-", "'@", "'=")
    for row in rows:
        assert not any(cell.startswith(FORMULA_PREFIXES) for key, cell in row.items() if key != "revenue_eur")
    assert rows[0]["revenue_eur"] == "-1.50"  # ours, a number


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images = 0
        self.handlers: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.images += tag == "img"
        self.handlers += [name for name, _ in attrs if name.startswith("on")]

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def page() -> tuple[str, _Page]:
    html = render_html(hostile_report())  # also draws the charts: a name such as "$$" must not stop them
    parsed = _Page()
    parsed.feed(html)
    return html, parsed


def test_the_daily_html_shows_hostile_names_as_text(page):
    """Markup in names is escaped: no script tag or event handler appears, and the page shows each name as sent."""
    html, parsed = page
    assert "script" not in parsed.tags and parsed.handlers == []
    assert parsed.images == 5  # the charts only: the attribute-breaking name made no image
    text = "".join(parsed.text)
    for name, operator, city in HOSTILE_NAMES:
        for value in (name, operator, city.replace("\r", "\n")):
            assert value.strip() in text, value
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and SCRIPT not in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
