"""CSV cells a spreadsheet shows as text, never runs as a formula (CSV injection).

The OWASP rule: a text cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is
prefixed with a single quote, which spreadsheets take as "this is text" and do not display.
Station names, operators and cities come from producers, so a name such as
`=HYPERLINK("http://x","y")` would otherwise become a live formula in whoever opens the file.
Only strings are touched: numbers we write ourselves (a negative balance, `-3.5`) stay numbers.

Every CSV writer makes its writer with `csv_writer` and passes its rows through `csv_row`. The
writer ends lines with CRLF (RFC 4180) because the `csv` module quotes a cell only for the
characters of its line terminator: with "\n" alone, a carriage return inside a name went out
bare, a spreadsheet broke the row there, and the text after it (`=cmd|...`) began a new row,
as a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["FORMULA_PREFIXES", "csv_cell", "csv_row", "csv_writer"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """`value`, with a leading `'` if it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    """A row for `csv.writer.writerow` with every text cell made inert (see `csv_cell`)."""
    return [csv_cell(v) for v in values]


def csv_writer(out: TextIO) -> Any:
    """A `csv.writer` on `out` that quotes every cell holding a CR or LF (see the module docstring)."""
    return csv.writer(out, lineterminator="\r\n")
