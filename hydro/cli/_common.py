"""What the command modules share: help formatting, time arguments and asyncio entry."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hydro.config import parse_duration

T = TypeVar("T")

Subparsers = argparse._SubParsersAction  # argparse exposes no public name


def add_command(
    subparsers: Subparsers[argparse.ArgumentParser], name: str, summary: str, examples: str
) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with examples, formatted as written."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def timestamp(value: str) -> dt.datetime:
    """ISO 8601 for --since/--until; may lack an offset until :func:`aware` gives it one."""
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time") from exc


def aware(value: dt.datetime | None, zone: str) -> dt.datetime | None:
    """Reads a time typed without an offset in the deployment's zone (registry.default_timezone)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(zone))


def ago(value: str) -> dt.datetime:
    """'2h', '30m', '7d' before now, or an ISO 8601 time."""
    try:
        delta = parse_duration(value)
    except ValueError:
        return timestamp(value)
    assert isinstance(delta, dt.timedelta)
    return dt.datetime.now(dt.UTC) - delta


def labelled(values: Iterable[tuple[str, float | None]], spec: str = "") -> str:
    """``label value, label value`` of the values there are, each formatted with ``spec``."""
    return ", ".join(f"{label} {value:{spec}}" for label, value in values if value is not None)
