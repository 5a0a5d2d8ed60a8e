"""``hydro readings add``: a reading a patrol person phoned in, typed in by the duty officer."""

from __future__ import annotations

import argparse

from hydro import app
from hydro.cli._common import Command, labelled, option, run_async
from hydro.store.manual import ManualEntry


def _add(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    entry = ManualEntry(
        args.station, args.time, args.water_level, args.flow, args.rainfall, args.by, args.note
    )
    reading = run_async(app.enter_reading(config, entry))
    values = labelled(
        (
            ("water_level", reading.water_level),
            ("flow", reading.flow),
            ("rainfall", reading.rainfall),
        )
    )
    print(
        f"stored {reading.station} at {reading.time.isoformat()}: {values} (manual, by {args.by})"
    )
    return 0


COMMANDS = (
    Command(
        "readings",
        "readings entered by hand (the station's gateway is down)",
        """
  hydro readings add 67901001 --time "2026-06-20 14:30" --water-level 771.62 \\
      --by 王值班 --note "巡查员张秀英电话报数,网关停电"
""",
        commands=(
            Command(
                "add",
                "store one reading as the station's gateway would have sent it, evaluated like"
                " one, recorded with who entered it and why; refused (exit 1, nothing stored)"
                " where ingest would refuse it",
                """
  hydro readings add 67901001 --time "2026-06-20 14:30" --water-level 771.62 \\
      --by 王值班 --note "巡查员张秀英电话报数"
  hydro readings add 61000000 --time 2026-06-20T14:00+08:00 --rainfall 12.5 --by li --note ...
""",
                _add,
                (
                    option("station", help="station code"),
                    option(
                        "--time",
                        required=True,
                        help="when it was read: ISO 8601; without an offset, the station's local"
                        " time",
                    ),
                    option("--water-level", type=float, help="metres"),
                    option("--flow", type=float, help="m³/s"),
                    option("--rainfall", type=float, help="mm since the station's previous report"),
                    option("--by", required=True, help="who enters it (kept with the reading)"),
                    option(
                        "--note", required=True, help="who read the gauge and phoned it in, and why"
                    ),
                ),
            ),
        ),
    ),
)
