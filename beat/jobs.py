"""Maintenance jobs (rollups, stale sessions, faults, reports) land here."""
