"""``--timescaledb off|required|both``: which storage modes a benchmark that creates databases
measures. TimescaleDB is the primary store, so where the extension is installed the default runs
both modes in the same run (one machine, one load) and prints them side by side, keyed by
:func:`label`.
"""

from __future__ import annotations

import argparse

from hydro.local import timescaledb_installed

CHOICES = {"off": ("off",), "required": ("required",), "both": ("off", "required")}


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timescaledb",
        choices=tuple(CHOICES),
        default="both" if timescaledb_installed() else "off",
        help="storage modes to measure (database.timescaledb); default: both where the"
        " extension is installed, else off",
    )


def modes(choice: str) -> tuple[str, ...]:
    """The ``database.timescaledb`` values to run, in order; refuses TimescaleDB where it cannot
    be loaded, rather than measuring plain PostgreSQL under its name."""
    wanted = CHOICES[choice]
    if "required" in wanted and not timescaledb_installed():
        raise SystemExit(
            f"--timescaledb {choice}: the timescaledb extension is not installed in this"
            " machine's PostgreSQL (no timescaledb.control / timescaledb.so); use --timescaledb off"
        )
    return wanted


def label(mode: str) -> str:
    """The JSON key of a mode's figures."""
    return "postgresql" if mode == "off" else "timescaledb"
