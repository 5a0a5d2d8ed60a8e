"""Which level rules a single water level crosses at a station, at what time of year, and what a
threshold alert's transition says. Pure.

``hydro rules test`` and the daily reports use this to judge one value; the scheduled evaluation
applies the same rules to every station at once (``rules/evaluate.py``). One table of cases runs
through both (tests/unit/test_rules_evaluate.py), so the two cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from hydro.models import AlertChangeKind, Station
from hydro.rules.loader import RuleSet
from hydro.rules.messages import render
from hydro.rules.model import LevelRule


@dataclass(frozen=True)
class LevelVerdict:
    rule: LevelRule
    level: float
    crossed: bool
    in_season: bool  # False only for a season-bound rule outside the station's flood season

    @property
    def fires(self) -> bool:
        return self.crossed and self.in_season


def level_verdicts(
    rules: RuleSet, station: Station, value: float, observed_at: dt.datetime
) -> list[LevelVerdict]:
    """Every level rule that applies to the station (its kind, a level in the registry)."""
    local_day = observed_at.astimezone(station.tz).date()
    verdicts = []
    for rule in rules.level_rules:
        level = getattr(station, rule.level)
        if station.kind not in rule.kinds or level is None:
            continue
        in_season = _in_season(rule, station, local_day)
        verdicts.append(LevelVerdict(rule, level, rule.crossed(value, level), in_season))
    return verdicts


def _in_season(rule: LevelRule, station: Station, local_day: dt.date) -> bool:
    season = station.flood_season
    return not rule.in_flood_season_only or (season is not None and season.contains(local_day))


def threshold_sms(
    family: Sequence[LevelRule],
    station: Station,
    change: AlertChangeKind,
    rank: int,
    *,
    observed_at: dt.datetime,
    value: float,
) -> str | None:
    """The text of a threshold alert's transition, None when its rule has no template for it.

    ``rank`` is the rank after the change (for a clear, the rank that cleared); ``family`` the
    family's rules by rank. A clear or a step down names the level the water fell below (for a
    clear, the lowest that applies: an escalated alert clears below 警戒, not 保证) and the
    warning it is about: the one that ends, or the one it steps down to.
    """
    rule = family[rank - 1]
    level_rule = rule
    template: str | None = rule.message
    if change in (AlertChangeKind.CLEAR, AlertChangeKind.STEP_DOWN):
        above = 0 if change is AlertChangeKind.CLEAR else rank
        level_rule = _lowest_applying(family, station, above, observed_at) or level_rule
        template = rule.clear_message if change is AlertChangeKind.CLEAR else rule.step_down_message
    if template is None:
        return None
    return render(
        template,
        station,
        observed_at=observed_at,
        severity=rule.severity,
        value=value,
        level_field=level_rule.level,
    )


def _lowest_applying(
    family: Sequence[LevelRule], station: Station, above: int, observed_at: dt.datetime
) -> LevelRule | None:
    """The lowest-ranked rule above ``above`` that applies to the station at that time."""
    local_day = observed_at.astimezone(station.tz).date()
    for rule in family[above:]:
        if (
            station.kind in rule.kinds
            and getattr(station, rule.level) is not None
            and _in_season(rule, station, local_day)
        ):
            return rule
    return None


def alert_levels(verdicts: list[LevelVerdict]) -> list[LevelVerdict]:
    """Per family, the highest-ranked rule that fires: the level an alert would stand at."""
    highest: dict[str, LevelVerdict] = {}
    for verdict in verdicts:
        if not verdict.fires:
            continue
        held = highest.get(verdict.rule.family)
        if held is None or verdict.rule.rank > held.rule.rank:
            highest[verdict.rule.family] = verdict
    return list(highest.values())
