"""How much of a report's period the data covers, stated in words: "no data", "partial day" or
"partial month" with the span covered, or a full period. Pure.

A report never turns missing data into a number: a period with no events, or a port not yet seen,
reads "no data" instead of 0 % or 100 %; a period not over yet (the report was built before its
local end) or a port first seen inside it reads "partial ..." with the span its figures cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["NO_DATA", "Coverage", "coverage"]

NO_DATA = "no data"


@dataclass(frozen=True, slots=True)
class Coverage:
    """The span [begin, end) of a period that its figures cover (local times); both None: no data."""

    unit: str  # "day" | "month"
    begin: datetime | None
    end: datetime | None
    partial: bool

    @property
    def no_data(self) -> bool:
        return self.begin is None

    def span(self) -> str:
        """`2026-11-03 14:00 – 2026-11-30 24:00`: the covered span, to the minute."""
        if self.begin is None or self.end is None:
            return ""
        end = self.end.strftime("%Y-%m-%d %H:%M")
        if (self.end.hour, self.end.minute, self.end.second) == (0, 0, 0):
            # the end of a local day reads as 24:00 of that day, not 00:00 of the next
            end = (self.end - timedelta(days=1)).strftime("%Y-%m-%d") + " 24:00"
        return f"{self.begin.strftime('%Y-%m-%d %H:%M')} – {end}"

    def label(self) -> str:
        """`no data`, `partial month (2026-11-03 14:00 – 2026-11-30 24:00)` or `full month`."""
        if self.no_data:
            return NO_DATA
        if self.partial:
            return f"partial {self.unit} ({self.span()})"
        return f"full {self.unit}"


def coverage(
    unit: str, start: datetime, end: datetime, *, now: datetime, first_seen_at: datetime | None, has_data: bool,
    zone: ZoneInfo,
) -> Coverage:  # fmt: skip
    """The covered part of [start, end): from the later of start and first_seen_at, to the earlier
    of end and now. No data when nothing was recorded, or that span is empty."""
    begin = max(start, first_seen_at) if first_seen_at is not None else start
    stop = min(end, now)
    if not has_data or first_seen_at is None or stop <= begin:
        return Coverage(unit, None, None, partial=False)
    return Coverage(unit, begin.astimezone(zone), stop.astimezone(zone), partial=(begin, stop) != (start, end))
