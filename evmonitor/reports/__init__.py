"""Network reports: the daily one (`model`, `charts`, `render`) and the monthly one (`monthly`,
`monthly_charts`, `monthly_render`), and how much of a period their data covers (`coverage`).

Building one from the database is beat's job (`beat.daily_report`, `beat.monthly_report`); this
package only turns values into pages.
"""

from evmonitor.reports.coverage import NO_DATA, Coverage, coverage
from evmonitor.reports.model import (
    AlertLine,
    DailyReport,
    HourPoint,
    MaintenanceLine,
    PortDay,
    PortUptime,
    Rules,
    StationDay,
    Totals,
)
from evmonitor.reports.render import CSV_COLUMNS, render_csv, render_html

__all__ = [
    "CSV_COLUMNS",
    "NO_DATA",
    "AlertLine",
    "Coverage",
    "DailyReport",
    "HourPoint",
    "MaintenanceLine",
    "PortDay",
    "PortUptime",
    "Rules",
    "StationDay",
    "Totals",
    "coverage",
    "render_csv",
    "render_html",
]
