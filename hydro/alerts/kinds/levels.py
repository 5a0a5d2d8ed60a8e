"""Threshold rules: a water level against the station's characteristic levels, by family."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hydro.alerts.kind import Described, FamilyKind, Outcome, Roster, Tick, Transition
from hydro.config import AlertingConfig
from hydro.rules import LevelRule, RuleSet
from hydro.rules.evaluate import BoolArray, FamilyState, ThresholdTable, evaluate_thresholds
from hydro.rules.levels import threshold_sms
from hydro.store.db import Connection


class Levels(FamilyKind[LevelRule]):
    def __init__(self, rules: RuleSet, roster: Roster, config: AlertingConfig) -> None:
        self._table = ThresholdTable.build(rules, roster.stations)
        everyone = [rule for family in self._table.rules for rule in family]
        super().__init__(roster, config, self._table.families, reminded=everyone, names_open=True)

    async def read(self, conn: Connection, tick: Tick) -> None:
        return None

    def evaluate(self, tick: Tick, data: None, in_alert: BoolArray) -> Outcome[list[FamilyState]]:
        states, transitions = evaluate_thresholds(
            self._table,
            self._states,
            tick.levels,
            margin=self._config.clear_margin,
            clear_after=self._config.clear_after,
        )
        return self._outcome(states, self._changes(transitions, self._describe, tick))

    def _describe(self, t: Transition) -> Described:
        family = self._table.rules[t.family]
        rule = family[t.rank - 1]
        station = self._roster.stations[t.station]
        body = threshold_sms(
            family, station, t.change, t.rank, observed_at=t.observed_at, value=t.value
        )
        return Described(rule, rule.family, t.value, body)

    def _repeated(
        self, rule: LevelRule, station: int, seen: dt.datetime, level: float | None
    ) -> tuple[float | None, dict[str, Any]]:
        return level, {"level_field": rule.level}
