"""Building the daily report from the day's figures and the registry. Pure.

The hydrological day runs from 08:00 to 08:00 in the deployment's time zone
(``registry.default_timezone``, the zone the daily aggregate is kept in); a day is named by the
date of its opening 08:00, so the report read on the morning of May 8 is the one of May 7.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from hydro.models import Channel, Station
from hydro.reports.model import (
    AlertEntry,
    AreaRain,
    Correction,
    CountyWakeUp,
    DailyReport,
    Excess,
    Grade,
    ReservoirStorage,
    StationFigures,
    StorageTotals,
    WakeUp,
)
from hydro.rules import LEVEL_NAMES, RuleSet
from hydro.rules.levels import alert_levels, level_verdicts
from hydro.rules.model import RainfallRule
from hydro.stations import MEDIUM_CAPACITY, StorageTable
from hydro.store.ladder import LadderOpened
from hydro.store.reports import DayAlert, DayFigures, HourlyRain

DAY_OPENS = dt.time(8, 0)
REPORT_INTERVAL = dt.timedelta(minutes=5)
_MINUTE = dt.timedelta(minutes=1)


def day_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The opening and closing 08:00 of ``day``, in UTC: 23 or 25 hours apart on a DST change
    (Python subtracts two times of one zone by their wall clocks)."""
    tz = ZoneInfo(zone)
    return (
        dt.datetime.combine(day, DAY_OPENS, tz).astimezone(dt.UTC),
        dt.datetime.combine(day + dt.timedelta(days=1), DAY_OPENS, tz).astimezone(dt.UTC),
    )


def last_ended_day(now: dt.datetime, zone: str, daily_at: dt.time) -> dt.date:
    """The day whose report is due at ``now``: the one that closed at the 08:00 before the most
    recent ``daily_at`` (which is 08:00 or later)."""
    local = now.astimezone(ZoneInfo(zone))
    closing = local.date() if local.time() >= daily_at else local.date() - dt.timedelta(days=1)
    return closing - dt.timedelta(days=1)


def whole_hour_windows(rules: RuleSet) -> dict[str, int]:
    """Rule id -> window in hours, for the rainfall rules a clock-hour sum can judge."""
    return {rule.id: rule.slots // 12 for rule in rules.rainfall_rules if rule.slots % 12 == 0}


def hours_looked_back(rules: RuleSet) -> int:
    """How many hours of rain before the day the longest rainfall window reaches back over."""
    return max(whole_hour_windows(rules).values(), default=1) - 1


def wettest_windows(
    rain: HourlyRain, start: dt.datetime, end: dt.datetime, windows: Sequence[int]
) -> dict[tuple[str, int], float]:
    """(station, hours) -> the wettest run of that many consecutive clock hours whose last hour
    began within the day and brought a rain report; hours without one count 0 mm."""
    hour = dt.timedelta(hours=1)
    first, stop = -(-(start - rain.since) // hour), -(-(end - rain.since) // hour)
    ends = np.arange(first, stop) + 1  # window ends, as counts of hours since rain.since
    totals = np.zeros((len(rain.stations), rain.mm.shape[1] + 1))
    np.cumsum(rain.mm, axis=1, out=totals[:, 1:])
    closing = rain.reported[:, first:stop]
    found: dict[tuple[str, int], float] = {}
    for window in windows:
        sums = totals[:, ends] - totals[:, np.maximum(ends - window, 0)]
        wettest = np.where(closing, sums, -np.inf).max(axis=1, initial=-np.inf)
        found.update(
            ((station, window), round(mm, 6))
            for station, mm in zip(rain.stations, wettest.tolist(), strict=True)
            if mm != -np.inf
        )
    return found


def medium_and_larger(table: StorageTable) -> list[str]:
    """The codes of the reservoirs the report gives the storage of (中型以上)."""
    return [
        code
        for code, capacity in zip(table.codes, table.capacity.tolist(), strict=True)
        if capacity >= MEDIUM_CAPACITY
    ]


def build_daily(
    day: dt.date,
    zone: str,
    stations: Sequence[Station],
    rules: RuleSet,
    figures: DayFigures,
    *,
    wettest: int,
    built_at: dt.datetime,
    curves: StorageTable,
) -> DailyReport:
    expected = int((figures.end - figures.start) / REPORT_INTERVAL)
    days = {d.station: d for d in figures.stations}
    rows = []
    for station in stations:
        d = days.get(station.code)
        rows.append(
            StationFigures(
                **station.identity(),
                readings=d.readings if d else 0,
                expected=expected,
                rain_mm=None if d is None or d.rainfall is None else round(d.rainfall, 1),
                rain_reports=d.rainfall_reports if d else 0,
                level_min=d.level_min if d else None,
                level_max=d.level_max if d else None,
                level_0800=figures.level_at_end.get(station.code),
            )
        )
    rainy = sorted(
        (r for r in rows if r.rain_mm is not None), key=lambda r: (-(r.rain_mm or 0.0), r.code)
    )
    names = {s.code: s.name for s in stations}
    storage = _storage(curves, {s.code: s for s in stations}, figures)
    wake_ups = _wake_ups(figures.ladders, stations)
    return DailyReport(
        day=day,
        start=figures.start,
        end=figures.end,
        timezone=zone,
        built_at=built_at,
        stations=rows,
        rain_by_prefecture=_by_area(rainy, county=False),
        rain_by_county=_by_area(rainy, county=True),
        wettest=[r.code for r in rainy[:wettest]],
        grades=_grades(rules, stations, figures),
        above_levels=_above_levels(rules, stations, rows, figures.start),
        alerts_opened=_entries(
            (a for a in figures.alerts if figures.start <= a.opened_at < figures.end), names
        ),
        alerts_active=_entries((a for a in figures.alerts if a.state == "open"), names),
        silent=[r.code for r in rows if r.readings == 0],
        missing_data=[r.code for r in rows if 0 < r.readings < expected],
        sms=dict(sorted(figures.outbox[Channel.SMS].items())),
        calls=dict(sorted(figures.outbox[Channel.VOICE].items())),
        storage=storage,
        storage_totals=_storage_totals(storage) if len(curves) else None,
        wake_ups=wake_ups,
        wake_up_by_county=_wake_up_by_county(wake_ups),
    )


def _by_area(rainy: list[StationFigures], *, county: bool) -> list[AreaRain]:
    areas: dict[tuple[str, str | None], list[StationFigures]] = {}
    for row in rainy:  # wettest first: each area's first station is its wettest
        areas.setdefault((row.prefecture, row.county if county else None), []).append(row)
    result = [
        AreaRain(
            prefecture=prefecture,
            county=name,
            stations=len(members),
            incomplete=sum(1 for m in members if m.rain_reports < m.expected),
            mean_mm=round(sum(m.rain_mm or 0.0 for m in members) / len(members), 1),
            max_mm=members[0].rain_mm or 0.0,
            wettest=members[0].name,
        )
        for (prefecture, name), members in areas.items()
    ]
    return sorted(result, key=lambda a: (-a.mean_mm, a.prefecture, a.county or ""))


def _grades(rules: RuleSet, stations: Sequence[Station], figures: DayFigures) -> list[Grade]:
    """Per rainfall family, the stations counted at the highest rule their day reached."""
    hours = whole_hour_windows(rules)
    counts: dict[str, int] = {}
    families: dict[str, list[RainfallRule]] = {}
    for rule in rules.rainfall_rules:
        if rule.id in hours:
            families.setdefault(rule.family, []).append(rule)
    windows = sorted(set(hours.values()))
    rain_max = wettest_windows(figures.rain, figures.start, figures.end, windows)
    for family_rules in families.values():
        for station in stations:
            reached = [
                rule
                for rule in family_rules
                if station.kind in rule.kinds
                and rain_max.get((station.code, hours[rule.id]), 0.0) >= rule.threshold
            ]
            if reached:
                top = max(reached, key=lambda r: r.rank)
                counts[top.id] = counts.get(top.id, 0) + 1
    return [
        Grade(rule_id=r.id, name=r.name, severity=r.severity.value, stations=counts.get(r.id, 0))
        for family_rules in families.values()
        for r in sorted(family_rules, key=lambda r: -r.rank)
    ]


def _above_levels(
    rules: RuleSet, stations: Sequence[Station], rows: list[StationFigures], start: dt.datetime
) -> list[Excess]:
    """Rivers and reservoirs whose highest level of the day crossed a threshold rule's level
    (the highest of each family), with the excess."""
    found = []
    for station, row in zip(stations, rows, strict=True):
        if row.level_max is None:
            continue
        for verdict in alert_levels(level_verdicts(rules, station, row.level_max, start)):
            found.append(
                Excess(
                    **station.identity(),
                    level_name=LEVEL_NAMES[verdict.rule.level],
                    level=verdict.level,
                    level_max=row.level_max,
                    excess=round(row.level_max - verdict.level, 2),
                    level_0800=row.level_0800,
                )
            )
    return sorted(found, key=lambda e: (-e.excess, e.code))


def _storage(
    curves: StorageTable, stations: Mapping[str, Station], figures: DayFigures
) -> list[ReservoirStorage]:
    """Medium and larger reservoirs at the closing 08:00, in registry order."""
    at_end = curves.read({code: at.level for code, at in figures.levels_at_end.items()})
    at_start = curves.read({code: at.level for code, at in figures.levels_at_start.items()})
    order = {code: n for n, code in enumerate(stations)}
    rows = []
    for code in sorted(medium_and_larger(curves), key=order.__getitem__):
        station = stations[code]
        size, normal = curves.size(code)
        read, now, before = figures.levels_at_end.get(code), at_end.get(code), at_start.get(code)
        storage = None if now is None else now.storage
        storage_before = None if before is None else before.storage
        limit = _flood_limit(station, figures.end)
        rows.append(
            ReservoirStorage(
                **station.identity(),
                size=size,
                normal_storage=normal,
                level=None if read is None else read.level,
                level_time=None if read is None else read.time,
                age_minutes=None if read is None else (figures.end - read.time) // _MINUTE,
                outside=None if now is None else now.outside,
                storage=storage,
                storage_before=storage_before,
                change=None
                if storage is None or storage_before is None
                else round(storage - storage_before, 2),
                percent_normal=None if now is None else now.percent_normal,
                flood_limit_level=limit,
                above_flood_limit=None
                if read is None or limit is None or read.level <= limit
                else round(read.level - limit, 2),
            )
        )
    return rows


def _flood_limit(station: Station, at: dt.datetime) -> float | None:
    """The 汛限水位 that applies at ``at``: only within the station's flood season."""
    season = station.flood_season
    if station.flood_limit_level is None or season is None:
        return None
    return station.flood_limit_level if season.contains(at.astimezone(station.tz).date()) else None


def _storage_totals(rows: Sequence[ReservoirStorage]) -> StorageTotals:
    reported = [r for r in rows if r.storage is not None]
    compared = [r.change for r in rows if r.change is not None]
    storage = sum(r.storage or 0.0 for r in reported)
    normal = sum(r.normal_storage for r in reported)
    return StorageTotals(
        reservoirs=len(rows),
        reported=len(reported),
        storage=round(storage, 2),
        normal_storage=round(normal, 2),
        percent_normal=round(100 * storage / normal, 1) if normal > 0 else None,
        change=round(sum(compared), 2) if compared else None,
        compared=len(compared),
        above_flood_limit=sum(1 for r in rows if r.above_flood_limit is not None),
    )


def _entries(alerts: Iterable[DayAlert], names: dict[str, str]) -> list[AlertEntry]:
    return [
        AlertEntry(
            id=a.id,
            station=a.station,
            name=names.get(a.station, a.station),
            rule_id=a.rule_id,
            severity=a.severity,
            state=a.state,
            opened_at=a.opened_at,
            peak_value=a.peak_value,
        )
        for a in alerts
    ]


def _wake_ups(ladders: Iterable[LadderOpened], stations: Sequence[Station]) -> list[WakeUp]:
    """The day's ladders by the station's place; a station since removed from the registry
    keeps its alert under its code, in no county."""
    known = {s.code: s for s in stations}
    found = []
    for ladder in ladders:
        station = known.get(ladder.station)
        woke = None if ladder.confirmed_at is None else ladder.confirmed_at - ladder.opened_at
        found.append(
            WakeUp(
                id=ladder.id,
                station=ladder.station,
                name=station.name if station else ladder.station,
                prefecture=station.prefecture if station else "",
                county=station.county if station else "",
                severity=ladder.severity,
                opened_at=ladder.opened_at,
                confirmed_at=ladder.confirmed_at,
                wake_up_s=None if woke is None else woke.total_seconds(),
                answer=ladder.answer,
                acknowledged=ladder.acknowledged,
            )
        )
    return found


def _wake_up_by_county(wake_ups: Iterable[WakeUp]) -> list[CountyWakeUp]:
    counties: dict[tuple[str, str], list[WakeUp]] = {}
    for w in wake_ups:
        counties.setdefault((w.prefecture, w.county), []).append(w)
    result = []
    for (prefecture, county), members in sorted(counties.items()):
        times = [w.wake_up_s for w in members if w.wake_up_s is not None]
        result.append(
            CountyWakeUp(
                prefecture=prefecture,
                county=county,
                alerts=len(members),
                confirmed=len(times),
                median_s=statistics.median(times) if times else None,
                worst_s=max(times, default=None),
                unconfirmed=[w.id for w in members if w.wake_up_s is None],
            )
        )
    return result


def with_corrections(stored: DailyReport, fresh: DailyReport) -> DailyReport:
    """The stored report, as it was built, with what late or corrected data changed since."""
    now = fresh.by_code
    corrections = []
    for was in stored.stations:
        current = now.get(was.code)
        if current is None:
            continue
        for figure in ("rain_mm", "level_max", "readings"):
            before, after = getattr(was, figure), getattr(current, figure)
            if before != after:
                corrections.append(
                    Correction(code=was.code, name=was.name, figure=figure, was=before, now=after)
                )
    # A late level before 08:00 changes the storage the digest summed.
    storage_now = {r.code: r.storage for r in fresh.storage}
    corrections += [
        Correction(code=r.code, name=r.name, figure="storage", was=r.storage, now=after)
        for r in stored.storage
        if r.code in storage_now and (after := storage_now[r.code]) != r.storage
    ]
    return stored.model_copy(update={"corrections": corrections})
