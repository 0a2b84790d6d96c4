"""A daily report as one self-contained HTML page (charts inlined as base64 PNG, no external
request of any kind) and as CSV (one row per station).

Station names, operators, cities, error infos come from producers and are stored as sent: every
one of them is escaped here (`html.escape`, quotes included, also in attributes) and neutralised
in CSV (`evmonitor.csvsafe`); only text we write ourselves (`&nbsp;` in dates, tags) is markup."""

from __future__ import annotations

import base64
import io
from decimal import Decimal
from html import escape

from evmonitor.csvsafe import csv_row, csv_writer
from evmonitor.reports.charts import CHARTS, png
from evmonitor.reports.coverage import NO_DATA
from evmonitor.reports.model import AlertLine, DailyReport, PortDay, StationDay

__all__ = ["CSV_COLUMNS", "render_csv", "render_html"]

CSV_COLUMNS = [
    "day", "station_id", "station_name", "operator", "city", "connectors", "sessions_started",
    "sessions_completed", "energy_kwh", "revenue_eur", "occupied_connector_min", "utilization_pct",
    "availability_pct", "faults", "faulted_connector_min", "offline_connector_min", "coverage", "uptime_pct",
    "t_outage_min", "t_excluded_min",
]  # fmt: skip


def render_csv(report: DailyReport) -> str:
    """One row per station, with its uptime (the sum of its ports') and coverage: `full day`,
    `partial day` or `no data` (then the uptime cells are empty). A day with no station at all is
    one row saying `no data`. Names come from producers: every text cell goes through `csv_row`,
    so a name such as `=HYPERLINK(...)` arrives in a spreadsheet as text, not as a formula."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(CSV_COLUMNS)
    for s in sorted(report.stations, key=lambda s: s.station_id):
        line = report.station_uptime(s.station_id)
        measured = line is not None and not line.coverage.no_data
        state = NO_DATA if report.no_data or (line is not None and line.coverage.no_data) else (
            "" if line is None else "partial day" if line.coverage.partial else "full day")  # fmt: skip
        writer.writerow(csv_row([
            report.day.isoformat(), s.station_id, s.name, s.operator, s.city, s.connectors, s.sessions_started,
            s.sessions_completed, s.energy_kwh, s.revenue_eur, s.occupied_connector_min, s.utilization_pct,
            "" if s.availability_pct is None else s.availability_pct, s.faults, s.faulted_connector_min,
            s.offline_connector_min, state, line.uptime_pct if measured and line.uptime_pct is not None else "",
            line.uptime.outage_min if measured else "", line.uptime.excluded_min if measured else "",
        ]))  # fmt: skip
    if not report.stations:
        writer.writerow(csv_row([report.day.isoformat(), *[""] * 15, NO_DATA, "", "", ""]))
    return out.getvalue()


# --- HTML -----------------------------------------------------------------------------------------

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:1040px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;border-bottom:2px solid #e3e6eb;padding-bottom:4px}
.sub{color:#5c6472;margin:0 0 18px;font-size:14px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}
.card{border:1px solid #e3e6eb;border-radius:8px;padding:12px 14px}
.card .v{font-size:24px;font-weight:600}.card .l{font-size:13px;color:#5c6472}.card .n{font-size:12px;color:#8a8f98;margin-top:2px}
.bad .v{color:#c8402f}.ok .v{color:#3a9d5d}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 8px}
th,td{padding:5px 8px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#f7f8fa;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #eceef2}
figcaption{font-size:12px;color:#5c6472}
.tag{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;background:#eceef2}
.tag.open{background:#fbe3df;color:#a4301f}.tag.recovered,.tag.closed{background:#e1f3e7;color:#22703f}
.none{color:#5c6472;font-style:italic}
.defs{font-size:12px;color:#5c6472}.defs dt{font-weight:600;color:#1d2330;margin-top:6px}
.tag.nodata{background:#eceef2;color:#5c6472;font-style:italic}.tag.partial{background:#fff1d6;color:#8a5a00}
span.nodata{color:#5c6472;font-style:italic}.below{color:#c8402f;font-weight:600}.met{color:#22703f}
.banner{border-left:4px solid #e8871e;background:#fff8ec;padding:8px 12px;margin:10px 0;font-size:14px}
.banner.nodata{border-color:#8a8f98;background:#f4f5f7}
"""


def _n(value: int | Decimal | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}" if digits or isinstance(value, Decimal) else f"{value:,}"
    return f"{text}{unit}"


def _duration(line: AlertLine) -> str:
    minutes = line.duration_min
    if minutes is None:
        return "–"
    total = int(minutes)
    text = f"{total // 60} h {total % 60:02d} min" if total >= 60 else f"{total} min"
    return f"≥ {text}" if line.ongoing else text


def _t(moment, with_date: bool = False) -> str:
    if moment is None:
        return "–"
    return moment.strftime("%d&nbsp;%b&nbsp;%H:%M" if with_date else "%H:%M")


def _table(headers: list[tuple[str, bool]], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="none">{escape(empty)}</p>'
    head = "".join(f'<th class="num">{escape(h)}</th>' if num else f"<th>{escape(h)}</th>" for h, num in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>" for c, (_, num) in zip(r, headers))
        + "</tr>" for r in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _station_rows(stations: list[StationDay]) -> list[list[str]]:
    return [[
        f"{escape(s.name)}<br><small>{escape(s.station_id)}</small>", escape(s.operator), escape(s.city),
        _n(s.connectors), _n(s.sessions_started), _n(s.energy_kwh, 1), _n(s.revenue_eur, 2),
        _n(s.utilization_pct, 1, " %"), _n(s.availability_pct, 1, " %"), _n(s.faults),
    ] for s in stations]  # fmt: skip


STATION_HEADERS = [("Station", False), ("Operator", False), ("City", False), ("Connectors", True),
                   ("Sessions", True), ("kWh", True), ("EUR", True), ("Utilization", True),
                   ("Availability", True), ("Faults", True)]  # fmt: skip


def _tag(state: str) -> str:
    css = "open" if state.startswith("open") else state
    return f'<span class="tag {escape(css)}">{escape(state)}</span>'


def _fault_rows(lines: list[AlertLine]) -> list[list[str]]:
    return [[
        f"{escape(f.station_name)}<br><small>{escape(f.station_id)}</small>",
        "whole station" if f.connector_id == 0 else _n(f.connector_id), escape(f.error_code or ""),
        escape(f.info or ""), _t(f.since, True), _t(f.until, True), _duration(f), _tag(f.state),
    ] for f in lines]  # fmt: skip


def _card(label: str, value: str, note: str = "", css: str = "") -> str:
    note_html = f'<div class="n">{escape(note)}</div>' if note else ""
    return f'<div class="card {css}"><div class="l">{escape(label)}</div><div class="v">{value}</div>{note_html}</div>'


def _banner(report: DailyReport) -> str:
    cov = report.coverage
    if cov is None:
        return ""
    if cov.no_data:
        return ('<p class="banner nodata"><strong>No data</strong> for this day: no status change, session, station '
                "message or outage was recorded in it. Percentages are not computed (they are not 0 % and not 100 %).</p>")
    if cov.partial:
        return (f'<p class="banner"><strong>Partial day</strong>: the figures cover {escape(cov.span())} only: the day '
                "was not over, or no station was seen before, when this report was built.</p>")
    return ""


def _port_uptime_rows(lines: list[PortDay]) -> list[list[str]]:
    rows = []
    for p in lines:
        cov = p.coverage
        if cov.no_data:
            state, pct_cell = f'<span class="tag nodata">{NO_DATA}</span>', f'<span class="nodata">{NO_DATA}</span>'
        else:
            state = (f'<span class="tag partial">partial day</span><br><small>{escape(cov.span())}</small>'
                     if cov.partial else "full day")  # fmt: skip
            pct_cell = "–" if p.uptime_pct is None else f"{p.uptime_pct:.3f} %"
        measured = not cov.no_data
        rows.append([
            f"{escape(p.station_name)}<br><small>{escape(p.station_id)} · port {p.connector_id}</small>", state, pct_cell,
            _n(p.uptime.outage_min, 1) if measured else NO_DATA, _n(p.uptime.excluded_min, 1) if measured else NO_DATA,
        ])  # fmt: skip
    return rows


def render_html(report: DailyReport) -> str:
    t, rules = report.totals, report.rules
    nodata = report.no_data
    window = f"{rules.maintenance_window_h:g} hours"
    day = report.day.strftime("%A %d %B %Y")
    cards = "".join([
        _card("Sessions started", _n(t.sessions_started), f"{t.sessions_completed:,} completed this day"),
        _card("Energy delivered", _n(t.energy_kwh, 1, " kWh"), "by the sessions started this day"),
        _card("Revenue", "€ " + _n(t.revenue_eur, 2), "of the sessions started this day"),
        _card("Utilization", NO_DATA if nodata else _n(t.utilization_pct, 1, " %"), f"of {t.connectors:,} connectors at {t.stations:,} stations"),
        _card("Availability", NO_DATA if nodata or t.availability_pct is None else _n(t.availability_pct, 2, " %"),
              "connector time neither Faulted nor offline",
              "" if nodata or t.availability_pct is None else "ok" if t.availability_pct >= 99 else "bad"),
        _card("Faults open at day end", _n(t.open_faults), f"{t.recovered_faults:,} recovered during the day",
              "bad" if t.open_faults else "ok"),
        _card("Stations offline", _n(t.offline_stations),
              f"silent for {rules.offline_after_heartbeats} heartbeat intervals or more",
              "bad" if t.offline_stations else "ok"),
        _card("Stale sessions", _n(t.stale_sessions), f"no event for {rules.stale_after_min} min, not completed",
              "bad" if t.stale_sessions else "ok"),
    ])  # fmt: skip
    charts: dict[str, str] = {}
    for key, caption, draw, shown in CHARTS:
        if shown(report):
            data = base64.b64encode(png(draw(report))).decode("ascii")
            charts[key] = (f'<figure id="chart-{key}"><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{escape(caption)}</figcaption></figure>")  # fmt: skip
    if "availability_by_station" not in charts and report.stations:
        charts["availability_by_station"] = '<p class="none">Every station was available 100 % of the time.</p>'
    activity = charts.get("hourly_activity", "") + charts.get("hourly_utilization", "")
    station_charts = charts.get("utilization_by_station", "") + charts.get("availability_by_station", "")
    maintenance = _table(
        [("Rank", True), ("Station", False), (f"Faults in the {window} to day end", True), ("Connectors", True),
         ("Faults per connector", True), ("Flagged since", False)],
        [[_n(m.rank), f"{escape(m.station_name)}<br><small>{escape(m.station_id)}</small>", _n(m.faults),
          _n(m.connectors), _n(m.faults_per_connector, 2), _t(m.flagged_since, True)] for m in report.maintenance],
        "No station was flagged for maintenance.",
    )  # fmt: skip
    faults = _table(
        [("Station", False), ("Connector", True), ("Error code", False), ("Info", False), ("Since", False),
         ("Until", False), ("Duration", True), ("State", False)],
        _fault_rows(report.faults), "No connector faulted this day.",
    )  # fmt: skip
    offline = _table(
        [("Station", False), ("Last message", False), ("Spoke again", False), ("Silent for", True), ("State", False)],
        [[f"{escape(o.station_name)}<br><small>{escape(o.station_id)}</small>", _t(o.since, True), _t(o.until, True),
          _duration(o), _tag(o.state)] for o in report.offline],
        "Every station kept sending heartbeats.",
    )  # fmt: skip
    stale = _table(
        [("Station", False), ("Connector", True), ("Session", False), ("Last event", False), ("Closed", False),
         ("State", False)],
        [[f"{escape(s.station_name)}<br><small>{escape(s.station_id)}</small>", _n(s.connector_id),
          f"<small>{escape(s.session_id or '')}</small>", _t(s.since, True), _t(s.until, True), _tag(s.state)]
         for s in report.stale],
        "No session went stale.",
    )  # fmt: skip
    port_uptime = _table(
        [("Port", False), ("Coverage", False), ("Uptime", True), ("T_outage min", True), ("Excluded min", True)],
        _port_uptime_rows(report.port_lines), "No data: no port was seen by the end of this day.",
    )  # fmt: skip
    top = _table(STATION_HEADERS, _station_rows(report.top), "No stations.")
    bottom = _table(STATION_HEADERS, _station_rows(report.bottom), "No stations.")
    everyone = _table(STATION_HEADERS, _station_rows(sorted(report.stations, key=lambda s: s.station_id)), "No stations.")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report.network)} daily report {report.day.isoformat()}</title><style>{CSS}</style></head>
<body><main>
<h1>{escape(report.network)}: daily report for {escape(day)}</h1>
<p class="sub">Local day 00:00–24:00 {escape(report.timezone)}. All times below are {escape(report.timezone)}.
Generated {report.generated_at.strftime("%Y-%m-%d %H:%M %Z")}.</p>
{_banner(report)}
<section id="summary"><div class="cards">{cards}</div></section>
<h2>Needs attention: stations flagged for maintenance</h2>
<p class="sub">A station is flagged when it faulted {rules.maintenance_faults} or more times within {window};
ranked by faults per connector.</p>
{maintenance}
<h2>Activity through the day</h2>
{activity}
<h2>Stations</h2>
<h3>Top stations (highest utilization)</h3>{top}
<h3>Bottom stations (lowest utilization)</h3>{bottom}
{station_charts}
<h2 id="uptime">Uptime per port</h2>
<p class="sub">(T_total − (T_outage − T_excluded)) / T_total × 100 over the port's minutes of this day, from the outage
ledger; excluded minutes are outages whose cause lies outside the operator's control.</p>
{port_uptime}
<h2 id="faults">Connector faults</h2>
{charts.get("faults_by_code", "")}
{faults}
<h2>Offline stations</h2>
{offline}
<h2>Stale sessions</h2>
{stale}
<h2>All stations</h2>
{everyone}
<h2>How the numbers are made</h2>
<dl class="defs">
<dt>Sessions, energy, revenue</dt><dd>Sessions that started this day, with the energy (highest meter reading minus
the start reading) and cost they delivered, even if they ended after midnight.</dd>
<dt>Utilization</dt><dd>Minutes connectors were occupied by a session (start to end, or to the latest reading while
not completed) divided by connectors × minutes of the day.</dd>
<dt>Availability</dt><dd>Connector time that was neither Faulted nor offline, from the station's first message of the
day (or midnight) to the end of the day.</dd>
<dt>Faults</dt><dd>A connector's Faulted status until its next status; "recovered" if that came before midnight.
Times are when the charger reported them.</dd>
</dl>
<p class="sub">CSV with one row per station: alongside this file, same name, <code>.csv</code>.</p>
</main></body></html>
"""
