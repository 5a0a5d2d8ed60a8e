"""Rate-of-rise rules: each new level against the lowest of the window before it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hydro.alerts.kind import Described, FamilyKind, Outcome, Roster, Tick, Transition, text
from hydro.config import AlertingConfig
from hydro.models import AlertChangeKind
from hydro.rules import RateOfRiseRule, RuleSet
from hydro.rules.evaluate import (
    BoolArray,
    FamilyState,
    FloatArray,
    IntArray,
    NewReadings,
    evaluate_thresholds,
    rises,
    single_threshold_table,
)
from hydro.store.db import Connection
from hydro.store.history import water_levels


@dataclass(frozen=True)
class History:
    """The stored levels of the stations with new readings over the longest window before
    them, by station and time; ``is_new`` marks this tick's readings."""

    station: IntArray
    time: IntArray
    level: FloatArray
    is_new: BoolArray


class Rises(FamilyKind[RateOfRiseRule]):
    def __init__(self, rules: RuleSet, roster: Roster, config: AlertingConfig) -> None:
        self._rules = tuple(r for r in rules.rules if isinstance(r, RateOfRiseRule))
        self._tables = [
            single_threshold_table(rule.rise, roster.applies(rule.kinds), rule.id)
            for rule in self._rules
        ]
        super().__init__(roster, config, tuple(rule.id for rule in self._rules))

    async def read(self, conn: Connection, tick: Tick) -> History | None:
        readings = tick.levels
        if not self._rules or readings.station.size == 0:
            return None
        window = max(int(rule.window.total_seconds()) for rule in self._rules)
        rows = await water_levels(
            conn,
            sorted({self._roster.stations[i].code for i in readings.station.tolist()}),
            dt.datetime.fromtimestamp(int(readings.time.min()) - window, dt.UTC),
            dt.datetime.fromtimestamp(int(readings.time.max()), dt.UTC),
        )
        station = np.array([self._roster.index[code] for code, _, _ in rows], dtype=np.int64)
        time = np.array([t for _, t, _ in rows], dtype=np.int64)
        fresh = set(zip(readings.station.tolist(), readings.time.tolist(), strict=True))
        is_new = np.array(
            [(s, t) in fresh for s, t in zip(station.tolist(), time.tolist(), strict=True)],
            dtype=bool,
        )
        return History(station, time, np.array([v for _, _, v in rows], dtype=float), is_new)

    def evaluate(
        self, tick: Tick, data: History | None, in_alert: BoolArray
    ) -> Outcome[list[FamilyState]]:
        if data is None:
            return self._outcome(self._states, [])
        new = data.is_new
        # Transitions come from this tick's readings only: their levels are all describe needs.
        level_at = dict(
            zip(
                zip(data.station[new].tolist(), data.time[new].tolist(), strict=True),
                data.level[new].tolist(),
                strict=True,
            )
        )
        states, changes = [], []
        for rule, table, state in zip(self._rules, self._tables, self._states, strict=True):
            rise = rises(
                data.station, data.time, data.level, window=int(rule.window.total_seconds())
            )
            (updated,), transitions = evaluate_thresholds(
                table,
                [state],
                NewReadings(
                    data.station[new], data.time[new], rise[new], np.zeros(int(new.sum()), np.int64)
                ),
                margin=self._config.clear_margin,
                clear_after=self._config.clear_after,
            )
            states.append(updated)

            def describe(t: Transition, rule: RateOfRiseRule = rule) -> Described:
                level = level_at[(t.station, int(t.observed_at.timestamp()))]
                template = rule.clear_message if t.change is AlertChangeKind.CLEAR else rule.message
                station = self._roster.stations[t.station]
                body = text(
                    template, rule, station, t.observed_at, level, rise=t.value, window=rule.window
                )
                return Described(rule, rule.id, level, body)

            changes += self._changes(transitions, describe, tick)
        return self._outcome(states, changes)
