"""Silence rules: a station with no observation for longer than its rule allows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from hydro.alerts.kind import (
    Described,
    Outcome,
    Roster,
    Tick,
    Transition,
    text,
    to_changes,
)
from hydro.config import AlertingConfig
from hydro.models import AlertChange, AlertChangeKind
from hydro.rules import RuleSet, SilenceRule
from hydro.rules.evaluate import (
    BoolArray,
    Change,
    Transitions,
    evaluate_silence,
    silence_after,
)
from hydro.store.alerts import DueReminder, OpenAlertState
from hydro.store.db import Connection

Silent = list[BoolArray]  # per rule, per station


class Silences:
    def __init__(self, rules: RuleSet, roster: Roster, config: AlertingConfig) -> None:
        self._roster = roster
        self._rules = tuple(r for r in rules.rules if isinstance(r, SilenceRule))
        self._applies = [roster.applies(rule.kinds) for rule in self._rules]
        intervals = np.array(
            [int(s.report_interval.total_seconds()) for s in roster.stations], dtype=np.int64
        )
        self._after = [
            silence_after(int(rule.after.total_seconds()), intervals) for rule in self._rules
        ]
        self.families = tuple(rule.id for rule in self._rules)
        self.reminded: tuple[str, ...] = ()
        self._silent: Silent = [np.zeros(len(roster), dtype=bool) for _ in self._rules]

    async def load(
        self, conn: Connection, alerts: Sequence[OpenAlertState], now: dt.datetime
    ) -> None:
        silent = [np.zeros(len(self._roster), dtype=bool) for _ in self._rules]
        rule_of = {family: i for i, family in enumerate(self.families)}
        for alert in alerts:
            station, rule = self._roster.index.get(alert.station), rule_of.get(alert.family)
            if station is not None and rule is not None:
                silent[rule][station] = True
        self._silent = silent

    async def read(self, conn: Connection, tick: Tick) -> None:
        return None

    def evaluate(self, tick: Tick, data: None, in_alert: BoolArray) -> Outcome[Silent]:
        """``in_alert``: stations with an open level or rainfall alert, which a silence names
        (the alert stays open: gauges are often destroyed at the peak)."""
        now = int(tick.now.timestamp())
        silent, changes = [], []
        for r, (rule, applies, after, before) in enumerate(
            zip(self._rules, self._applies, self._after, self._silent, strict=True)
        ):
            result = evaluate_silence(tick.last_seen, before, applies, now=now, after=after)
            silent.append(result.silent)
            station = np.concatenate([result.began, result.ended])
            change = np.r_[
                np.full(result.began.size, int(Change.OPEN)),
                np.full(result.ended.size, int(Change.CLEAR)),
            ].astype(np.int64)
            transitions = Transitions(
                family=np.full(station.size, r, dtype=np.int64),
                station=station,
                change=change,
                rank=np.ones(station.size, dtype=np.int64),
                time=tick.last_seen[station].astype(np.int64),
                value=np.full(station.size, np.nan),
                missing=np.zeros(station.size, dtype=np.int64),
            )

            def describe(t: Transition, rule: SilenceRule = rule) -> Described:
                return Described(rule, rule.id, None, self._text(rule, t, tick.now, in_alert))

            changes += to_changes(transitions, self._roster, describe, late_before=None)
        return Outcome(silent, changes, [])

    def _text(
        self, rule: SilenceRule, t: Transition, now: dt.datetime, in_alert: BoolArray
    ) -> str | None:
        if t.change is AlertChangeKind.CLEAR:
            template = rule.clear_message
        elif in_alert[t.station] and rule.during_alert_message:
            template = rule.during_alert_message
        else:
            template = rule.message
        opened = t.change is AlertChangeKind.OPEN
        return text(
            template,
            rule,
            self._roster.stations[t.station],
            t.observed_at,
            None,
            silent_for=now - t.observed_at if opened else None,
        )

    def remind(self, alert: DueReminder, tick: Tick) -> AlertChange | None:
        return None

    def commit(self, state: Silent) -> None:
        self._silent = state
