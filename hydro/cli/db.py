"""``hydro db migrate`` and ``hydro status``: the database behind hydro."""

from __future__ import annotations

import argparse

from hydro import app
from hydro.cli._common import Command, run_async
from hydro.models import Channel


def _migrate(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    report = run_async(app.migrate_database(config))
    applied = ", ".join(report.applied) if report.applied else "none (already up to date)"
    print(f"migrations applied: {applied}")
    version = f" {report.timescaledb_version}" if report.timescaledb_version else ""
    print(f"storage mode: {report.mode}{version}")
    return 0


def _status(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    s = run_async(app.status(config))
    version = f" {s.timescaledb_version}" if s.timescaledb_version else ""
    rows = [
        ("storage mode", f"{s.mode}{version}"),
        ("schema version", str(s.schema_version)),
        ("readings (estimate)", f"{s.readings:,}"),
        ("stations reporting", f"{s.stations_reporting:,}"),
        ("latest observation", str(s.latest_reading or "-")),
        ("latest received", str(s.latest_received or "-")),
        ("quarantined, last 24 h", f"{s.quarantined_24h:,}"),
        ("revised values, last 24 h", f"{s.revisions_24h:,}"),
        ("open alerts", f"{s.open_alerts:,}"),
        ("batches awaiting evaluation", f"{s.journal_backlog:,}"),
        ("SMS", _by_status(s.outbox[Channel.SMS])),
        ("calls", _by_status(s.outbox[Channel.VOICE])),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def _by_status(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items())) or "-"


COMMANDS = (
    Command(
        "db",
        "manage hydro's database",
        """
  hydro db migrate
""",
        commands=(
            Command(
                "migrate",
                "create or upgrade the schema; running it again changes nothing",
                """
  hydro db migrate
  HYDRO_DATABASE__TIMESCALEDB=required hydro db migrate   # fail unless TimescaleDB is used
""",
                _migrate,
            ),
        ),
    ),
    Command(
        "status",
        "show the storage mode (TimescaleDB or plain PostgreSQL), what has been stored, open"
        " alerts, the evaluation backlog, SMS and voice calls by status",
        """
  hydro status
""",
        _status,
    ),
)
