"""Reading ``alert_rules/*.yaml``: every problem with its file and line, unknown keys included."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from hydro.errors import Problem, RulesError
from hydro.loading import YamlSyntaxError, load_yaml, validation_problems
from hydro.rules.model import NO_LADDER, LadderPolicy, LevelRule, RainfallRule, Rule, RuleFile


@dataclass(frozen=True)
class RuleSet:
    """Every valid rule and 叫应 ladder of the rule folder, in file order."""

    rules: tuple[Rule, ...] = ()
    ladders: tuple[LadderPolicy, ...] = ()

    @cached_property
    def _ladders(self) -> dict[str, LadderPolicy | None]:
        by_id = {ladder.id: ladder for ladder in self.ladders}
        by_severity = {s: ladder for ladder in self.ladders for s in ladder.severities}
        found: dict[str, LadderPolicy | None] = {}
        for rule in self.rules:
            if rule.ladder is None:
                found[rule.id] = by_severity.get(rule.severity)
            else:
                found[rule.id] = by_id.get(rule.ladder)  # "none" is no ladder's id
        return found

    def ladder_of(self, rule_id: str) -> LadderPolicy | None:
        """The ladder of the rule's alerts; None: SMS only."""
        return self._ladders.get(rule_id)

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
    ladders: list[LadderPolicy] = []
    first_seen: dict[str, str] = {}
    ladder_lines: dict[str, tuple[str, int | None]] = {}  # rule id -> where it names a ladder
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
            if rule.ladder is not None:
                ladder_lines[rule.id] = (str(file), located.line_of(("rules", index, "ladder")))
        for index, ladder in enumerate(parsed.ladders):
            problem = _ladder_problem(ladder, ladders)
            if problem:
                problems.append(Problem(str(file), problem, located.line_of(("ladders", index))))
                continue
            ladders.append(ladder)
    known = {ladder.id for ladder in ladders} | {NO_LADDER}
    for rule in rules:
        if rule.ladder is not None and rule.ladder not in known:
            file_name, line = ladder_lines[rule.id]
            problems.append(
                Problem(
                    file_name,
                    f"rule {rule.id}: ladder {rule.ladder!r} is not defined in any ladders:"
                    f" section (known: {', '.join(sorted(known))})",
                    line,
                )
            )
    return RuleSet(tuple(rules), tuple(ladders)), problems


def _ladder_problem(ladder: LadderPolicy, earlier: list[LadderPolicy]) -> str | None:
    """Ids are unique across files, and one ladder at most is a severity's default."""
    for other in earlier:
        if other.id == ladder.id:
            return f"ladder {ladder.id}: id is already used"
        shared = set(other.severities) & set(ladder.severities)
        if shared:
            return (
                f"ladder {ladder.id}: severities {', '.join(sorted(shared))} already default to"
                f" ladder {other.id}"
            )
    if ladder.id == NO_LADDER:
        return f"ladder {ladder.id}: the id {NO_LADDER!r} means no ladder"
    return None
