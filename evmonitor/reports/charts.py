"""Charts of a daily report, drawn with matplotlib's object API on the Agg canvas (no pyplot
state, no display: safe in worker processes and threads). Each chart function returns its
`Figure` (tests read its axes: every percentage axis starts at 0); `png` turns one into bytes.

matplotlib is imported when a chart is drawn, not with this module: beat's report jobs import
it, so every process of the Celery app would otherwise load matplotlib (~0.4 s) at start,
the ingest workers included."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from evmonitor.reports.model import DailyReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CHARTS", "availability_by_station", "faults_by_code", "hourly_activity", "hourly_utilization", "png",
           "station_label", "utilization_by_station"]  # fmt: skip

BLUE, ORANGE, GREEN, RED, GREY = "#2f6db5", "#e8871e", "#3a9d5d", "#c8402f", "#6b7280"
MAX_BARS = 30


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes; no timestamp or software tag, so the same figure gives the same bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _figure(height: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, height), layout="constrained")
    return fig


def _integer_ticks() -> object:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _hour_labels(report: DailyReport) -> list[str]:
    return [h.starts_at.strftime("%H:%M") for h in report.hours]


def hourly_activity(report: DailyReport) -> Figure:
    fig = _figure(3.4)
    ax = fig.add_subplot()
    labels = _hour_labels(report)
    xs = range(len(labels))
    ax.bar(xs, [h.sessions_started for h in report.hours], color=BLUE, label="sessions started")
    ax.set_ylabel("sessions started", color=BLUE)
    ax.yaxis.set_major_locator(_integer_ticks())
    energy = ax.twinx()
    energy.plot(xs, [float(h.energy_kwh) for h in report.hours], color=ORANGE, marker="o", markersize=3,
                label="kWh of sessions started")  # fmt: skip
    energy.set_ylabel("kWh (sessions started)", color=ORANGE)
    energy.set_ylim(bottom=0)
    ax.set_xticks(list(xs), labels, rotation=90, fontsize=8)
    ax.set_xlabel(f"hour of the day ({report.timezone})")
    ax.set_title("Sessions started and their energy, per hour")
    ax.grid(axis="y", alpha=0.3)
    return fig


def hourly_utilization(report: DailyReport) -> Figure:
    fig = _figure(3.0)
    ax = fig.add_subplot()
    labels = _hour_labels(report)
    xs = list(range(len(labels)))
    values = [float(h.utilization_pct) for h in report.hours]
    ax.fill_between(xs, values, color=GREEN, alpha=0.25, step="mid")
    ax.step(xs, values, color=GREEN, where="mid")
    ax.set_xticks(xs, labels, rotation=90, fontsize=8)
    peak = max(values, default=0.0)
    ax.set_ylim(0, 100.0 if peak > 60 else max(10.0, peak * 1.3))
    ax.set_ylabel("% of connector time occupied")
    ax.set_xlabel(f"hour of the day ({report.timezone})")
    ax.set_title("Network utilization per hour")
    ax.grid(axis="y", alpha=0.3)
    return fig


def station_label(name: str, station_id: str) -> str:
    short = name if len(name) <= 28 else name[:27] + "…"
    label = f"{short} ({station_id})" if name != station_id else station_id
    # matplotlib reads text between two "$" as TeX math: a station named "$$" stopped the report
    return label.replace("$", r"\$")


def utilization_by_station(report: DailyReport) -> Figure:
    ranked = report.ranked
    if len(ranked) > MAX_BARS:
        half = MAX_BARS // 2
        ranked = ranked[:half] + ranked[-half:]
    fig = _figure(0.9 + 0.28 * max(len(ranked), 1))
    ax = fig.add_subplot()
    ys = list(range(len(ranked)))[::-1]
    ax.barh(ys, [float(s.utilization_pct) for s in ranked], color=BLUE)
    ax.set_yticks(ys, [station_label(s.name, s.station_id) for s in ranked], fontsize=8)
    for y, s in zip(ys, ranked):
        ax.annotate(f"{s.utilization_pct:.1f} %  ·  {s.energy_kwh:,.0f} kWh", (float(s.utilization_pct), y),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=7, color=GREY)  # fmt: skip
    ax.set_xlim(0, max([float(s.utilization_pct) for s in ranked] + [10.0]) * 1.35)
    ax.set_xlabel("utilization, % of connector time occupied")
    title = "Utilization by station, best first"
    if len(report.stations) > len(ranked):
        title += f" (best and worst {MAX_BARS // 2} of {len(report.stations)})"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def availability_by_station(report: DailyReport) -> Figure:
    measured = [s for s in report.stations if s.availability_pct is not None]
    below = [s for s in measured if s.availability_pct < 100]
    worst = sorted(below, key=lambda s: (s.availability_pct, s.station_id))[:MAX_BARS]
    fig = _figure(0.9 + 0.28 * max(len(worst), 1))
    ax = fig.add_subplot()
    ys = list(range(len(worst)))[::-1]
    colors = [RED if s.availability_pct < 95 else ORANGE for s in worst]
    ax.barh(ys, [float(s.availability_pct) for s in worst], color=colors)
    ax.set_yticks(ys, [station_label(s.name, s.station_id) for s in worst], fontsize=8)
    for y, s in zip(ys, worst):  # values in a column right of the axis: the axis itself ends at 100 %
        ax.annotate(f"{s.availability_pct:.2f} %", (100, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=7, color=GREY, annotation_clip=False)  # fmt: skip
    ax.set_xlim(0, 100)  # a percentage axis starts at 0: a cut axis makes 99 % look like 50 %
    ax.set_xlabel("availability, % of connector time neither Faulted nor offline")
    title = "Stations below 100 % availability, worst first"
    if len(below) > len(worst):
        title += f" (worst {MAX_BARS} of {len(below)})"
    if len(measured) > len(below):
        title += f"; the other {len(measured) - len(below)} were at 100 %"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def faults_by_code(report: DailyReport) -> Figure:
    counts = Counter(f.error_code or "unknown" for f in report.faults)
    items = counts.most_common()
    fig = _figure(0.9 + 0.35 * max(len(items), 1))
    ax = fig.add_subplot()
    ys = list(range(len(items)))[::-1]
    ax.barh(ys, [n for _, n in items], color=RED)
    ax.set_yticks(ys, [code for code, _ in items], fontsize=9)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlabel("faults that began or were still open this day")
    ax.set_title("Faults by OCPP error code")
    ax.grid(axis="x", alpha=0.3)
    return fig


# (key, caption, renderer, shown when)
CHARTS: list[tuple[str, str, Callable[[DailyReport], Figure], Callable[[DailyReport], bool]]] = [
    ("hourly_activity", "Sessions started per hour (bars) and the energy those sessions delivered (line).",
     hourly_activity, lambda r: bool(r.hours) and not r.no_data),
    ("hourly_utilization", "Share of all connectors' time occupied by a session, per hour.",
     hourly_utilization, lambda r: bool(r.hours) and not r.no_data),
    ("utilization_by_station", "Each station's utilization over the day; grey labels add its energy.",
     utilization_by_station, lambda r: bool(r.stations)),
    ("availability_by_station", "Orange: below 100 %. Red: below 95 %.",
     availability_by_station, lambda r: any(s.availability_pct is not None and s.availability_pct < 100
                                             for s in r.stations)),
    ("faults_by_code", "Connector faults of the day by the error code the charger reported.",
     faults_by_code, lambda r: bool(r.faults)),
]  # fmt: skip
