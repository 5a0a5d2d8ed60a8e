"""What the command modules share: commands described as data, time arguments, asyncio entry."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hydro import app
from hydro.config import Config, parse_duration

T = TypeVar("T")

Subparsers = argparse._SubParsersAction  # argparse exposes no public name
Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Option:
    """An argument as ``add_argument`` takes it: its flags (or name) and its keywords."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any]


def option(*flags: str, **settings: Any) -> Option:
    return Option(flags, settings)


@dataclass(frozen=True)
class OneOf:
    """Options of which at most one may be given (``required``: exactly one)."""

    options: tuple[Option, ...]
    required: bool = False


@dataclass(frozen=True)
class Command:
    """A command as an operator sees it; :func:`add` builds its parser. One with ``commands``
    only groups them (``hydro alerts list``); the others run ``handler``."""

    name: str
    summary: str
    examples: str  # its --help ends with them, formatted as written
    handler: Handler | None = None
    options: tuple[Option | OneOf, ...] = ()
    commands: tuple[Command, ...] = ()
    metavar: str = "COMMAND"  # what the usage line calls a sub-command


def add(subparsers: Subparsers[argparse.ArgumentParser], command: Command) -> None:
    parser = subparsers.add_parser(
        command.name,
        help=command.summary,
        description=command.summary,
        epilog="examples:\n" + command.examples.strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for item in command.options:
        if isinstance(item, OneOf):
            group = parser.add_mutually_exclusive_group(required=item.required)
            for each in item.options:
                group.add_argument(*each.flags, **each.settings)
        else:
            parser.add_argument(*item.flags, **item.settings)
    if command.commands:
        below = parser.add_subparsers(
            dest=f"{command.name}_command", metavar=command.metavar, required=True
        )
        for sub in command.commands:
            add(below, sub)
    if command.handler is not None:
        parser.set_defaults(handler=command.handler)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def serving(service: Callable[[Config], Coroutine[Any, Any, object]]) -> Handler:
    """The handler of a command that runs ``service`` until Ctrl-C or SIGTERM."""

    def handler(args: argparse.Namespace) -> int:
        run_async(service(app.configure(args.config)))
        return 0

    return handler


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
