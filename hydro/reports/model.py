"""What a daily report says, as stored (JSON) and as every format reads it."""

from __future__ import annotations

import datetime as dt
from functools import cached_property

from pydantic import BaseModel, ConfigDict


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationFigures(_Part):
    """One station's day. ``rain_mm`` counts the reports received: ``rain_reports`` below
    ``expected`` means part of the day's rain is unknown, not that it was dry."""

    code: str
    name: str
    kind: str
    prefecture: str
    county: str
    readings: int
    expected: int  # 5-minute reports in the day (288; 276 or 300 on a DST change)
    rain_mm: float | None
    rain_reports: int
    level_min: float | None
    level_max: float | None
    level_0800: float | None  # the latest level in the hour up to the day's closing 08:00


class AreaRain(_Part):
    """Rain over a prefecture or county: the mean of its stations that reported rain."""

    prefecture: str
    county: str | None  # None: the whole prefecture
    stations: int
    incomplete: int  # of them, stations with reports missing
    mean_mm: float
    max_mm: float
    wettest: str  # the station name


class Grade(_Part):
    """Stations whose wettest window of the day reached a rainfall rule (the highest of its
    family), from clock-hour sums."""

    rule_id: str
    name: str
    severity: str
    stations: int


class Excess(_Part):
    code: str
    name: str
    kind: str
    prefecture: str
    county: str
    level_name: str
    level: float
    level_max: float
    excess: float
    level_0800: float | None


class AlertEntry(_Part):
    id: int
    station: str
    name: str
    rule_id: str
    severity: str
    state: str
    opened_at: dt.datetime
    peak_value: float | None


class WakeUp(_Part):
    """An alert opened in the day whose 叫应 ladder started: how long from its opening until
    a first person confirmed, as recorded when the report was built (None: nobody had)."""

    id: int
    station: str
    name: str
    prefecture: str
    county: str
    severity: str
    opened_at: dt.datetime
    confirmed_at: dt.datetime | None
    wake_up_s: float | None
    answer: str | None  # keypress, link, operator
    acknowledged: bool  # an operator acknowledged it: the ladder stopped, nobody confirmed


class CountyWakeUp(_Part):
    """A county's 叫应 in the day: its alerts with a ladder, how many were confirmed, the median
    and worst wake-up of those, and the ones nobody confirmed (alert ids)."""

    prefecture: str
    county: str
    alerts: int
    confirmed: int
    median_s: float | None
    worst_s: float | None
    unconfirmed: list[int]


class Correction(_Part):
    """A figure that changed since the report was stored (late or corrected data)."""

    code: str
    name: str
    figure: str  # rain_mm, level_max, readings, storage (万m³ at the closing 08:00)
    was: float | None
    now: float | None


class ReservoirStorage(_Part):
    """A medium or larger reservoir (中型以上) at the day's closing 08:00. Storage is read off
    its stage-storage curve at the latest level at or before that 08:00 (within a day); None
    without such a level, or when the level lies outside the curve (``outside``)."""

    code: str
    name: str
    kind: str
    prefecture: str
    county: str
    size: str  # SL 252 class: 中型, 大(2)型, 大(1)型
    normal_storage: float  # 万m³, at the normal level
    level: float | None
    level_time: dt.datetime | None
    age_minutes: int | None  # how long before 08:00 the level was read
    outside: str | None  # "below" or "above" the curve: no storage read off it
    storage: float | None  # 万m³
    storage_before: float | None  # 万m³, at the opening 08:00
    change: float | None  # 万m³, since the opening 08:00
    percent_normal: float | None
    flood_limit_level: float | None  # 汛限水位, when in flood season at 08:00
    above_flood_limit: float | None  # metres above it, when above


class StorageTotals(_Part):
    """The province's medium and larger reservoirs at 08:00, as the duty desk's summary gives
    them ("中型以上水库蓄水情况")."""

    reservoirs: int  # medium and larger with a curve
    reported: int  # of them, with a storage at 08:00
    storage: float  # 万m³, of those reported
    normal_storage: float  # 万m³, of those reported
    percent_normal: float | None
    change: float | None  # 万m³, of those with a storage at both 08:00s
    compared: int  # how many reservoirs ``change`` sums
    above_flood_limit: int


class DailyReport(_Part):
    day: dt.date  # by the date of its opening 08:00
    start: dt.datetime
    end: dt.datetime
    timezone: str
    built_at: dt.datetime
    stations: list[StationFigures]
    rain_by_prefecture: list[AreaRain]
    rain_by_county: list[AreaRain]
    wettest: list[str]  # station codes, wettest first
    grades: list[Grade]
    above_levels: list[Excess]
    alerts_opened: list[AlertEntry]
    alerts_active: list[AlertEntry]
    silent: list[str]  # codes of stations with no reading in the day
    missing_data: list[str]  # codes of stations with some of the day's reports missing
    sms: dict[str, int]  # SMS queued in the day, by status
    calls: dict[str, int] = {}  # voice calls queued in the day, by status (none before 叫应)
    storage: list[ReservoirStorage] = []  # reports stored before storage was added have none
    storage_totals: StorageTotals | None = None  # None: no reservoir has a curve
    wake_ups: list[WakeUp] = []  # reports stored before 叫应 have none
    wake_up_by_county: list[CountyWakeUp] = []
    corrections: list[Correction] = []  # only when a stored report is shown again

    @cached_property
    def by_code(self) -> dict[str, StationFigures]:
        return {s.code: s for s in self.stations}

    @cached_property
    def wake_up_names(self) -> dict[int, str]:
        """Alert id -> station name, for the 叫应 sections' unconfirmed alerts by county."""
        return {w.id: w.name for w in self.wake_ups}
