"""One evaluation tick: new readings from the journal -> rule kinds -> alert changes + SMS.

The tick is one transaction: it takes the journal, records the changes and the outbox rows
they cause, and advances its cursor, all or nothing. Inside it every database read comes first
(the journal, the latest observations, what each kind reads, the reminders due), then every
kind evaluates at the tick's time without I/O, then everything is written. Each kind's state
(the rank an alert stands at and its readings below clearing) lives in the open alerts, loaded
once at start and kept in memory, replaced only after a commit. One clock, injected, decides
everything: a replay or the demo's fast clock reaches reminders too.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg_pool

from hydro.alerts.kind import Kind, Outcome, Roster, Tick
from hydro.alerts.kinds import KINDS
from hydro.config import AlertingConfig
from hydro.models import AlertChange
from hydro.rules import RuleSet
from hydro.rules.evaluate import FloatArray, IntArray, NewReadings, local_month_day
from hydro.stations import Registry
from hydro.store.alerts import (
    DueReminder,
    RecordedChange,
    due_reminders,
    open_alert_states,
    record_changes,
    set_below_counts,
)
from hydro.store.db import Connection, connection
from hydro.store.history import latest_observations
from hydro.store.journal import JournalTake, lock_evaluation, take_journal
from hydro.store.links import Links

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickReport:
    readings: int
    changes: tuple[AlertChange, ...]
    seconds: float


class AlertEvaluator:
    def __init__(
        self,
        config: AlertingConfig,
        registry: Registry,
        rules: RuleSet,
        pool: psycopg_pool.AsyncConnectionPool,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        links: Links | None = None,
    ) -> None:
        self._config = config
        # 叫应: the SMS of rules whose ladder asks for it end with a confirmation link.
        self._links = links
        self._linked_rules = frozenset(
            rule.id for rule in rules.rules if (ladder := rules.ladder_of(rule.id)) and ladder.link
        )
        self._roster = Roster(tuple(registry.stations))
        self._zones = sorted({s.timezone for s in self._roster.stations})
        self._zone_of = np.array([self._zones.index(s.timezone) for s in self._roster.stations])
        self._kinds: tuple[Kind[Any, Any], ...] = tuple(
            kind(rules, self._roster, config) for kind in KINDS
        )
        self._reminded = tuple(family for kind in self._kinds for family in kind.reminded)
        self._pool = pool
        self._clock = clock
        self._stale = False

    async def load_state(self) -> None:
        """The open alerts are the state: a restart continues exactly where it stopped."""
        async with connection(self._pool, "loading open alerts") as conn:
            await self._load_state(conn, self._clock())

    async def _load_state(self, conn: Connection, now: dt.datetime) -> None:
        open_alerts = await open_alert_states(conn)
        families = {family for kind in self._kinds for family in kind.families}
        for alert in open_alerts:
            if alert.station not in self._roster.index or alert.family not in families:
                log.warning(
                    "alert for station=%s family=%s is no longer in the registry or rules",
                    alert.station,
                    alert.family,
                )
        for kind in self._kinds:
            await kind.load(conn, open_alerts, now)
        log.info("evaluator: %d open alerts loaded", len(open_alerts))

    async def tick(self) -> TickReport:
        try:
            return await self._tick()
        except Exception:
            # Whatever failed, the next tick starts again from what the database holds.
            self._stale = True
            raise

    async def _tick(self) -> TickReport:
        now = self._clock()
        timer = time.perf_counter()
        async with connection(self._pool, "evaluating alerts") as conn:
            if not await lock_evaluation(conn):
                log.debug("another hydro process is evaluating; skipping this tick")
                self._stale = True  # the other process changes the alerts meanwhile
                return TickReport(0, (), 0.0)
            if self._stale:
                await self._load_state(conn, now)
                self._stale = False
            taken = await take_journal(conn)
            tick = self._tick_of(taken, await latest_observations(conn), now)
            data = [await kind.read(conn, tick) for kind in self._kinds]
            due = await due_reminders(conn, self._reminded, self._config.repeat_interval, now=now)
            outcomes = self._evaluate(tick, data)
            changes = [change for outcome in outcomes for change in outcome.changes]
            changes += self._reminders(due, changes, tick)
            recorded = await record_changes(
                conn, changes, now=now, links=self._links, linked_rules=self._linked_rules
            )
            await set_below_counts(conn, [c for outcome in outcomes for c in outcome.below_counts])
        for kind, outcome in zip(self._kinds, outcomes, strict=True):
            kind.commit(outcome.state)  # only now: the database holds the same
        _log_changes(changes, recorded)
        return TickReport(len(taken), tuple(changes), time.perf_counter() - timer)

    def _evaluate(self, tick: Tick, data: Sequence[object]) -> list[Outcome[Any]]:
        """Every kind in order; a kind sees where the kinds before it leave alerts open."""
        in_alert = np.zeros(len(self._roster), dtype=bool)
        outcomes = []
        for kind, kind_data in zip(self._kinds, data, strict=True):
            outcome = kind.evaluate(tick, kind_data, in_alert)
            if outcome.in_alert is not None:
                in_alert = in_alert | outcome.in_alert
            outcomes.append(outcome)
        return outcomes

    def _reminders(
        self, due: Sequence[DueReminder], changes: Sequence[AlertChange], tick: Tick
    ) -> list[AlertChange]:
        """Reminders of the due alerts this tick did not change: an alert that just opened,
        escalated or stepped down was just notified, and one that cleared is over."""
        changed = {(change.station, change.family) for change in changes}
        reminders = []
        for alert in due:
            if (alert.station, alert.family) in changed:
                continue
            for kind in self._kinds:
                if alert.family in kind.reminded:
                    reminder = kind.remind(alert, tick)
                    if reminder is not None:
                        reminders.append(reminder)
        return reminders

    def _tick_of(
        self,
        taken: JournalTake,
        latest: Sequence[tuple[str, int, float | None]],
        now: dt.datetime,
    ) -> Tick:
        index = np.array([self._roster.index.get(code, -1) for code in taken.stations], np.int64)
        last_seen = np.full(len(self._roster), np.nan)
        latest_level = np.full(len(self._roster), np.nan)
        for code, seconds, level in latest:
            station = self._roster.index.get(code)
            if station is not None:
                last_seen[station] = seconds
                latest_level[station] = np.nan if level is None else level
        return Tick(
            now=now,
            levels=self._readings(index, taken.times, taken.water_levels),
            rainfall=self._readings(index, taken.times, taken.rainfalls),
            last_seen=last_seen,
            latest_level=latest_level,
        )

    def _readings(self, index: IntArray, times: IntArray, values: FloatArray) -> NewReadings:
        """The journal's readings of registered stations that carry a value of this kind."""
        known = (index >= 0) & np.isfinite(values)
        index, times, values = index[known], times[known], values[known]
        mmdd = local_month_day(times, self._zones, self._zone_of[index])
        return NewReadings(index, times, values, mmdd)


def _log_changes(changes: Sequence[AlertChange], recorded: Sequence[RecordedChange]) -> None:
    for change, ids in zip(changes, recorded, strict=True):
        log.info(
            "alert=%d %s station=%s rule=%s value=%.2f at %s%s outbox=%s",
            ids.alert_id,
            change.change,
            change.station,
            change.rule_id,
            float("nan") if change.value is None else change.value,
            change.observed_at.isoformat(),
            " (late: nobody paged)" if change.late else "",
            ",".join(map(str, ids.outbox_ids)) or "-",
        )
