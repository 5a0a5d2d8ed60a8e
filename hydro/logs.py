"""Where hydro's log lines go and how they look: set up once, from ``logging`` in config.yaml."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable

from hydro.config import LoggingConfig

PROGRESS_EVERY = 30.0  # seconds between a long-running service's progress lines


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(config: LoggingConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    # paho logs every packet at DEBUG; only hydro's own DEBUG is worth reading.
    logging.getLogger("mqtt").setLevel(max(logging.INFO, root.level))
    logging.getLogger("psycopg").setLevel(max(logging.WARNING, root.level))
    # APScheduler reports every run of every job at INFO; a skipped run is logged by
    # ScheduledJobs, by the job's name. Failed jobs are ERRORs.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
    # The twilio client logs ten lines per SMS (URL and headers, secrets masked by hydro).
    logging.getLogger("twilio.http_client").setLevel(max(logging.WARNING, root.level))


async def log_progress_every(
    log_progress: Callable[[], None], seconds: float = PROGRESS_EVERY
) -> None:
    """Runs until cancelled: a service's running totals, so a quiet log still shows it is alive."""
    while True:
        await asyncio.sleep(seconds)
        log_progress()
