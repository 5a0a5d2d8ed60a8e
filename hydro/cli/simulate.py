"""``hydro simulate`` and ``hydro demo``: gateways that are not there, and a whole local setup."""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydro import app, demo
from hydro.cli._common import Command, OneOf, Option, aware, option, run_async, timestamp
from hydro.config import parse_duration
from hydro.simulate import REPORT_INTERVAL, SimulationPlan

T = TypeVar("T", int, float)


def _simulation_options(
    *, default_speed: float, default_storm: float
) -> tuple[Option | OneOf, ...]:
    """What ``hydro simulate`` and ``hydro demo`` both take, with their own defaults."""
    return (
        option(
            "--speed",
            type=_at_least(0.0),
            default=default_speed,
            help="simulated seconds per real second; 0 publishes unpaced"
            f" (default {default_speed:g})",
        ),
        option(
            "--as-fast-as-possible",
            dest="speed",
            action="store_const",
            const=0.0,
            help="the same as --speed 0",
        ),
        option(
            "--storm",
            type=_at_least(0.0),
            default=default_storm,
            help="0 calm (no level is crossed) .. 1 a storm past warning levels"
            f" (default {default_storm:g})",
        ),
        OneOf(
            (
                option(
                    "--steps",
                    type=_at_least(1),
                    default=288,
                    help="5-minute reports (default 288, a day)",
                ),
                option(
                    "--duration",
                    type=_duration,
                    dest="steps",
                    metavar="DURATION",
                    help="simulated time to cover instead, like 90m, 6h or 2d",
                ),
            )
        ),
        option("--stations", type=_at_least(1), help="only the first N stations of the registry"),
        option("--batch", type=_at_least(1), default=100, help="readings per message, at most"),
        option("--seed", type=int, default=0, help="same seed, same weather"),
        option(
            "--start",
            type=timestamp,
            help="simulated time of the first report, ISO 8601, in registry.default_timezone "
            "unless it has an offset (default: now at --speed 1 or slower; otherwise the run ends "
            "now, so hydro accepts every report)",
        ),
    )


def _at_least(low: T) -> Callable[[str], T]:
    """An argparse type: a number of ``low``'s type that is not below ``low``."""

    def parse(text: str) -> T:
        try:
            value = type(low)(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, not {text}")
        return value

    return parse


def _duration(text: str) -> int:
    """A duration as a number of report steps, at least one."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    assert isinstance(value, dt.timedelta)
    return max(1, math.ceil(value / REPORT_INTERVAL))


def _plan(args: argparse.Namespace, zone: str) -> SimulationPlan:
    return SimulationPlan(
        steps=args.steps,
        speed=args.speed,
        storm=args.storm,
        batch=args.batch,
        seed=args.seed,
        stations=args.stations,
        start=aware(args.start, zone),
        protocol=getattr(args, "protocol", "mqtt"),
    )


def _simulate(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    progress = run_async(app.run_simulation(config, _plan(args, config.registry.default_timezone)))
    print(
        f"published {progress.readings:,} readings in {progress.messages:,} messages"
        f" in {progress.seconds:.1f} s ({progress.rate:,.0f} readings/s)"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    plan = _plan(args, config.registry.default_timezone)
    demo.run_demo(config, args.workdir, plan, reset=args.reset, resume=args.resume, port=args.port)
    return 0


COMMANDS = (
    Command(
        "simulate",
        "publish realistic readings for the registry to the broker, as station gateways would",
        """
  hydro simulate                                    # a day, one 5-minute step per second
  hydro simulate --storm 1 --speed 600              # a strong storm, two steps per second
  hydro simulate --storm 0 --duration 6h --speed 60 # six calm hours in six minutes
  hydro simulate --stations 500 --steps 12 --as-fast-as-possible
  hydro simulate --start 2026-05-07T08:00 --duration 1d --seed 7 --batch 20
  hydro simulate --protocol sl651 --stations 50     # RTUs sending SL 651 frames to sl651.port
""",
        _simulate,
        (
            *_simulation_options(default_speed=300.0, default_storm=0.8),
            option(
                "--protocol",
                choices=("mqtt", "sl651"),
                default="mqtt",
                help="mqtt: gateways publish JSON to the broker (default); sl651: every station an"
                " RTU sending SL 651 timed reports to `hydro gateway sl651` at"
                " sl651.host:sl651.port",
            ),
        ),
    ),
    Command(
        "demo",
        "hydro's whole job on this machine: PostgreSQL and Mosquitto in ./var, hydro (ingest,"
        " alerting, SMS printed to the console, the web page) and a simulated storm over the"
        " sample Guizhou registry (needs Debian's postgresql and mosquitto)",
        """
  hydro demo                  # a day's storm in about 2.5 minutes; Ctrl-C keeps the data
  hydro demo --resume         # continue where Ctrl-C stopped it
  hydro demo --reset          # start clean
  hydro demo --workdir /tmp/hydro-demo --storm 1.5 --speed 1200 --port 9000
""",
        _demo,
        (
            option("--workdir", type=Path, default=Path("var"), help="default: ./var"),
            OneOf(
                (
                    option("--reset", action="store_true", help="delete the work folder first"),
                    option(
                        "--resume",
                        action="store_true",
                        help="continue the demo the work folder holds",
                    ),
                )
            ),
            option(
                "--port",
                type=_at_least(1),
                default=8080,
                help="web page and API (default 8080, else free)",
            ),
            *_simulation_options(default_speed=600.0, default_storm=1.0),
        ),
    ),
)
