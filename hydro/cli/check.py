"""``hydro check``: validate everything an operator edits, before hydro runs on it."""

from __future__ import annotations

import argparse
import sys

from hydro import app
from hydro.cli._common import Subparsers, add_command


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    check = add_command(
        subparsers,
        "check",
        "validate config.yaml, HYDRO_* variables, the station registry and the alert rules;"
        " exit 1 on any problem",
        """
  hydro check
  hydro --config /etc/hydro/config.yaml check
""",
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    found = app.check(args.config)
    for problem in found:
        print(problem, file=sys.stderr)
    problems = [p for p in found if not p.warning]
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    warnings = f" ({len(found)} warning(s))" if found else ""
    print(f"configuration, station registry and alert rules are valid{warnings}")
    return 0
