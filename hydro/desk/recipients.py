"""Whom a manual SMS goes to: the persons of one station, of a county, a prefecture or a river,
of the stations now in alert, the duty officers, or a saved group. Pure.

A person responsible for several of the stations picked is one recipient (by phone), who gets
one message naming those stations. The registry is indexed once, by county, prefecture and
river, so picking a prefecture's 2,300 persons walks only its stations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from hydro.errors import SmsRefused
from hydro.models import Recipient, Station
from hydro.stations.registry import Registry


class AudienceKind(StrEnum):
    STATION = "station"  # the three persons of one station (value: its code)
    COUNTY = "county"  # every responsible person of a county's stations (value: its name)
    PREFECTURE = "prefecture"
    RIVER = "river"
    IN_ALERT = "in_alert"  # of the stations with an open alert (value: a severity, or None)
    DUTY = "duty"  # the duty officers
    GROUP = "group"  # a saved group of sms.groups (value: its name)


# The kinds that need a value, and what people call it.
_NAMED = {
    AudienceKind.STATION: "station code",
    AudienceKind.COUNTY: "county",
    AudienceKind.PREFECTURE: "prefecture",
    AudienceKind.RIVER: "river",
    AudienceKind.GROUP: "group",
}


@dataclass(frozen=True, slots=True)
class Audience:
    """Whom the operator picked."""

    kind: AudienceKind
    value: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.value is None else f"{self.kind.value} {self.value}"


class AudienceChoices(Protocol):
    """Whom an operator's form picks (the CLI's flags, the API's body): one kind is set."""

    station: str | None
    county: str | None
    prefecture: str | None
    river: str | None
    in_alert: bool
    duty: bool
    group: str | None

    @property  # read-only: the API's field is narrower (a Literal of the severities)
    def severity(self) -> str | None: ...


def pick(choices: AudienceChoices) -> Audience:
    """The one audience an operator's choices name; SmsRefused unless exactly one is given."""
    c = choices
    named = {
        AudienceKind.STATION: c.station,
        AudienceKind.COUNTY: c.county,
        AudienceKind.PREFECTURE: c.prefecture,
        AudienceKind.RIVER: c.river,
        AudienceKind.GROUP: c.group,
    }
    chosen = [Audience(kind, value) for kind, value in named.items() if value is not None]
    if c.in_alert:
        chosen.append(Audience(AudienceKind.IN_ALERT, c.severity))
    elif c.severity is not None:
        raise SmsRefused("a severity picks among the stations in alert: give in_alert too")
    if c.duty:
        chosen.append(Audience(AudienceKind.DUTY))
    if len(chosen) != 1:
        kinds = ", ".join(kind.value for kind in AudienceKind)
        raise SmsRefused(f"pick exactly one kind of recipients ({kinds}); got {len(chosen)}")
    return chosen[0]


@dataclass(frozen=True, slots=True)
class Addressee:
    """One recipient, and the stations picked that they are responsible for (none for a duty
    officer or a group member)."""

    recipient: Recipient
    stations: tuple[Station, ...] = ()


class Directory:
    """The registry's responsible persons by county, prefecture and river, and the saved
    groups; built once at start."""

    def __init__(self, registry: Registry, groups: Mapping[str, Sequence[Recipient]]) -> None:
        self._registry = registry
        self._groups = MappingProxyType({name: tuple(m) for name, m in groups.items()})
        index: dict[AudienceKind, dict[str, list[Station]]] = {
            kind: defaultdict(list)
            for kind in (AudienceKind.COUNTY, AudienceKind.PREFECTURE, AudienceKind.RIVER)
        }
        for station in registry.stations:
            index[AudienceKind.COUNTY][station.county].append(station)
            index[AudienceKind.PREFECTURE][station.prefecture].append(station)
            if station.river:
                index[AudienceKind.RIVER][station.river].append(station)
        self._index = {kind: {k: tuple(v) for k, v in by.items()} for kind, by in index.items()}

    def station(self, code: str) -> Station | None:
        return self._registry.get(code)

    @property
    def groups(self) -> Mapping[str, tuple[Recipient, ...]]:
        return self._groups

    def names(self, kind: AudienceKind) -> list[str]:
        """The counties, prefectures, rivers or groups there are, sorted: what a form offers."""
        if kind is AudienceKind.GROUP:
            return sorted(self._groups)
        return sorted(self._index.get(kind, {}))

    def addressees(
        self,
        audience: Audience,
        *,
        in_alert: Mapping[str, frozenset[str]] | None = None,
        on_duty: Sequence[Recipient] = (),
    ) -> tuple[Addressee, ...]:
        """Every recipient of ``audience``, once each by phone, in registry order.

        ``in_alert``: station code -> the severities of its open alerts (needed only for
        AudienceKind.IN_ALERT); ``on_duty``: who is on duty now. Raises SmsRefused naming an
        unknown station, county, prefecture, river or group.
        """
        kind, value = audience.kind, audience.value
        if kind in _NAMED and not value:
            raise SmsRefused(f"name the {_NAMED[kind]} to send to")
        if kind is AudienceKind.DUTY:
            return dedupe((person, None) for person in on_duty)
        if kind is AudienceKind.GROUP:
            assert value is not None
            members = self._groups.get(value)
            if members is None:
                known = ", ".join(sorted(self._groups)) or "none configured in sms.groups"
                raise SmsRefused(f"unknown group {value!r} (groups: {known})")
            return dedupe((person, None) for person in members)
        return dedupe(
            (person, station)
            for station in self._stations(audience, in_alert or {})
            for person in station.persons
        )

    def _stations(
        self, audience: Audience, in_alert: Mapping[str, frozenset[str]]
    ) -> Sequence[Station]:
        kind, value = audience.kind, audience.value
        if kind is AudienceKind.IN_ALERT:
            return [
                station
                for station in self._registry.stations
                if (severities := in_alert.get(station.code))
                and (value is None or value in severities)
            ]
        assert value is not None
        if kind is AudienceKind.STATION:
            station = self._registry.get(value)
            if station is None:
                raise SmsRefused(f"unknown station {value!r}: not in the registry")
            return [station]
        stations = self._index[kind].get(value)
        if stations is None:
            raise SmsRefused(f"unknown {_NAMED[kind]} {value!r}: no station of the registry in it")
        return stations


def dedupe(pairs: Iterable[tuple[Recipient, Station | None]]) -> tuple[Addressee, ...]:
    """One addressee per phone, first seen first; their stations in the order seen."""
    seen: dict[str, tuple[Recipient, list[Station]]] = {}
    for person, station in pairs:
        entry = seen.get(person.phone)
        if entry is None:
            entry = seen[person.phone] = (person, [])
        # A station's persons come together: one person in two roles of it is seen twice running.
        if station is not None and (not entry[1] or entry[1][-1] is not station):
            entry[1].append(station)
    return tuple(Addressee(person, tuple(stations)) for person, stations in seen.values())
