"""evmonitor: a real-time data pipeline for EV charging networks."""

__version__ = "0.1.0"
