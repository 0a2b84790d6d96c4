"""The outage ledger as a shared read-and-annotate layer, below beat, the API and the CLI.

    figures   the uptime formula on one port's outages (pure)
    uptime    uptime per port and station over local days, trailing 12 months (reads port_outages)
    outages   list outages, set an operator's cause (audited)

Beat draws the ledger (`beat.outages`, `beat.sessions`); this package only reads it and writes
the operator's columns, so the API may use it without importing beat.
"""

from evmonitor.ledger.figures import Uptime
from evmonitor.ledger.outages import OUTAGE_COLUMNS, audit, default_user, list_outages, set_cause
from evmonitor.ledger.uptime import (
    FORMULA,
    TRAILING_COLUMNS,
    UPTIME_COLUMNS,
    UptimeRow,
    month_days,
    parse_period,
    trailing_months,
    trailing_table,
    uptime_report,
    uptime_rows,
)

__all__ = [
    "FORMULA",
    "OUTAGE_COLUMNS",
    "TRAILING_COLUMNS",
    "UPTIME_COLUMNS",
    "Uptime",
    "UptimeRow",
    "audit",
    "default_user",
    "list_outages",
    "month_days",
    "parse_period",
    "set_cause",
    "trailing_months",
    "trailing_table",
    "uptime_report",
    "uptime_rows",
]
