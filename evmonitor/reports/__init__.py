"""Daily network reports: the model (`model`), its charts (`charts`) and its HTML/CSV (`render`).

Building one from the database is beat's job (`beat.daily_report.build_daily_report`); this package
only turns values into pages.
"""

from evmonitor.reports.model import AlertLine, DailyReport, HourPoint, MaintenanceLine, Rules, StationDay, Totals
from evmonitor.reports.render import CSV_COLUMNS, render_csv, render_html

__all__ = [
    "CSV_COLUMNS",
    "AlertLine",
    "DailyReport",
    "HourPoint",
    "MaintenanceLine",
    "Rules",
    "StationDay",
    "Totals",
    "render_csv",
    "render_html",
]
