"""``hydro check``: validate everything an operator edits, before hydro runs on it."""

from __future__ import annotations

import argparse
import sys

from hydro import app
from hydro.cli._common import Command


def _check(args: argparse.Namespace) -> int:
    problems, warnings = app.check(args.config)
    for problem in [*problems, *warnings]:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    noted = f" ({len(warnings)} warning(s))" if warnings else ""
    print(f"configuration, station registry, alert rules and duty roster are valid{noted}")
    return 0


COMMANDS = (
    Command(
        "check",
        "validate config.yaml, HYDRO_* variables, the station registry, the alert rules and the"
        " duty roster; exit 1 on any problem (warnings alone: exit 0)",
        """
  hydro check
  hydro --config /etc/hydro/config.yaml check
""",
        _check,
    ),
)
