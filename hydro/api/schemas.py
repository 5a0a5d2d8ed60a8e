"""The API's response shapes: what operators, the web page and the OpenAPI document see."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel

StationStatus = Literal["normal", "blue", "yellow", "orange", "red", "silent", "no_data"]


class Levels(BaseModel):
    warning_level: float | None = None
    guaranteed_level: float | None = None
    flood_limit_level: float | None = None
    normal_level: float | None = None
    design_flood_level: float | None = None


class Latest(BaseModel):
    time: dt.datetime
    received_at: dt.datetime
    water_level: float | None
    flow: float | None
    rainfall: float | None
    battery_v: float | None


class StorageOut(BaseModel):
    """A reservoir with a stage-storage curve: its storage at its latest level."""

    size: str  # SL 252 class by total capacity: 大(1)型, 大(2)型, 中型, 小(1)型, 小(2)型
    normal_storage: float  # 万m³, at the normal level
    level: float | None  # the latest reading's level
    storage: float | None  # 万m³; None: no level, or a level outside the curve
    percent_normal: float | None
    outside: Literal["below", "above"] | None  # the level lies outside the curve


class StationOut(BaseModel):
    code: str
    name: str
    kind: str
    prefecture: str
    county: str
    river: str
    lat: float
    lon: float
    status: StationStatus  # the highest open alert's colour, else silent/no_data/normal
    silent: bool
    levels: Levels
    latest: Latest | None
    storage: StorageOut | None = None  # reservoirs with a stage-storage curve


class StationState(BaseModel):
    """What the live map refreshes: a station's colour, without its registry data."""

    code: str
    status: StationStatus
    silent: bool


class Person(BaseModel):
    role: str
    name: str
    phone: str  # masked (last four digits) unless the caller is an admin


class AlertOut(BaseModel):
    id: int
    station: str
    station_name: str | None
    prefecture: str | None
    county: str | None
    family: str
    rule_id: str
    rule_name: str | None
    rank: int
    severity: str
    state: str
    opened_at: dt.datetime
    escalated_at: dt.datetime | None
    cleared_at: dt.datetime | None
    peak_value: float | None
    late: bool
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None


class StationDetail(StationOut):
    gateway: str | None
    timezone: str
    persons: list[Person]
    active_alerts: list[AlertOut]


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None  # pass as ?cursor= for the next (older) page; None: no more


class EventOut(BaseModel):
    id: int
    change: str
    rule_id: str
    rank: int
    observed_at: dt.datetime
    value: float | None
    late: bool


class NotificationOut(BaseModel):
    id: int
    event_id: int | None
    role: str
    person: str
    phone: str
    body: str
    status: str  # queued, sending, sent, delivered, undelivered, failed
    attempts: int
    last_error: str | None
    error_code: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None


class AlertDetail(BaseModel):
    alert: AlertOut
    events: list[EventOut]
    notifications: list[NotificationOut]


class Series(BaseModel):
    """Columns of equal length, oldest first: what a chart takes without reshaping."""

    station: str
    every: str
    time: list[dt.datetime]
    water_level: list[float | None]
    water_level_min: list[float | None]
    water_level_max: list[float | None]
    rainfall: list[float | None]
    flow: list[float | None]


class SilentStation(BaseModel):
    code: str
    name: str
    prefecture: str
    last_time: dt.datetime | None


class Summary(BaseModel):
    generated_at: dt.datetime
    stations: int
    stations_reporting_5m: int  # stations whose latest report arrived in the last 5 minutes
    ingest_rate_per_s: float  # readings observed in the last 5 minutes, per second
    last_received_at: dt.datetime | None
    open_alerts: int  # every open alert, silence included: what `hydro status` counts
    # prefecture -> severity -> open alerts other than silence (silent stations: ``silent``)
    by_prefecture: dict[str, dict[str, int]]
    by_severity: dict[str, int]
    silent: list[SilentStation]
    no_data: int  # registry stations that never reported
    outbox_backlog: int  # SMS queued or being sent
    sms_by_status: dict[str, int]
    journal_backlog: int  # stored batches not yet evaluated


class Readiness(BaseModel):
    database: str
    broker: str
