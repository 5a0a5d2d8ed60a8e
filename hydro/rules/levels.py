"""Which level rules a single water level crosses at a station, and at what time of year. Pure.

``hydro rules test`` uses this to show operators what a value would trigger; the scheduled
evaluation applies the same rules to every station at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hydro.models import Station
from hydro.rules.loader import RuleSet
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
        season = station.flood_season
        in_season = not rule.in_flood_season_only or (
            season is not None and season.contains(local_day)
        )
        verdicts.append(LevelVerdict(rule, level, rule.crossed(value, level), in_season))
    return verdicts


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
