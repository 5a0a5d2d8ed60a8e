"""``hydro report daily``: the report of a hydrological day (08:00 to 08:00)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from hydro import app
from hydro.cli._common import Command, option, run_async
from hydro.reports.formats import FORMATS


def _daily(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    report, stored = run_async(app.daily_report(config, args.date))
    if not stored:
        print(
            f"note: the report of {report.day} is not stored (its job has not run yet);"
            " built now from the data as it is",
            file=sys.stderr,
        )
    sys.stdout.write(FORMATS[args.format](report).rstrip("\n") + "\n")
    return 0


COMMANDS = (
    Command(
        "report",
        "reports of the hydrological day",
        """
  hydro report daily
""",
        commands=(
            Command(
                "daily",
                "the daily report: rainfall by area and the wettest stations, rainstorm grades,"
                " levels above their characteristic levels, alerts, silent stations, SMS. A stored"
                " report is shown as it was built, with the corrections late data brought since",
                """
  hydro report daily                          # the day that ended at 08:00 this morning
  hydro report daily --date 2026-05-07        # 5月7日8时 to 5月8日8时
  hydro report daily --date 2026-05-07 --format html > 2026-05-07.html
  hydro report daily --format csv             # one row per station
""",
                _daily,
                (
                    option(
                        "--date",
                        type=dt.date.fromisoformat,
                        help="the day, by the date of its opening 08:00 (default: the last that"
                        " ended)",
                    ),
                    option("--format", choices=sorted(FORMATS), default="text"),
                ),
            ),
        ),
    ),
)
