"""``hydro quarantine list``: what gateways sent that hydro did not store, and why."""

from __future__ import annotations

import argparse
import json

from hydro import app
from hydro.cli._common import Command, ago, aware, option, run_async
from hydro.models import RejectionCode
from hydro.store.quarantine import QuarantineEntry, QuarantineFilter


def _list(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    zone = config.registry.default_timezone
    query = QuarantineFilter(
        since=aware(args.since, zone),
        until=aware(args.until, zone),
        gateway=args.gateway,
        station=args.station,
        code=args.code,
        limit=args.limit,
    )
    entries = run_async(app.quarantine(config, query))
    if args.format == "json":
        for entry in entries:
            print(json.dumps(_as_json(entry), ensure_ascii=False))
        return 0
    for entry in entries:
        print(
            f"{entry.id:>8}  {entry.received_at:%Y-%m-%d %H:%M:%S%z}  {entry.gateway:<12} "
            f"{entry.station or '-':<10} {entry.code:<16} {entry.reason}"
        )
        print(f"{'':>10}payload: {_shorten(entry.payload)}")
    if not entries:
        print("no quarantined items match")
    return 0


def _as_json(entry: QuarantineEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "received_at": entry.received_at.isoformat(),
        "topic": entry.topic,
        "gateway": entry.gateway,
        "station": entry.station,
        "code": entry.code,
        "reason": entry.reason,
        "payload": entry.payload.decode("utf-8", errors="replace"),
    }


def _shorten(payload: bytes, limit: int = 200) -> str:
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + f"… ({len(payload)} bytes)"


COMMANDS = (
    Command(
        "quarantine",
        "inspect quarantined gateway messages and readings",
        """
  hydro quarantine list --since 2h
""",
        commands=(
            Command(
                "list",
                "list quarantined items, newest first, with reason and payload",
                """
  hydro quarantine list                           # the latest 100
  hydro quarantine list --since 24h --code unknown_station
  hydro quarantine list --gateway gw-0007 --format json
  hydro quarantine list --since "2026-05-07 08:00" --until "2026-05-08 08:00" --station 60312345
""",
                _list,
                (
                    option("--since", type=ago, help="a time or an age like 2h, 7d"),
                    option("--until", type=ago, help="a time or an age like 2h, 7d"),
                    option("--gateway"),
                    option("--station"),
                    option("--code", choices=[code.value for code in RejectionCode]),
                    option("--limit", type=int, default=100),
                    option("--format", choices=["table", "json"], default="table"),
                ),
            ),
        ),
    ),
)
