"""The ``hydro`` command: one sub-command module per operator task.

Each module in this package describes its commands as data (``COMMANDS``: name, summary,
examples, options, handler); one function builds argparse from them, so every ``--help`` ends with
examples. Commands return an exit code; errors hydro raises on purpose print as one clear message
(exit 1 for bad input or configuration, 2 for usage), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hydro import __version__
from hydro.cli import (
    alerts,
    api,
    check,
    db,
    gateway,
    quarantine,
    readings,
    report,
    rules,
    run,
    simulate,
    sms,
)
from hydro.cli import stations as stations_cli
from hydro.cli._common import add
from hydro.errors import HydroError, ProblemsError

COMMAND_MODULES = (
    run,
    api,
    gateway,
    simulate,
    check,
    db,
    alerts,
    quarantine,
    readings,
    stations_cli,
    rules,
    report,
    sms,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydro",
        description="Flood-monitoring ingestion and alerting.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hydro {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $HYDRO_CONFIG, else ./config.yaml if present, else defaults)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        for command in module.COMMANDS:
            add(subparsers, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ProblemsError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except HydroError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        logging.getLogger("hydro").info("interrupted")
        return 130
    return code
