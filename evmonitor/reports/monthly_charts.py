"""Charts of a monthly report as matplotlib `Figure`s (Agg canvas, no pyplot state); every
percentage axis runs from 0 to 100 and every colour is repeated in words (legend or label).
matplotlib is imported when a chart is drawn (see `evmonitor.reports.charts`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from evmonitor.reports.charts import GREEN, GREY, RED, station_label
from evmonitor.reports.monthly import MonthlyReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MONTHLY_CHARTS", "daily_outage_minutes", "outage_minutes_by_cause", "uptime_by_port"]

MAX_BARS = 30
LIGHT = "#b9bec7"


def _figure(height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(10.0, height), layout="constrained")


def uptime_by_port(report: MonthlyReport) -> Figure:
    """Measured ports, worst first (the worst MAX_BARS), with the target as a dashed line."""
    worst = report.worst_first[:MAX_BARS]
    fig = _figure(1.6 + 0.3 * max(len(worst), 1))
    ax = fig.add_subplot()
    ys = list(range(len(worst)))[::-1]
    target = float(report.target_pct)
    colors = [RED if p.uptime_pct < report.target_pct else GREEN for p in worst]
    ax.barh(ys, [float(p.uptime_pct) for p in worst], color=colors)
    ax.set_yticks(ys, [f"{station_label(p.station_name, p.station_id)} port {p.connector_id}" for p in worst], fontsize=8)
    for y, p in zip(ys, worst):  # the exact figure in a column right of the axis, which ends at 100 %
        mark = "below target" if p.uptime_pct < report.target_pct else ""
        ax.annotate(f"{p.uptime_pct:.3f} %  {mark}", (100, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=7, color=RED if mark else GREY, annotation_clip=False)  # fmt: skip
    ax.axvline(target, color="#1d2330", linestyle="--", linewidth=1)
    ax.set_xlim(0, 100)
    ax.set_xlabel("uptime, % of the port's minutes in the month (T_total − (T_outage − T_excluded)) / T_total")
    title = "Uptime per port, worst first"
    measured = len(report.worst_first)
    if measured > len(worst):
        title += f" (worst {len(worst)} of {measured})"
    ax.set_title(title)
    # the legend sits under the axis, never over a bar
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=RED, label=f"below the {target:g} % target"), Patch(color=GREEN, label="at or above it"),
                        Line2D([], [], color="#1d2330", linestyle="--", label=f"target {target:g} %")],
               loc="outside lower center", ncols=3, fontsize=8, frameon=False)  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    return fig


def daily_outage_minutes(report: MonthlyReport) -> Figure:
    """Outage minutes of all ports per local day: counted against uptime (red) and excluded (grey)."""
    fig = _figure(3.4)
    ax = fig.add_subplot()
    xs = list(range(len(report.days)))
    counted = [float(d.counted_min) for d in report.days]
    excluded = [float(d.excluded_min) for d in report.days]
    ax.bar(xs, counted, color=RED, label="counted against uptime")
    ax.bar(xs, excluded, bottom=counted, color=LIGHT, hatch="//", edgecolor="white", label="excluded (cause outside the operator's control)")
    top = max([c + e for c, e in zip(counted, excluded)] + [10.0])
    ax.set_ylim(0, top * 1.15)
    for x, d in zip(xs, report.days):
        if not d.covered:
            ax.annotate("no data", (x, 0), xytext=(0, 3), textcoords="offset points", rotation=90, ha="center",
                        va="bottom", fontsize=7, color=GREY)  # fmt: skip
    ax.set_xticks(xs, [d.day.strftime("%d") for d in report.days], fontsize=8)
    ax.set_xlabel(f"day of {report.month.strftime('%B %Y')} ({report.timezone})")
    ax.set_ylabel("outage minutes, all ports")
    ax.set_title("Outage minutes per day")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def outage_minutes_by_cause(report: MonthlyReport) -> Figure:
    minutes: dict[str, Decimal] = defaultdict(Decimal)
    for o in report.outages:
        minutes[o.cause] += o.minutes_in_month
    items = sorted(minutes.items(), key=lambda kv: (-kv[1], kv[0]))
    fig = _figure(1.1 + 0.4 * max(len(items), 1))
    ax = fig.add_subplot()
    ys = list(range(len(items)))[::-1]
    excluded = set(report.excluded_causes)
    ax.barh(ys, [float(m) for _, m in items], color=[LIGHT if c in excluded else RED for c, _ in items])
    ax.set_yticks(ys, [f"{c} ({'excluded' if c in excluded else 'counted'})" for c, _ in items], fontsize=9)
    for y, (_, m) in zip(ys, items):
        ax.annotate(f"{m:,.0f} min", (float(m), y), xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=8, color=GREY)  # fmt: skip
    ax.set_xlim(0, max([float(m) for _, m in items] + [10.0]) * 1.2)
    ax.set_xlabel("outage minutes in the month, all ports")
    ax.set_title("Outage minutes by cause")
    ax.grid(axis="x", alpha=0.3)
    return fig


# (key, caption, figure, shown when)
MONTHLY_CHARTS: list[tuple[str, str, Callable[[MonthlyReport], Figure], Callable[[MonthlyReport], bool]]] = [
    ("uptime_by_port", "Each port's uptime this month, worst first; red bars are below the target (dashed line).",
     uptime_by_port, lambda r: bool(r.worst_first)),
    ("daily_outage_minutes", "Outage minutes of all ports per day: red counts against uptime, grey hatched is excluded.",
     daily_outage_minutes, lambda r: not r.coverage.no_data),
    ("outage_minutes_by_cause", "Outage minutes by the cause operators gave them (unknown until one is set).",
     outage_minutes_by_cause, lambda r: bool(r.outages)),
]  # fmt: skip
