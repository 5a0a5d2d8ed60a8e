"""The API's response shapes: what operators, the web page and the OpenAPI document see."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hydro.models import Role

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
    channel: str  # sms or voice
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
    written_by: str | None  # a manual message (the duty desk's): who wrote it and why
    reason: str | None
    call_status: str | None = None  # a call's outcome: completed, busy, no-answer, failed, canceled


class ConfirmIn(BaseModel):
    """An operator reached a person of the alert (叫应) and records it for them: the person by
    role (administrative, technical, patrol, county, prefecture, duty), by phone, or both when
    a role has several."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    phone: str | None = Field(None, max_length=20)
    note: str | None = Field(None, max_length=200)  # e.g. 电话已联系


class ConfirmationOut(BaseModel):
    role: str
    person: str
    phone: str
    answer: str  # keypress, link, operator
    confirmed_at: dt.datetime
    recorded_by: str
    outbox_id: int | None
    rank: int  # the alert's rank it answered: it answers that rank and those below
    note: str | None = None  # the operator's, e.g. 电话已联系


class LadderStepOut(BaseModel):
    """One step of the alert's 叫应 ladder and the calls and SMS it queued."""

    key: str
    reason: str
    taken_at: dt.datetime
    notifications: list[int]  # outbox ids, as in ``notifications``


class AlertDetail(BaseModel):
    alert: AlertOut
    events: list[EventOut]
    notifications: list[NotificationOut]
    ladder: list[LadderStepOut] = []
    confirmations: list[ConfirmationOut] = []
    wake_up_seconds: float | None = None  # from the alert's opening to its first confirmation


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


class ReadingIn(BaseModel):
    """A reading typed in by an operator (a patrol person phoned it in): at least one value."""

    model_config = ConfigDict(extra="forbid")

    time: str = Field(
        description="ISO 8601; without an offset, the station's local time (as a gateway's)",
        examples=["2026-06-20T14:30:00+08:00"],
    )
    water_level: float | None = None
    flow: float | None = None
    rainfall: float | None = None
    note: str = Field(description="who read the gauge and phoned it in, and why it is typed in")


class ManualReadingOut(BaseModel):
    """A reading typed in by an operator, with who entered it, why and when."""

    station: str
    time: dt.datetime
    water_level: float | None
    flow: float | None
    rainfall: float | None
    source: Literal["manual"] = "manual"
    entered_by: str
    note: str
    entered_at: dt.datetime | None  # None in the answer to the entry itself: it is now


class DutyPerson(BaseModel):
    role: Literal["duty", "leader"]
    role_name: str  # 值班员, 带班领导
    name: str
    phone: str  # the last four digits unless the token is an admin's
    start: dt.datetime | None  # None: from sms.duty_officers, no roster shift
    end: dt.datetime | None


class DutyOut(BaseModel):
    """The hand-over: who the duty desk is now, and the next shift of each role."""

    at: dt.datetime
    on_duty: list[DutyPerson]
    next: list[DutyPerson]
    fallback: bool  # no officer on the roster now: sms.duty_officers are told


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
    unconfirmed_alerts: int  # 未叫应: open, its ladder started, nobody confirmed, nobody acked
    # prefecture -> severity -> open alerts other than silence (silent stations: ``silent``)
    by_prefecture: dict[str, dict[str, int]]
    by_severity: dict[str, int]
    silent: list[SilentStation]
    no_data: int  # registry stations that never reported
    outbox_backlog: int  # SMS queued or being sent
    sms_by_status: dict[str, int]
    calls_by_status: dict[str, int]  # 叫应's voice calls, apart from the SMS
    journal_backlog: int  # stored batches not yet evaluated


class Readiness(BaseModel):
    database: str
    broker: str


class SmsRequestIn(BaseModel):
    """A manual SMS: exactly one kind of recipients, and a text or where to take it from; the
    same body previews it (reason and confirm are then ignored) and sends it."""

    model_config = ConfigDict(extra="forbid")

    station: str | None = Field(None, description="the three persons of this station (code)")
    county: str | None = None
    prefecture: str | None = None
    river: str | None = None
    in_alert: bool = Field(False, description="the persons of every station with an open alert")
    severity: Literal["blue", "yellow", "orange", "red"] | None = Field(
        None, description="with in_alert: only stations with an open alert of this severity"
    )
    duty: bool = Field(False, description="the duty officers on duty now")
    group: str | None = Field(None, description="a saved group of sms.groups")
    text: str | None = Field(
        None,
        max_length=10_000,
        description="may name {name}, {station}, {code}, {county}, {prefecture}, {river}",
    )
    from_rule: str | None = Field(
        None, description="a rule id: its message filled for rule_station"
    )
    rule_station: str | None = Field(None, description="default: station, when that is given")
    from_alert: str | None = Field(
        None,
        description="a station code: its last alert SMS, and the send is attached to that alert"
        " (a text given too is sent instead, still attached)",
    )

    reason: str = Field(
        "", max_length=1000, description="why it is sent, kept with every message (send only)"
    )
    confirm: str | None = Field(
        None, description="the preview's confirm: needed above sms.confirm_above recipients"
    )


class SmsMessageOut(BaseModel):
    role: str
    person: str
    phone: str  # masked (last four digits) unless the caller is an admin
    stations: list[str]
    text: str
    characters: int
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int


class SmsPreviewOut(BaseModel):
    audience: str
    recipients: int  # after removing duplicates: one message per phone
    segments: int  # what the whole send costs, in SMS
    max_characters: int
    max_segments: int  # of one message
    needs_confirmation: bool  # more recipients than sms.confirm_above
    confirm: str  # echo it in /api/v1/sms/send to confirm this exact send
    alert_id: int | None
    messages: list[SmsMessageOut]  # the first ?messages= of them (default 200), in send order


class SmsSentOut(BaseModel):
    send_id: int
    recipients: int
    segments: int
    alert_id: int | None
