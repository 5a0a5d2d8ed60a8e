"""YAML that remembers where each key was written, and the phone numbers operators' files name.

Operators edit config.yaml and alert_rules/*.yaml by hand; an error that says "line 12" saves them
a search. One loader serves ``hydro run`` and ``hydro check`` so both see the same problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from hydro.errors import Problem

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LocatedYaml:
    """The parsed document and the 1-based line of every mapping key and list item in it."""

    source: str
    data: Any
    lines: Mapping[KeyPath, int]

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of the deepest part of it that is written in the file.

        Parts that are not in the file are skipped, such as the tag a validator adds for a
        union member (which may even equal a key name), or a missing required key.
        """
        return self.lines.get(self._deepest_written(path, ()))

    def _deepest_written(self, rest: KeyPath, written: KeyPath) -> KeyPath:
        if not rest:
            return written
        skipping = self._deepest_written(rest[1:], written)
        if (*written, rest[0]) not in self.lines:
            return skipping
        taking = self._deepest_written(rest[1:], (*written, rest[0]))
        return taking if len(taking) > len(skipping) else skipping


def validation_problems(exc: ValidationError, located: LocatedYaml) -> list[Problem]:
    """pydantic's errors as operators read them: file, line, dotted key, plain message."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        problems.append(
            Problem(located.source, f"{dotted(loc)}: {plain_message(error)}", located.line_of(loc))
        )
    return problems


def dotted(loc: KeyPath) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def plain_message(error: ErrorDetails) -> str:
    return "unknown key" if error["type"] == "extra_forbidden" else error["msg"]


def parse_yaml(text: str, source: str) -> LocatedYaml:
    """Parses one YAML document; raises ProblemsError-friendly ``Problem`` via YamlSyntaxError."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(Problem(source, f"not valid YAML: {exc.problem}", line)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Problem(source, f"not valid YAML: {exc}")) from exc
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return LocatedYaml(source=source, data=data, lines=lines)


def load_yaml(path: Path) -> LocatedYaml:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlSyntaxError(Problem(str(path), f"cannot read: {exc}")) from exc
    return parse_yaml(text, str(path))


class YamlSyntaxError(Exception):
    """Raised by the loaders; carries the one problem that stopped parsing."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _collect_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            _collect_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), lines)


def normalise_phone(raw: str) -> str | None:
    """E.164 for a valid number; numbers without ``+`` are read as Chinese numbers."""
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def column_aliases(columns: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Each header a CSV file may have (a column's name, or one of its Chinese names) to the
    column's name: one header reading for the registry, contacts, curves and the roster."""
    return {alias: name for name, aliases in columns.items() for alias in (name, *aliases)}
