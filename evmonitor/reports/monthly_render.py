"""A monthly report as one self-contained HTML page (charts inlined as base64 PNG) and as CSV
(one row per port). Names come from producers and are escaped (HTML) or neutralised (CSV,
`evmonitor.csvsafe`) exactly as in the daily report. A figure that was not measured reads
"no data"; a month not over yet, or a port first seen inside it, says "partial month" and the
span covered."""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from decimal import Decimal
from html import escape

from evmonitor.csvsafe import csv_row, csv_writer
from evmonitor.reports.charts import png
from evmonitor.reports.coverage import NO_DATA
from evmonitor.reports.monthly import MonthlyReport, OutageLine, PortMonth
from evmonitor.reports.monthly_charts import MONTHLY_CHARTS
from evmonitor.reports.render import CSS, _card, _n, _table

__all__ = ["MONTHLY_CSV_COLUMNS", "render_monthly_csv", "render_monthly_html"]

MONTHLY_CSV_COLUMNS = [
    "month", "station_id", "station_name", "connector_id", "coverage", "covered_from", "covered_to", "t_total_min",
    "t_outage_min", "t_excluded_min", "uptime_pct", "outages", "outage_minutes_by_cause", "sessions",
    "failed_sessions", "energy_kwh", "peak_kw",
]  # fmt: skip


def _causes(outages: list[OutageLine]) -> str:
    """`equipment_failure 95.000 min (2); utility_interruption 45.000 min (1, excluded)`."""
    minutes: dict[str, Decimal] = defaultdict(Decimal)
    count: Counter[str] = Counter()
    excluded: set[str] = set()
    for o in outages:
        minutes[o.cause] += o.minutes_in_month
        count[o.cause] += 1
        if o.excluded:
            excluded.add(o.cause)
    return "; ".join(f"{c} {minutes[c]} min ({count[c]}{', excluded' if c in excluded else ''})" for c in sorted(minutes))


def render_monthly_csv(report: MonthlyReport) -> str:
    """One row per port. A port (or a month) without data has coverage `no data` and empty figures;
    with no port at all, one row says `no data` for the whole network."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(MONTHLY_CSV_COLUMNS)
    failed_known = report.failed_sessions_known
    for p in report.ports:
        cov = p.coverage
        measured = not cov.no_data
        u = p.uptime
        writer.writerow(csv_row([
            report.label, p.station_id, p.station_name, p.connector_id,
            "no data" if cov.no_data else ("partial month" if cov.partial else "full month"),
            cov.begin.isoformat() if cov.begin else "", cov.end.isoformat() if cov.end else "",
            u.total_min if measured else "", u.outage_min if measured else "", u.excluded_min if measured else "",
            p.uptime_pct if p.uptime_pct is not None else "", len(p.outages), _causes(p.outages), p.sessions,
            p.failed_sessions if failed_known else "", p.energy_kwh, "" if p.peak_kw is None else p.peak_kw,
        ]))  # fmt: skip
    if not report.ports:
        writer.writerow(csv_row([report.label, "", "", "", NO_DATA, *[""] * (len(MONTHLY_CSV_COLUMNS) - 5)]))
    return out.getvalue()


def _pct(value: Decimal | None) -> str:
    return NO_DATA if value is None else f"{value:.3f} %"


def _port_cell(p: PortMonth) -> str:
    return f'<div class="port">{escape(p.station_name)}<br><small>{escape(p.station_id)} · port {p.connector_id}</small></div>'


def _coverage_cell(p: PortMonth) -> str:
    cov = p.coverage
    if cov.no_data:
        return f'<span class="tag nodata">{NO_DATA}</span>'
    if cov.partial:
        return f'<span class="tag partial">partial month</span><br><small>{escape(cov.span())}</small>'
    return "full month"


def _uptime_cell(p: PortMonth, target: Decimal) -> str:
    if p.uptime_pct is None:
        return f'<span class="nodata">{NO_DATA}</span>'
    below = p.uptime_pct < target
    return f'<span class="{"below" if below else "met"}">{_pct(p.uptime_pct)}</span>' + (
        "<br><small>below target</small>" if below else "")  # fmt: skip


def _outages_cell(p: PortMonth) -> str:
    """One line per cause: `unknown: 2 outages, 88.4 min`, excluded causes tagged."""
    if not p.outages:
        return "–"
    lines = []
    for cause in sorted({o.cause for o in p.outages}):
        mine = [o for o in p.outages if o.cause == cause]
        minutes = sum((o.minutes_in_month for o in mine), Decimal(0))
        tag = ' <span class="tag excluded">excluded</span>' if mine[0].excluded else ""
        count = f"{len(mine)} outage{'s' if len(mine) > 1 else ''}"
        lines.append(f'<div class="cause">{escape(cause)}{tag}<br><small>{count} · {_n(minutes, 1)} min</small></div>')
    return "".join(lines)


MONTHLY_CSS = CSS + """
.tag.nodata{background:#eceef2;color:#5c6472;font-style:italic}.tag.partial{background:#fff1d6;color:#8a5a00}
.tag.excluded{background:#eceef2;color:#3d4350}.tag.counted{background:#fbe3df;color:#a4301f}
span.nodata{color:#5c6472;font-style:italic}.below{color:#c8402f;font-weight:600}.met{color:#22703f}
.banner{border-left:4px solid #e8871e;background:#fff8ec;padding:8px 12px;margin:10px 0;font-size:14px}
.banner.nodata{border-color:#8a8f98;background:#f4f5f7}
.tag{white-space:nowrap}.cause{font-size:12px;margin-bottom:3px}.cause small{color:#5c6472;white-space:nowrap}.port{min-width:200px}
"""


def _banner(report: MonthlyReport) -> str:
    cov = report.coverage
    if cov.no_data:
        return ('<p class="banner nodata"><strong>No data</strong> for this month: no status change, session, '
                "station message or outage was recorded in it. Uptime is not computed (it is not 0 % and not 100 %).</p>")
    if cov.partial:
        return (f'<p class="banner"><strong>Partial month</strong>: the figures cover {escape(cov.span())} '
                f"({escape(report.timezone)}) only: the month was not over, or no station was seen before, "
                "when this report was built.</p>")  # fmt: skip
    return ""


def render_monthly_html(report: MonthlyReport) -> str:
    t = report.totals
    month = report.month.strftime("%B %Y")
    nodata = report.coverage.no_data
    net_pct = None if nodata else t.uptime.uptime_pct
    cards = "".join([
        _card("Network uptime", _pct(net_pct), f"{t.ports:,} ports at {t.stations:,} stations; target {report.target_pct} %",
              "" if net_pct is None else ("ok" if net_pct >= report.target_pct else "bad")),
        _card("Ports below target", _n(t.ports_below_target), f"of {len([p for p in report.ports if p.uptime_pct is not None]):,} measured",
              "bad" if t.ports_below_target else "ok"),
        _card("Outage minutes", NO_DATA if nodata else _n(t.uptime.outage_min, 0),
              "" if nodata else f"{_n(t.uptime.excluded_min, 0)} excluded; {t.outages:,} outages"),
        _card("Counted against uptime", NO_DATA if nodata else _n(t.uptime.counted_min, 0, " min"), "T_outage − T_excluded"),
        _card("Sessions", _n(t.sessions), "started this month"),
        _card("Failed sessions", _n(t.failed_sessions) if report.failed_sessions_known else "not recorded",
              "ended with too little energy, or in a fault" if report.failed_sessions_known
              else "this database has no failed-session column yet"),
        _card("Energy delivered", _n(t.energy_kwh, 1, " kWh"), "by the sessions started this month"),
        _card("Peak power", NO_DATA if t.peak_kw is None else _n(Decimal(str(t.peak_kw)), 1, " kW"),
              "highest reading of one session"),
    ])  # fmt: skip
    charts: dict[str, str] = {}
    for key, caption, draw, shown in MONTHLY_CHARTS:
        if shown(report):
            data = base64.b64encode(png(draw(report))).decode("ascii")
            charts[key] = (f'<figure id="chart-{key}"><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{escape(caption)}</figcaption></figure>")  # fmt: skip
    failed = report.failed_sessions_known
    ports = _table(
        [("Port", False), ("Coverage", False), ("Uptime", True), ("T_total min", True), ("T_outage min", True),
         ("Excluded min", True), ("Outages by cause", False), ("Sessions", True), ("Failed", True), ("kWh", True),
         ("Peak kW", True)],
        [[_port_cell(p), _coverage_cell(p), _uptime_cell(p, report.target_pct),
          NO_DATA if p.coverage.no_data else _n(p.uptime.total_min, 0),
          NO_DATA if p.coverage.no_data else _n(p.uptime.outage_min, 1),
          NO_DATA if p.coverage.no_data else _n(p.uptime.excluded_min, 1), _outages_cell(p), _n(p.sessions),
          _n(p.failed_sessions) if failed else "–", _n(p.energy_kwh, 1),
          "–" if p.peak_kw is None else _n(Decimal(str(p.peak_kw)), 1)]
         for p in sorted(report.ports, key=lambda p: (p.station_id, p.connector_id))],
        "No data: no port was seen by the end of this month.",
    )  # fmt: skip
    outages = _table(
        [("Port", False), ("Started", False), ("Ended", False), ("Minutes in month", True), ("Shown by", False),
         ("Error code", False), ("Cause", False), ("Note", False)],
        [[f"{escape(o.station_id)} · port {o.connector_id}", o.started_at.strftime("%d&nbsp;%b&nbsp;%H:%M"),
          o.ended_at.strftime("%d&nbsp;%b&nbsp;%H:%M") if o.ended_at else '<span class="tag counted">still open</span>',
          _n(o.minutes_in_month, 1), escape(", ".join(o.signals)), escape(o.error_code or ""),
          f'{escape(o.cause)} <span class="tag {"excluded" if o.excluded else "counted"}">'
          f'{"excluded" if o.excluded else "counted"}</span>', escape(o.note or "")]
         for o in report.outages],
        "No outage this month." if not nodata else "No data.",
    )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report.network)} monthly report {report.label}</title><style>{MONTHLY_CSS}</style></head>
<body><main>
<h1>{escape(report.network)}: monthly report for {escape(month)}</h1>
<p class="sub">Local days of {escape(report.timezone)}, {report.month.isoformat()} 00:00 to the end of
{report.days[-1].day.isoformat() if report.days else ""}. Generated {report.generated_at.strftime("%Y-%m-%d %H:%M %Z")}.</p>
{_banner(report)}
<section id="summary"><div class="cards">{cards}</div></section>
<h2>Uptime</h2>
{charts.get("uptime_by_port", "")}
<h2 id="ports">Ports</h2>
<p class="sub">Uptime % = (T_total − (T_outage − T_excluded)) / T_total × 100 per port (23 CFR 680.116(b)); target
{report.target_pct} %. Minutes are the port's minutes in the month, from its station's first message if later.</p>
{ports}
<h2>Outages</h2>
{charts.get("daily_outage_minutes", "")}{charts.get("outage_minutes_by_cause", "")}
{outages}
<h2>How the numbers are made</h2>
<dl class="defs">
<dt>Outage</dt><dd>A port is out while it reports Faulted or Unavailable (connector 0: the whole station), or while
its station is offline after missed heartbeats; overlapping signals are one outage.</dd>
<dt>Excluded</dt><dd>Outage minutes whose cause, set by an operator, lies outside the operator's control:
{escape(", ".join(report.excluded_causes))}.</dd>
<dt>No data, partial month</dt><dd>"No data" when nothing at all was recorded for the month (or a port was not yet
seen): no percentage is given, neither 0 % nor 100 %. "Partial month" when the report was built before the month
ended, or a port was first seen during it; its figures cover the span shown.</dd>
<dt>Sessions, kWh, peak kW</dt><dd>Sessions that started this month on the port, the energy they delivered and the
highest power reading of any of them.{"" if failed else " Failed sessions are not recorded by this database yet."}</dd>
</dl>
<p class="sub">CSV with one row per port: alongside this file, same name, <code>.csv</code>.</p>
</main></body></html>
"""
