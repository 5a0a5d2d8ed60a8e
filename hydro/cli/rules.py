"""``hydro rules test``: what a water level at a station would trigger, and the exact SMS."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from hydro import app
from hydro.cli._common import Command, aware, option, timestamp
from hydro.rules.levels import alert_levels, level_verdicts
from hydro.rules.messages import rule_text


def _test(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    registry = app.load_stations(config)
    station = registry.get(args.station)
    if station is None:
        print(f"error: station {args.station!r} is not in the registry", file=sys.stderr)
        return 1
    rules = app.load_alert_rules(config)
    observed_at = aware(args.time, station.timezone) or dt.datetime.now(dt.UTC)
    verdicts = level_verdicts(rules, station, args.value, observed_at)
    print(f"{station.code} {station.name} ({station.kind.value}), {args.value:.2f} m")
    if not verdicts:
        print("no level rule applies to this station (no matching kind or level)")
    for verdict in verdicts:
        state = "fires" if verdict.fires else ("outside flood season" if verdict.crossed else "-")
        print(f"  {verdict.rule.id:<24} {verdict.rule.level:<19} {verdict.level:>9.2f}  {state}")
    for verdict in alert_levels(verdicts):
        rule = verdict.rule
        text = rule_text(rule, station, observed_at=observed_at, value=args.value)
        roles = ", ".join(role.value for role in rule.roles)
        print(f"\n{rule.name} [{rule.severity.value}] to {roles}:\n{text}")
    return 0


COMMANDS = (
    Command(
        "rules",
        "work with the alert rules in alert_rules/",
        """
  hydro rules test 67901001 771.54
""",
        commands=(
            Command(
                "test",
                "show which level rules a water level at a station fires, and the SMS text",
                """
  hydro rules test 67901001 771.54 --time "2026-05-07 08:00"   # 麦冲水库: 超正常水位
  hydro rules test 61901002 911                                # 禾丰水文站: 超保证水位
""",
                _test,
                (
                    option("station", help="station code from the registry"),
                    option("value", type=float, help="water level in metres"),
                    option("--time", type=timestamp, help="observation time (default: now)"),
                ),
            ),
        ),
    ),
)
