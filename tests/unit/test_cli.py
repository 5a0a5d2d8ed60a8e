"""Every command explains itself: --help works and ends with examples."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from hydro.cli import build_parser, main


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:  # argparse has no public way to walk sub-commands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from commands(sub, (*path, name))


ALL = sorted(commands(build_parser()))


def test_the_operator_commands_exist() -> None:
    expected = {
        ("run",),
        ("ingest",),
        ("demo",),
        ("simulate",),
        ("check",),
        ("status",),
        ("db", "migrate"),
        ("quarantine", "list"),
        ("stations", "generate"),
        ("stations", "list"),
        ("rules", "test"),
        ("alerts", "list"),
        ("alerts", "show"),
        ("alerts", "ack"),
        ("alerts", "confirm"),
        ("outbox", "list"),
        ("report", "daily"),
        ("gateway", "sl651"),
    }
    assert expected <= set(ALL)


@pytest.mark.parametrize("command", ALL, ids=" ".join)
def test_help_ends_with_examples(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"hydro {' '.join(command)}" in out.split("examples:")[1]
