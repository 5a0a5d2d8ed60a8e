"""``hydro stations ...``: the station registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydro import app
from hydro.cli._common import Command, labelled, option
from hydro.models import StationKind
from hydro.stations import (
    generate_curves,
    generate_stations,
    write_curves_csv,
    write_stations_csv,
)
from hydro.stations.curves import CURVE_FILE_SUFFIX


def _generate(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 2
    stations = generate_stations(args.count, seed=args.seed)
    if args.output == "-":
        write_stations_csv(stations, sys.stdout)
        return 0
    output = Path(args.output)
    rows = write_stations_csv(stations, output)
    curves_file = output.with_name(f"{output.stem}_{CURVE_FILE_SUFFIX}")
    curves = write_curves_csv(generate_curves(stations, seed=args.seed), curves_file)
    gateways = len({s.gateway for s in stations})
    print(
        f"wrote {rows:,} stations ({gateways} gateways) to {args.output},"
        f" {curves:,} stage-storage curves to {curves_file}",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    registry = app.load_stations(config)
    shown = [
        s
        for s in registry.stations
        if (args.prefecture is None or s.prefecture == args.prefecture)
        and (args.kind is None or s.kind.value == args.kind)
    ]
    for s in shown:
        levels = labelled(
            (
                ("警戒", s.warning_level),
                ("保证", s.guaranteed_level),
                ("汛限", s.flood_limit_level),
                ("正常", s.normal_level),
                ("设计", s.design_flood_level),
            ),
            ".2f",
        )
        print(
            f"{s.code}  {s.name}  {s.kind.value:<9} {s.prefecture}{s.county}  "
            f"{s.river or '-'}  {s.gateway or '-'}  {levels}"
        )
    print(f"{len(shown)} of {len(registry)} stations", file=sys.stderr)
    return 0


COMMANDS = (
    Command(
        "stations",
        "work with the station registry (format: stations/README.md)",
        """
  hydro stations list --prefecture 黔东南州
  hydro stations generate --count 6951 --output stations-synthetic.csv
""",
        commands=(
            Command(
                "generate",
                "write a synthetic Guizhou registry of any size, for benchmarks and demos (with"
                " its reservoirs' stage-storage curves in X_storage_curves.csv beside the file"
                " X.csv)",
                """
  hydro stations generate --count 6951                      # the reference province's size
  hydro stations generate --count 100000 --seed 7 --output big.csv
  hydro stations generate --count 20 --output -             # to standard output
""",
                _generate,
                (
                    option("--count", type=int, required=True, help="number of stations"),
                    option("--seed", type=int, default=0, help="same seed, same registry"),
                    option(
                        "--output",
                        default="stations-synthetic.csv",
                        help="CSV file to write, or - for stdout",
                    ),
                ),
            ),
            Command(
                "list",
                "list the configured registry's stations",
                """
  hydro stations list
  hydro stations list --kind reservoir --prefecture 黔东南州
""",
                _list,
                (
                    option("--prefecture"),
                    option("--kind", choices=[kind.value for kind in StationKind]),
                ),
            ),
        ),
    ),
)
