"""``hydro simulate`` and ``hydro demo``: gateways that are not there, and a whole local setup."""

from __future__ import annotations

import argparse
from pathlib import Path

from hydro import app, demo
from hydro.cli._common import Subparsers, add_command, aware, run_async, timestamp


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    simulate = add_command(
        subparsers,
        "simulate",
        "publish realistic readings for the registry to the broker, as station gateways would",
        """
  hydro simulate                                   # a day of reports, 1 step (5 min) per second
  hydro simulate --storm 1 --speed 600             # a strong storm, 2 steps per second
  hydro simulate --stations 500 --steps 12 --speed 0   # one hour for 500 stations, unpaced
  hydro simulate --start "2026-05-07 08:00" --steps 288
""",
    )
    _simulation_options(simulate, default_speed=300.0)
    simulate.set_defaults(handler=_simulate)
    demo_command = add_command(
        subparsers,
        "demo",
        "run hydro on local defaults: PostgreSQL and Mosquitto in ./var, ingest and a simulated "
        "storm over the sample Guizhou registry (needs Debian's postgresql and mosquitto)",
        """
  hydro demo                  # reuses ./var if it is there (Ctrl-C keeps the data)
  hydro demo --reset          # start clean
  hydro demo --workdir /tmp/hydro-demo --storm 1 --speed 1200
""",
    )
    demo_command.add_argument("--workdir", type=Path, default=Path("var"), help="default: ./var")
    demo_command.add_argument("--reset", action="store_true", help="delete the work folder first")
    demo_command.add_argument(
        "--resume", action="store_true", help="keep the work folder's data (the default)"
    )
    _simulation_options(demo_command, default_speed=600.0)
    demo_command.set_defaults(handler=_demo)


def _simulation_options(parser: argparse.ArgumentParser, *, default_speed: float) -> None:
    parser.add_argument(
        "--speed",
        type=float,
        default=default_speed,
        help=f"simulated seconds per real second; 0 publishes unpaced (default {default_speed:g})",
    )
    parser.add_argument(
        "--storm", type=float, default=0.8, help="0 calm .. 1 a storm that crosses warning levels"
    )
    parser.add_argument("--steps", type=int, default=288, help="5-minute reports (288 = a day)")
    parser.add_argument("--stations", type=int, help="only the first N stations of the registry")
    parser.add_argument("--batch", type=int, default=100, help="readings per message, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--start", type=timestamp, help="simulated time of the first report (default: end now)"
    )


def _plan(args: argparse.Namespace, zone: str) -> app.SimulationPlan:
    return app.SimulationPlan(
        steps=args.steps,
        speed=args.speed,
        storm=args.storm,
        batch=args.batch,
        seed=args.seed,
        stations=args.stations,
        start=aware(args.start, zone),
    )


def _simulate(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    progress = run_async(app.run_simulation(config, _plan(args, config.registry.default_timezone)))
    print(f"published {progress.readings:,} readings in {progress.messages:,} messages")
    return 0


def _demo(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    plan = _plan(args, config.registry.default_timezone)
    demo.run_demo(config, args.workdir, plan, reset=args.reset)
    return 0
