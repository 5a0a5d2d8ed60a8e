"""One evaluation tick: new readings from the journal -> rules -> alert changes + SMS.

The tick is one transaction: it takes the journal, records the changes and the outbox rows
they cause, and advances its cursor, all or nothing. The per-station state (the rank an alert
stands at and its readings below clearing) lives in the open alerts, loaded once at start and
kept in memory, replaced only after a commit. The recent rainfall of every station is kept in
memory too (a ring of 5-minute slots), loaded from the readings at start and after any failed
tick, so a rainfall window costs no query.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import psycopg_pool

from hydro.config import AlertingConfig
from hydro.models import AlertChange, AlertChangeKind, Notification, Station
from hydro.rules import LevelRule, RainfallRule, RateOfRiseRule, Rule, RuleSet, SilenceRule, render
from hydro.rules.evaluate import (
    Change,
    FamilyState,
    IntArray,
    NewReadings,
    ThresholdTable,
    Transitions,
    evaluate_silence,
    evaluate_thresholds,
    local_month_day,
    rises,
    silence_after,
    single_threshold_table,
)
from hydro.rules.levels import threshold_sms
from hydro.rules.rainfall import (
    SLOT_SECONDS,
    RainfallTable,
    RainRing,
    evaluate_rainfall,
    hundredths,
    slot_of,
)
from hydro.stations import Registry
from hydro.store.alerts import (
    DueReminder,
    due_reminders,
    open_alert_states,
    record_changes,
    set_below_counts,
)
from hydro.store.db import Connection, connection
from hydro.store.history import latest_observations, rainfall_by_slot, water_levels
from hydro.store.journal import lock_evaluation, take_journal

log = logging.getLogger(__name__)

REMINDER_PREFIX = "【预警持续】"
# Rainfall reports up to a day late still find their whole windows in the ring; older ones are
# stored and reported, but no rainfall rule evaluates them.
RAIN_BACKFILL_SLOTS = 86400 // SLOT_SECONDS
_KINDS = {
    Change.OPEN: AlertChangeKind.OPEN,
    Change.ESCALATE: AlertChangeKind.ESCALATE,
    Change.CLEAR: AlertChangeKind.CLEAR,
    Change.STEP_DOWN: AlertChangeKind.STEP_DOWN,
}


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
    ) -> None:
        self._config = config
        self._stations = registry.stations
        self._index = {s.code: i for i, s in enumerate(self._stations)}
        self._zones = sorted({s.timezone for s in self._stations})
        self._zone_of = np.array([self._zones.index(s.timezone) for s in self._stations])
        self._table = ThresholdTable.build(rules, self._stations)
        self._pool = pool
        self._clock = clock
        self._states = [FamilyState.empty(len(self._stations)) for _ in self._table.families]
        self._silence_rules = tuple(r for r in rules.rules if isinstance(r, SilenceRule))
        self._silence_applies = [
            np.array([s.kind in rule.kinds for s in self._stations]) for rule in self._silence_rules
        ]
        intervals = np.array(
            [int(s.report_interval.total_seconds()) for s in self._stations], dtype=np.int64
        )
        self._silence_after = [
            silence_after(int(rule.after.total_seconds()), intervals)
            for rule in self._silence_rules
        ]
        self._silent = [np.zeros(len(self._stations), dtype=bool) for _ in self._silence_rules]
        self._rise_rules = tuple(r for r in rules.rules if isinstance(r, RateOfRiseRule))
        self._rise_tables = [
            single_threshold_table(
                rule.rise, np.array([s.kind in rule.kinds for s in self._stations]), rule.id
            )
            for rule in self._rise_rules
        ]
        self._rising = [FamilyState.empty(len(self._stations)) for _ in self._rise_rules]
        self._rain_table = RainfallTable.build(rules, self._stations)
        self._wet = [FamilyState.empty(len(self._stations)) for _ in self._rain_table.families]
        self._ring = RainRing(len(self._stations), self._rain_table.longest + RAIN_BACKFILL_SLOTS)
        self._stale = False

    async def load_state(self) -> None:
        """The open alerts are the state: a restart continues exactly where it stopped."""
        async with connection(self._pool, "loading open alerts") as conn:
            await self._load_state(conn)

    async def _load_state(self, conn: Connection) -> None:
        open_alerts = await open_alert_states(conn)
        silences = {rule.id: i for i, rule in enumerate(self._silence_rules)}
        states = [FamilyState.empty(len(self._stations)) for _ in self._table.families]
        silent = [np.zeros(len(self._stations), dtype=bool) for _ in self._silence_rules]
        rising = [FamilyState.empty(len(self._stations)) for _ in self._rise_rules]
        wet = [FamilyState.empty(len(self._stations)) for _ in self._rain_table.families]
        ranked = {
            **{name: states[i] for i, name in enumerate(self._table.families)},
            **{rule.id: rising[i] for i, rule in enumerate(self._rise_rules)},
            **{name: wet[i] for i, name in enumerate(self._rain_table.families)},
        }
        for alert in open_alerts:
            station, state = self._index.get(alert.station), ranked.get(alert.family)
            if station is not None and alert.family in silences:
                silent[silences[alert.family]][station] = True
                continue
            if station is None or state is None:
                log.warning(
                    "alert for station=%s family=%s is no longer in the registry or rules",
                    alert.station,
                    alert.family,
                )
                continue
            state.rank[station] = alert.rank
            state.below[station] = alert.below_count
            state.held[station] = alert.below_held
        if self._rain_table.families:
            await self._reload_rain(conn, None)
        self._states = states
        self._silent = silent
        self._rising = rising
        self._wet = wet
        log.info("evaluator: %d open alerts loaded", len(open_alerts))

    async def tick(self) -> TickReport:
        try:
            return await self._tick()
        except Exception:
            # Whatever failed, the next tick starts again from what the database holds.
            self._stale = True
            raise

    async def _tick(self) -> TickReport:
        started = self._clock()
        timer = time.perf_counter()
        async with connection(self._pool, "evaluating alerts") as conn:
            if not await lock_evaluation(conn):
                log.debug("another hydro process is evaluating; skipping this tick")
                self._stale = True  # the other process changes the alerts meanwhile
                return TickReport(0, (), 0.0)
            if self._stale:
                await self._load_state(conn)
                self._stale = False
            taken = await take_journal(conn)
            index = np.array([self._index.get(code, -1) for code in taken.stations], dtype=np.int64)
            readings = self._readings(index, taken.times, taken.water_levels)
            new_states, transitions = evaluate_thresholds(
                self._table,
                self._states,
                readings,
                margin=self._config.clear_margin,
                clear_after=self._config.clear_after,
            )
            changes = self._ranked_changes(transitions, self._table.rules, now=started)
            new_rising, rise_changes = await self._rises(conn, readings, now=started)
            changes += rise_changes
            rain = self._readings(index, taken.times, taken.rainfalls)
            new_wet, rain_changes = await self._rainfall(conn, rain, now=started)
            changes += rain_changes
            latest = {code: (seen, level) for code, seen, level in await latest_observations(conn)}
            new_silent, silence_changes = self._silences(
                latest, [*new_states, *new_wet], now=started
            )
            changes += silence_changes
            recorded = await record_changes(conn, changes)
            # After the changes: an alert that just opened or escalated was just notified.
            due = await due_reminders(
                conn,
                (*self._table.families, *self._rain_table.families),
                self._config.repeat_interval,
            )
            reminders = self._reminders(due, latest)
            recorded += await record_changes(conn, reminders)
            changes += reminders
            await set_below_counts(
                conn,
                self._below_counts(self._states, new_states, self._table.families)
                + self._below_counts(
                    self._rising, new_rising, tuple(rule.id for rule in self._rise_rules)
                )
                + self._below_counts(self._wet, new_wet, self._rain_table.families),
            )
        self._states = new_states  # only now: the database holds the same
        self._silent = new_silent
        self._rising = new_rising
        self._wet = new_wet
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
        return TickReport(len(taken), tuple(changes), time.perf_counter() - timer)

    def _readings(self, index: IntArray, times: np.ndarray, values: np.ndarray) -> NewReadings:
        """The journal's readings of registered stations that carry a value of this kind."""
        known = (index >= 0) & np.isfinite(values)
        index, times, values = index[known], times[known], values[known]
        mmdd = local_month_day(times, self._zones, self._zone_of[index])
        return NewReadings(index, times, values, mmdd)

    def _ranked_changes(
        self,
        transitions: Transitions,
        rules: tuple[tuple[LevelRule, ...], ...] | tuple[tuple[RainfallRule, ...], ...],
        *,
        now: dt.datetime,
    ) -> list[AlertChange]:
        """Changes of families whose rules have ranks (threshold and rainfall rules)."""
        oldest_paged = now - self._config.max_age
        changes = []
        for f, s, c, rank, t, value, missing in zip(
            transitions.family.tolist(),
            transitions.station.tolist(),
            transitions.change.tolist(),
            transitions.rank.tolist(),
            transitions.time.tolist(),
            transitions.value.tolist(),
            transitions.missing.tolist(),
            strict=True,
        ):
            family = rules[f]
            rule = family[rank - 1]
            kind = _KINDS[Change(c)]
            observed_at = dt.datetime.fromtimestamp(t, dt.UTC)
            station = self._stations[s]
            if isinstance(rule, LevelRule):
                text = threshold_sms(
                    cast(tuple[LevelRule, ...], family),
                    station,
                    kind,
                    rank,
                    observed_at=observed_at,
                    value=value,
                )
            else:
                template = rule.clear_message if kind is AlertChangeKind.CLEAR else rule.message
                text = _text(
                    template, rule, station, observed_at, value, **_situation(rule, missing)
                )
            changes.append(
                _change(
                    rule,
                    station,
                    kind,
                    family=rule.family,
                    rank=rank,
                    observed_at=observed_at,
                    value=value,
                    late=observed_at < oldest_paged,
                    body=text,
                )
            )
        return changes

    def _below_counts(
        self,
        old_states: list[FamilyState],
        new_states: list[FamilyState],
        families: tuple[str, ...],
    ) -> list[tuple[str, str, int, int]]:
        counts: list[tuple[str, str, int, int]] = []
        for family, old, new in zip(families, old_states, new_states, strict=True):
            moved = np.flatnonzero(
                ((new.below != old.below) | (new.held != old.held)) & (new.rank > 0)
            )
            counts.extend(
                (self._stations[s].code, family, int(new.below[s]), int(new.held[s])) for s in moved
            )
        return counts

    def _reminders(
        self, due: list[DueReminder], latest: dict[str, tuple[int, float | None]]
    ) -> list[AlertChange]:
        """The rule's message again, with the station's latest reading (for a rainfall rule,
        its window ending there), marked as ongoing."""
        rules: dict[str, LevelRule | RainfallRule] = {
            rule.id: rule for family in self._table.rules for rule in family
        }
        rules.update((rule.id, rule) for family in self._rain_table.rules for rule in family)
        reminders = []
        for alert in due:
            index, rule = self._index[alert.station], rules.get(alert.rule_id)
            if rule is None or alert.station not in latest:
                continue
            seconds, value = latest[alert.station]
            missing = 0
            if isinstance(rule, RainfallRule):
                acc = self._ring.accumulations(
                    np.array([index]), slot_of(np.array([seconds])), [rule.slots]
                )
                value, missing = float(acc.mm(rule.slots)[0]), int(acc.missing[0, 0])
            reminders.append(
                _change(
                    rule,
                    self._stations[index],
                    AlertChangeKind.REMIND,
                    family=alert.family,
                    rank=alert.rank,
                    observed_at=dt.datetime.fromtimestamp(seconds, dt.UTC),
                    value=value,
                    late=False,
                    body=_text(
                        REMINDER_PREFIX + rule.message,
                        rule,
                        self._stations[index],
                        dt.datetime.fromtimestamp(seconds, dt.UTC),
                        value,
                        **_situation(rule, missing),
                    ),
                )
            )
        return reminders

    def _silences(
        self,
        latest: dict[str, tuple[int, float | None]],
        level_states: list[FamilyState],
        *,
        now: dt.datetime,
    ) -> tuple[list[np.ndarray], list[AlertChange]]:
        last_seen = np.full(len(self._stations), np.nan)
        for code, (seconds, _) in latest.items():
            index = self._index.get(code)
            if index is not None:
                last_seen[index] = seconds
        in_alert = np.zeros(len(self._stations), dtype=bool)
        for state in level_states:
            in_alert |= state.rank > 0
        changes: list[AlertChange] = []
        new_silent = []
        for rule, applies, after, silent in zip(
            self._silence_rules,
            self._silence_applies,
            self._silence_after,
            self._silent,
            strict=True,
        ):
            result = evaluate_silence(
                last_seen, silent, applies, now=int(now.timestamp()), after=after
            )
            new_silent.append(result.silent)
            for index, kind in [(i, AlertChangeKind.OPEN) for i in result.began.tolist()] + [
                (i, AlertChangeKind.CLEAR) for i in result.ended.tolist()
            ]:
                station = self._stations[index]
                seen = dt.datetime.fromtimestamp(float(last_seen[index]), dt.UTC)
                if kind is AlertChangeKind.CLEAR:
                    template = rule.clear_message
                elif in_alert[index] and rule.during_alert_message:
                    template = rule.during_alert_message
                else:
                    template = rule.message
                changes.append(
                    _change(
                        rule,
                        station,
                        kind,
                        family=rule.id,
                        rank=1,
                        observed_at=seen,
                        value=None,
                        late=False,
                        body=_text(
                            template,
                            rule,
                            station,
                            seen,
                            None,
                            silent_for=now - seen if kind is AlertChangeKind.OPEN else None,
                        ),
                    )
                )
        return new_silent, changes

    async def _rainfall(
        self, conn: Connection, readings: NewReadings, *, now: dt.datetime
    ) -> tuple[list[FamilyState], list[AlertChange]]:
        """Rainfall rules: each new report's windows, read from the ring once it holds it."""
        if not self._rain_table.families:
            return self._wet, []
        slots = slot_of(readings.time)
        clock_slot = int(slot_of(np.array([int(now.timestamp())]))[0])
        self._ring.advance(max(clock_slot, int(slots.max(initial=0))))
        refused = self._ring.put(readings.station, slots, hundredths(readings.value))
        held = self._ring.holds(slots)
        if (refused & held).any():
            # A corrected report, or two within one slot: the stored readings say what is true.
            await self._reload_rain(conn, np.unique(readings.station[refused & held]))
        if not held.all():
            codes = sorted({self._stations[i].code for i in readings.station[~held].tolist()})
            log.warning(
                "%d rainfall reports more than a day old are stored but not evaluated by the"
                " rainfall rules: station=%s",
                int((~held).sum()),
                ",".join(codes[:20]) + (",..." if len(codes) > 20 else ""),
            )
        new_wet, transitions = evaluate_rainfall(
            self._rain_table,
            self._wet,
            NewReadings(*(column[held] for column in dataclasses.astuple(readings))),
            self._ring,
            clear_after=self._config.clear_after,
        )
        return new_wet, self._ranked_changes(transitions, self._rain_table.rules, now=now)

    async def _reload_rain(self, conn: Connection, stations: IntArray | None) -> None:
        """The ring's slots of ``stations`` (None: all, as at start) from the stored readings."""
        if stations is None:
            self._ring.advance(int(slot_of(np.array([int(self._clock().timestamp())]))[0]))
        after = dt.datetime.fromtimestamp(
            (self._ring.head - self._ring.span) * SLOT_SECONDS, dt.UTC
        )
        codes = None if stations is None else [self._stations[i].code for i in stations.tolist()]
        rows = [
            row
            for row in await rainfall_by_slot(conn, SLOT_SECONDS, after, codes)
            if row[0] in self._index
        ]
        slot = np.array([k for _, k, _ in rows], dtype=np.int64)
        self._ring.advance(int(slot.max(initial=0)))  # reports ahead of the clock
        self._ring.replace(
            np.arange(len(self._stations)) if stations is None else stations,
            np.array([self._index[code] for code, _, _ in rows], dtype=np.int64),
            slot,
            hundredths(np.array([mm for _, _, mm in rows], dtype=float)),
        )

    async def _rises(
        self, conn: Connection, readings: NewReadings, *, now: dt.datetime
    ) -> tuple[list[FamilyState], list[AlertChange]]:
        """Rate-of-rise rules: each new level against the lowest of the window before it."""
        if not self._rise_rules or readings.station.size == 0:
            return self._rising, []
        window = max(int(rule.window.total_seconds()) for rule in self._rise_rules)
        codes = sorted({self._stations[i].code for i in readings.station.tolist()})
        history = await water_levels(
            conn,
            codes,
            dt.datetime.fromtimestamp(int(readings.time.min()) - window, dt.UTC),
            dt.datetime.fromtimestamp(int(readings.time.max()), dt.UTC),
        )
        station = np.array([self._index[code] for code, _, _ in history], dtype=np.int64)
        times = np.array([t for _, t, _ in history], dtype=np.int64)
        levels = np.array([v for _, _, v in history], dtype=float)
        fresh = set(zip(readings.station.tolist(), readings.time.tolist(), strict=True))
        is_new = np.array(
            [(s, t) in fresh for s, t in zip(station.tolist(), times.tolist(), strict=True)],
            dtype=bool,
        )
        new_states: list[FamilyState] = []
        changes: list[AlertChange] = []
        oldest_paged = now - self._config.max_age
        for rule, table, state in zip(
            self._rise_rules, self._rise_tables, self._rising, strict=True
        ):
            rise = rises(station, times, levels, window=int(rule.window.total_seconds()))
            (updated,), transitions = evaluate_thresholds(
                table,
                [state],
                NewReadings(
                    station[is_new],
                    times[is_new],
                    rise[is_new],
                    np.zeros(int(is_new.sum()), dtype=np.int64),
                ),
                margin=self._config.clear_margin,
                clear_after=self._config.clear_after,
            )
            new_states.append(updated)
            level_at = dict(
                zip(zip(station.tolist(), times.tolist(), strict=True), levels, strict=True)
            )
            for s, c, t, r in zip(
                transitions.station.tolist(),
                transitions.change.tolist(),
                transitions.time.tolist(),
                transitions.value.tolist(),
                strict=True,
            ):
                target = self._stations[s]
                kind = _KINDS[Change(c)]
                observed_at = dt.datetime.fromtimestamp(t, dt.UTC)
                late = observed_at < oldest_paged
                template = rule.clear_message if kind is AlertChangeKind.CLEAR else rule.message
                changes.append(
                    _change(
                        rule,
                        target,
                        kind,
                        family=rule.id,
                        rank=1,
                        observed_at=observed_at,
                        value=float(level_at[(s, t)]),
                        late=late,
                        body=_text(
                            template,
                            rule,
                            target,
                            observed_at,
                            float(level_at[(s, t)]),
                            rise=r,
                            window=rule.window,
                        ),
                    )
                )
        return new_states, changes


def _situation(rule: LevelRule | RainfallRule, missing: int) -> dict[str, Any]:
    """What a ranked rule's message may say beyond the value: the level crossed, or the rain
    window and how much of it had no report."""
    if isinstance(rule, LevelRule):
        return {"level_field": rule.level}
    return {
        "window": rule.window,
        "threshold": rule.threshold,
        "missing": dt.timedelta(seconds=missing * SLOT_SECONDS),
    }


def _text(
    template: str | None,
    rule: Rule,
    station: Station,
    observed_at: dt.datetime,
    value: float | None,
    **situation: Any,
) -> str | None:
    """The rule's template filled in, or None for a rule that stays quiet (no template)."""
    if template is None:
        return None
    return render(
        template, station, observed_at=observed_at, severity=rule.severity, value=value, **situation
    )


def _change(
    rule: Rule,
    station: Station,
    kind: AlertChangeKind,
    *,
    family: str,
    rank: int,
    observed_at: dt.datetime,
    value: float | None,
    late: bool,
    body: str | None,
) -> AlertChange:
    """One transition with the SMS it sends to each person the rule notifies: none when it is
    late or there is nothing to say (a rule that stays quiet when it clears)."""
    messages: tuple[Notification, ...] = ()
    if body is not None and not late:
        messages = tuple(
            Notification(person, body) for person in station.persons if person.role in rule.roles
        )
    return AlertChange(
        station=station.code,
        family=family,
        rule_id=rule.id,
        severity=rule.severity.value,
        change=kind,
        rank=rank,
        observed_at=observed_at,
        value=value,
        late=late,
        messages=messages,
    )
