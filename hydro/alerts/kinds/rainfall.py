"""Rainfall rules: each new report's windows, read from a ring of every station's recent rain.

The ring (5-minute slots) is loaded from the stored readings at start and after a failed tick,
and takes each tick's reports before evaluation, so a rainfall window costs no query.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from hydro.alerts.kind import Described, FamilyKind, Outcome, Roster, Tick, Transition, text
from hydro.config import AlertingConfig
from hydro.models import AlertChangeKind
from hydro.rules import RainfallRule, RuleSet
from hydro.rules.evaluate import BoolArray, FamilyState, IntArray, NewReadings
from hydro.rules.rainfall import (
    SLOT_SECONDS,
    RainfallTable,
    RainRing,
    evaluate_rainfall,
    hundredths,
    slot_of,
)
from hydro.store.alerts import OpenAlertState
from hydro.store.db import Connection
from hydro.store.history import rainfall_by_slot

log = logging.getLogger(__name__)

# Rainfall reports up to a day late still find their whole windows in the ring; older ones are
# stored and reported, but no rainfall rule evaluates them.
RAIN_BACKFILL_SLOTS = 86400 // SLOT_SECONDS


class Rainfall(FamilyKind[RainfallRule]):
    def __init__(self, rules: RuleSet, roster: Roster, config: AlertingConfig) -> None:
        self._table = RainfallTable.build(rules, roster.stations)
        everyone = [rule for family in self._table.rules for rule in family]
        super().__init__(roster, config, self._table.families, reminded=everyone, names_open=True)
        self._ring = RainRing(len(roster), self._table.longest + RAIN_BACKFILL_SLOTS)

    async def load(
        self, conn: Connection, alerts: Sequence[OpenAlertState], now: dt.datetime
    ) -> None:
        await super().load(conn, alerts, now)
        if self.families:
            self._ring.advance(_slot(now))
            await self._reload(conn, None)

    async def read(self, conn: Connection, tick: Tick) -> NewReadings | None:
        """Puts the tick's reports in the ring (a corrected report, or two within one slot:
        the stored readings say what is true); returns those the ring holds."""
        if not self.families:
            return None
        readings = tick.rainfall
        slots = slot_of(readings.time)
        self._ring.advance(max(_slot(tick.now), int(slots.max(initial=0))))
        refused = self._ring.put(readings.station, slots, hundredths(readings.value))
        held = self._ring.holds(slots)
        if (refused & held).any():
            await self._reload(conn, np.unique(readings.station[refused & held]))
        if not held.all():
            codes = sorted(
                {self._roster.stations[i].code for i in readings.station[~held].tolist()}
            )
            log.warning(
                "%d rainfall reports more than a day old are stored but not evaluated by the"
                " rainfall rules: station=%s",
                int((~held).sum()),
                ",".join(codes[:20]) + (",..." if len(codes) > 20 else ""),
            )
        return NewReadings(*(column[held] for column in dataclasses.astuple(readings)))

    async def _reload(self, conn: Connection, stations: IntArray | None) -> None:
        """The ring's slots of ``stations`` (None: all) from the stored readings."""
        after = dt.datetime.fromtimestamp(
            (self._ring.head - self._ring.span) * SLOT_SECONDS, dt.UTC
        )
        codes = None if stations is None else [self._roster.stations[i].code for i in stations]
        index = self._roster.index
        rows = [
            row
            for row in await rainfall_by_slot(conn, SLOT_SECONDS, after, codes)
            if row[0] in index
        ]
        slot = np.array([k for _, k, _ in rows], dtype=np.int64)
        self._ring.advance(int(slot.max(initial=0)))  # reports ahead of the clock
        self._ring.replace(
            np.arange(len(self._roster)) if stations is None else stations,
            np.array([index[code] for code, _, _ in rows], dtype=np.int64),
            slot,
            hundredths(np.array([mm for _, _, mm in rows], dtype=float)),
        )

    def evaluate(
        self, tick: Tick, data: NewReadings | None, in_alert: BoolArray
    ) -> Outcome[list[FamilyState]]:
        if data is None:
            return self._outcome(self._states, [])
        states, transitions = evaluate_rainfall(
            self._table, self._states, data, self._ring, clear_after=self._config.clear_after
        )
        return self._outcome(states, self._changes(transitions, self._describe, tick))

    def _describe(self, t: Transition) -> Described:
        rule = self._table.rules[t.family][t.rank - 1]
        template = rule.clear_message if t.change is AlertChangeKind.CLEAR else rule.message
        station = self._roster.stations[t.station]
        body = text(template, rule, station, t.observed_at, t.value, **_window(rule, t.missing))
        return Described(rule, rule.family, t.value, body)

    def _repeated(
        self, rule: RainfallRule, station: int, seen: dt.datetime, level: float | None
    ) -> tuple[float | None, dict[str, Any]]:
        """The rule's window ending at the station's latest report."""
        acc = self._ring.accumulations(
            np.array([station]), slot_of(np.array([int(seen.timestamp())])), [rule.slots]
        )
        return float(acc.mm(rule.slots)[0]), _window(rule, int(acc.missing[0, 0]))


def _slot(now: dt.datetime) -> int:
    return int(slot_of(np.array([int(now.timestamp())]))[0])


def _window(rule: RainfallRule, missing: int) -> dict[str, Any]:
    """What a rainfall message may say beyond the value: the window and how much of it had no
    report."""
    return {
        "window": rule.window,
        "threshold": rule.threshold,
        "missing": dt.timedelta(seconds=missing * SLOT_SECONDS),
    }
