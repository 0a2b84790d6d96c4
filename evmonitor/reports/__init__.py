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
from evmonitor.reports.monthly import DayOutage, MonthlyReport, MonthTotals, OutageLine, PortMonth
from evmonitor.reports.monthly_render import MONTHLY_CSV_COLUMNS, render_monthly_csv, render_monthly_html
from evmonitor.reports.render import CSV_COLUMNS, render_csv, render_html

__all__ = [
    "CSV_COLUMNS",
    "MONTHLY_CSV_COLUMNS",
    "NO_DATA",
    "AlertLine",
    "Coverage",
    "DailyReport",
    "DayOutage",
    "HourPoint",
    "MaintenanceLine",
    "MonthTotals",
    "MonthlyReport",
    "OutageLine",
    "PortDay",
    "PortMonth",
    "PortUptime",
    "Rules",
    "StationDay",
    "Totals",
    "coverage",
    "render_csv",
    "render_html",
    "render_monthly_csv",
    "render_monthly_html",
]
