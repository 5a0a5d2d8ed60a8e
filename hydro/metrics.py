"""Process counters for ``/metrics``: what this process ingested, rejected and evaluated.

They count since the process started, as Prometheus expects; what the database holds (alerts by
state, SMS by status) is read at scrape time by the API instead, so every hydro process reports
the same totals.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

READINGS_STORED = Counter(
    "hydro_readings_stored",
    "Readings this process stored: new, or a revised value for a stored (station, time)",
)
READINGS_DUPLICATE = Counter(
    "hydro_readings_duplicate", "Readings this process received again with the same values"
)
REJECTED = Counter(
    "hydro_rejected", "Messages or readings this process quarantined, by reason", ["code"]
)
EVALUATION_SECONDS = Histogram(
    "hydro_evaluation_seconds",
    "Duration of one alert evaluation tick",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVALUATION_WAKEUPS = Counter(
    "hydro_evaluation_wakeups",
    "Notices of committed readings that woke this process's evaluator (many fold into one tick)",
)
