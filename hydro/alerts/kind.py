"""The one shape every rule kind has, and what all of them share.

A tick runs every kind through the same stages, the way Alertmanager chains notify stages that
share one signature: ``read`` what it needs from the database (before any kind evaluates),
``evaluate`` the tick's readings at the tick's ``now`` (pure), and, once the database holds the
result, ``commit`` the new state. ``load`` restores a kind from the open alerts at start and
after a failed tick. A kind's transitions become :class:`AlertChange` values in one place,
:func:`to_changes`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from hydro.config import AlertingConfig
from hydro.models import AlertChange, AlertChangeKind, Notification, Station
from hydro.rules import LevelRule, RainfallRule, RateOfRiseRule, Rule, RuleSet, render
from hydro.rules.evaluate import (
    BoolArray,
    Change,
    FamilyState,
    FloatArray,
    NewReadings,
    Transitions,
)
from hydro.store.alerts import DueReminder, OpenAlertState
from hydro.store.db import Connection
from hydro.texts import REMINDER_PREFIX

# Per open alert with a station and family that changed its hysteresis: (station, family,
# consecutive readings below its rank, the highest rank they held).
BelowCount = tuple[str, str, int, int]

_KINDS = {
    Change.OPEN: AlertChangeKind.OPEN,
    Change.ESCALATE: AlertChangeKind.ESCALATE,
    Change.CLEAR: AlertChangeKind.CLEAR,
    Change.STEP_DOWN: AlertChangeKind.STEP_DOWN,
}


@dataclass(frozen=True)
class Roster:
    """The registered stations in evaluation order: column ``i`` of every array is station
    ``stations[i]``."""

    stations: tuple[Station, ...]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {s.code: i for i, s in enumerate(self.stations)})

    def __len__(self) -> int:
        return len(self.stations)

    def applies(self, kinds: Sequence[object]) -> BoolArray:
        """Per station: whether its kind is one of ``kinds``."""
        return np.array([s.kind in kinds for s in self.stations], dtype=bool)


@dataclass(frozen=True)
class Tick:
    """What every kind evaluates: the tick's new readings of registered stations and the newest
    observation of every station, both read before evaluation, at the tick's ``now``."""

    now: dt.datetime
    levels: NewReadings  # water levels
    rainfall: NewReadings
    last_seen: FloatArray  # per station, Unix seconds of its newest observation; NaN: never
    latest_level: FloatArray  # per station, the water level then; NaN: none

    def latest(self, station: int) -> tuple[dt.datetime, float | None] | None:
        """The station's newest observation and its water level, None if it never reported."""
        seen = float(self.last_seen[station])
        if np.isnan(seen):
            return None
        level = float(self.latest_level[station])
        return dt.datetime.fromtimestamp(seen, dt.UTC), None if np.isnan(level) else level


S = TypeVar("S")
Data = TypeVar("Data")


@dataclass(frozen=True)
class Outcome(Generic[S]):
    """What a kind's evaluation found: its state after the tick (committed only once the
    database holds the changes), the changes, and the hysteresis counts to store."""

    state: S
    changes: list[AlertChange]
    below_counts: list[BelowCount]
    in_alert: BoolArray | None = None  # stations a level-like alert of this kind stays open at


class Kind(Protocol[S, Data]):
    """One kind of rule. ``Data`` is what ``read`` fetches for ``evaluate``; ``S`` its state."""

    families: tuple[str, ...]  # the alert families it owns
    reminded: tuple[str, ...]  # those of them repeated every ``alerting.repeat_interval``

    async def load(
        self, conn: Connection, alerts: Sequence[OpenAlertState], now: dt.datetime
    ) -> None:
        """Its state from the open alerts (every kind's: it keeps its own families)."""

    async def read(self, conn: Connection, tick: Tick) -> Data:
        """What its evaluation needs from the database beyond the tick; nothing is written."""

    def evaluate(self, tick: Tick, data: Data, in_alert: BoolArray) -> Outcome[S]:
        """The tick at ``tick.now``, without I/O and without changing the kind's state.
        ``in_alert``: stations where a kind evaluated before this one leaves an alert open."""

    def remind(self, alert: DueReminder, tick: Tick) -> AlertChange | None:
        """The repeat of one of its ``reminded`` alerts, None if there is nothing to say."""

    def commit(self, state: S) -> None:
        """Adopts the evaluated state, once the database holds the changes."""


# A kind's constructor: the one line that adds a kind to the evaluator.
KindFactory = Callable[[RuleSet, Roster, AlertingConfig], Kind[Any, Any]]


@dataclass(frozen=True)
class Transition:
    """One entry of :class:`Transitions` as Python values."""

    family: int
    station: int
    change: AlertChangeKind
    rank: int
    observed_at: dt.datetime
    value: float
    missing: int  # rain slots without a report in the window


@dataclass(frozen=True)
class Described:
    """What a kind says about one transition: the rule it stands at, the value it reports and
    the text (None for a rule that stays quiet about it)."""

    rule: Rule
    family: str
    value: float | None
    body: str | None


def to_changes(
    transitions: Transitions,
    roster: Roster,
    describe: Callable[[Transition], Described],
    *,
    late_before: dt.datetime | None,
) -> list[AlertChange]:
    """The changes of a kind's transitions; one observed before ``late_before`` is late (None:
    never late: a silence is news however old the last reading)."""
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
        observed_at = dt.datetime.fromtimestamp(t, dt.UTC)
        transition = Transition(f, s, _KINDS[Change(c)], rank, observed_at, value, missing)
        described = describe(transition)
        changes.append(
            change(
                described,
                roster.stations[s],
                transition.change,
                rank=rank,
                observed_at=observed_at,
                late=late_before is not None and observed_at < late_before,
            )
        )
    return changes


def change(
    described: Described,
    station: Station,
    kind: AlertChangeKind,
    *,
    rank: int,
    observed_at: dt.datetime,
    late: bool,
) -> AlertChange:
    """One transition with the SMS it sends to each person the rule notifies: none when it is
    late or there is nothing to say (a rule that stays quiet when it clears)."""
    rule = described.rule
    messages: tuple[Notification, ...] = ()
    if described.body is not None and not late:
        messages = tuple(
            Notification(person, described.body)
            for person in station.persons
            if person.role in rule.roles
        )
    return AlertChange(
        station=station.code,
        family=described.family,
        rule_id=rule.id,
        severity=rule.severity.value,
        change=kind,
        rank=rank,
        observed_at=observed_at,
        value=described.value,
        late=late,
        messages=messages,
    )


def text(
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


def restore(
    families: tuple[str, ...], roster: Roster, alerts: Sequence[OpenAlertState]
) -> list[FamilyState]:
    """Each family's state from its open alerts (those of other families are skipped)."""
    states = [FamilyState.empty(len(roster)) for _ in families]
    by_name = dict(zip(families, states, strict=True))
    for alert in alerts:
        station, state = roster.index.get(alert.station), by_name.get(alert.family)
        if station is None or state is None:
            continue
        state.rank[station] = alert.rank
        state.below[station] = alert.below_count
        state.held[station] = alert.below_held
    return states


def below_counts(
    roster: Roster,
    families: tuple[str, ...],
    old_states: Sequence[FamilyState],
    new_states: Sequence[FamilyState],
) -> list[BelowCount]:
    """The hysteresis of every open alert whose count moved this tick."""
    counts: list[BelowCount] = []
    for family, old, new in zip(families, old_states, new_states, strict=True):
        moved = np.flatnonzero(((new.below != old.below) | (new.held != old.held)) & (new.rank > 0))
        counts.extend(
            (roster.stations[s].code, family, int(new.below[s]), int(new.held[s]))
            for s in moved.tolist()
        )
    return counts


def any_open(states: Sequence[FamilyState], stations: int) -> BoolArray:
    """Stations where any of the families has an open alert."""
    result = np.zeros(stations, dtype=bool)
    for state in states:
        result |= state.rank > 0
    return result


R = TypeVar("R", LevelRule, RainfallRule, RateOfRiseRule)


class FamilyKind(Generic[R]):
    """What the kinds whose state is one :class:`FamilyState` per alert family share (levels,
    rises, rainfall): loading, committing, the changes and hysteresis of an evaluation, and
    reminders of the alerts of ``reminded`` rules, the kind's every rule (by default none)."""

    def __init__(
        self,
        roster: Roster,
        config: AlertingConfig,
        families: tuple[str, ...],
        *,
        reminded: Sequence[R] = (),
        names_open: bool = False,
    ) -> None:
        self._roster = roster
        self._config = config
        self.families = families
        self._reminded: dict[str, R] = {rule.id: rule for rule in reminded}
        self.reminded: tuple[str, ...] = families if reminded else ()
        self._names_open = names_open  # whether a silence names this kind's open alerts
        self._states = [FamilyState.empty(len(roster)) for _ in families]

    async def load(
        self, conn: Connection, alerts: Sequence[OpenAlertState], now: dt.datetime
    ) -> None:
        self._states = restore(self.families, self._roster, alerts)

    def commit(self, state: list[FamilyState]) -> None:
        self._states = state

    def _changes(
        self, transitions: Transitions, describe: Callable[[Transition], Described], tick: Tick
    ) -> list[AlertChange]:
        late_before = tick.now - self._config.max_age
        return to_changes(transitions, self._roster, describe, late_before=late_before)

    def _outcome(
        self, states: list[FamilyState], changes: list[AlertChange]
    ) -> Outcome[list[FamilyState]]:
        return Outcome(
            states,
            changes,
            below_counts(self._roster, self.families, self._states, states),
            any_open(states, len(self._roster)) if self._names_open else None,
        )

    def remind(self, alert: DueReminder, tick: Tick) -> AlertChange | None:
        """The rule's message again with the station's latest observation, marked as ongoing."""
        index, rule = self._roster.index.get(alert.station), self._reminded.get(alert.rule_id)
        latest = None if index is None else tick.latest(index)
        if rule is None or index is None or latest is None:
            return None
        station, (seen, level) = self._roster.stations[index], latest
        value, situation = self._repeated(rule, index, seen, level)
        body = text(REMINDER_PREFIX + rule.message, rule, station, seen, value, **situation)
        return change(
            Described(rule, alert.family, value, body),
            station,
            AlertChangeKind.REMIND,
            rank=alert.rank,
            observed_at=seen,
            late=False,
        )

    def _repeated(
        self, rule: R, station: int, seen: dt.datetime, level: float | None
    ) -> tuple[float | None, dict[str, Any]]:
        """The value a reminder reports and what else its message may say."""
        raise NotImplementedError(f"{type(self).__name__} sends no reminders")
