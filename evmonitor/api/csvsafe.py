"""CSV cells a spreadsheet will not run: OWASP's rule for CSV injection.

A cell that begins with = + - @, a tab or a carriage return gets a leading single quote, so
Excel and LibreOffice show it as text. (The reports' CSV gets a shared helper in another branch;
this one is the API's until that lands on main.)
"""

from __future__ import annotations

__all__ = ["neutralise"]

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_TRIGGERS) else cell
