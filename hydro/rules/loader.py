"""Reading ``alert_rules/*.yaml``: every problem with its file and line, unknown keys included."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from hydro.errors import Problem, RulesError
from hydro.loading import YamlSyntaxError, load_yaml, validation_problems
from hydro.rules.model import LevelRule, RainfallRule, Rule, RuleFile


@dataclass(frozen=True)
class RuleSet:
    """Every valid rule of the rule folder, in file order."""

    rules: tuple[Rule, ...] = ()

    # Cached: a report asks once per station, and isinstance on pydantic models is not cheap.
    @cached_property
    def level_rules(self) -> tuple[LevelRule, ...]:
        return tuple(r for r in self.rules if isinstance(r, LevelRule))

    @cached_property
    def rainfall_rules(self) -> tuple[RainfallRule, ...]:
        return tuple(r for r in self.rules if isinstance(r, RainfallRule))


def load_rules(folder: Path) -> RuleSet:
    rules, problems = check_rules(folder)
    if problems:
        raise RulesError(problems)
    return rules


def check_rules(folder: Path) -> tuple[RuleSet, list[Problem]]:
    if not folder.is_dir():
        return RuleSet(), [Problem(str(folder), "alert rule folder not found")]
    files = sorted(folder.glob("*.yaml"))
    if not files:
        return RuleSet(), [Problem(str(folder), "no *.yaml rule files in the alert rule folder")]
    problems: list[Problem] = []
    rules: list[Rule] = []
    first_seen: dict[str, str] = {}
    for file in files:
        try:
            located = load_yaml(file)
        except YamlSyntaxError as exc:
            problems.append(exc.problem)
            continue
        try:
            parsed = RuleFile.model_validate(located.data)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, located))
            continue
        for index, rule in enumerate(parsed.rules):
            where = f"{file}:{located.line_of(('rules', index))}"
            first = first_seen.setdefault(rule.id, where)
            if first != where:
                problems.append(
                    Problem(
                        str(file),
                        f"rule id {rule.id!r} is already used (first at {first})",
                        located.line_of(("rules", index, "id")),
                    )
                )
                continue
            rules.append(rule)
    return RuleSet(tuple(rules)), problems
