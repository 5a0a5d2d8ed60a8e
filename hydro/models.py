"""The typed, immutable messages that pass between hydro's stages.

Nothing here does I/O. Past ``hydro.ingest`` nobody sees an MQTT message, past ``hydro.store``
nobody sees a database row: stages hand each other these objects.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple
from zoneinfo import ZoneInfo


class StationKind(StrEnum):
    RIVER = "river"
    RESERVOIR = "reservoir"
    RAIN = "rain"


class Role(StrEnum):
    """Whom a notification is for: one of the three responsible persons (三个责任人) every
    station names, or the duty desk (值班), told what the others could not be."""

    ADMINISTRATIVE = "administrative"  # 行政责任人
    TECHNICAL = "technical"  # 技术责任人
    PATROL = "patrol"  # 巡查责任人
    DUTY = "duty"  # 值班员: the duty officers on the roster (hydro.duty), else sms.duty_officers
    LEADER = "leader"  # 带班领导: the leader on call, on the roster beside the officers
    CONTACT = "contact"  # a member of a saved group (sms.groups), written to by the duty desk
    COUNTY = "county"  # 县防汛负责人: a 叫应 ladder climbs to them when nobody answers
    PREFECTURE = "prefecture"  # 市州防汛负责人


# The roles a station names a person for, and a rule may address.
STATION_ROLES = (Role.ADMINISTRATIVE, Role.TECHNICAL, Role.PATROL)
# The duty desk (值班): told what the others could not be, never told about itself.
DUTY_DESK_ROLES = frozenset({Role.DUTY, Role.LEADER})


class Channel(StrEnum):
    """How a notification reaches its recipient."""

    SMS = "sms"
    VOICE = "voice"  # a phone call that speaks the text and asks for a key press (叫应)


class Answer(StrEnum):
    """How a person confirmed they got an alert (叫应): the loop a text alone leaves open."""

    KEYPRESS = "keypress"  # pressed 1 in a voice call
    LINK = "link"  # opened the personal link in an SMS and pressed 确认收到
    OPERATOR = "operator"  # an operator reached them by phone and recorded it (电话已联系)


class Variable(StrEnum):
    """What a gauge can report; the value is the payload field and the database column."""

    WATER_LEVEL = "water_level"  # metres
    FLOW = "flow"  # m³/s
    RAINFALL = "rainfall"  # mm fallen since the station's previous report
    BATTERY_V = "battery_v"  # volts


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person a notification goes to: a station's responsible person or a duty officer."""

    role: Role
    name: str
    phone: str  # E.164, e.g. +8613800000000


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one recipient, from the rule that decides it to the provider that sends
    it. The store fills in the alert it belongs to and its outbox id when it queues it."""

    recipient: Recipient
    text: str
    channel: Channel = Channel.SMS
    station: str | None = None  # None: about no one station (the daily digest)
    alert_id: int | None = None  # None: not about an alert (a duty notice, the digest)
    outbox_id: int | None = None  # None: not yet queued


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A person's answer to one alert: who, how, when, and who recorded it (the person
    themselves for a key press or a link, else the operator's name)."""

    alert_id: int
    recipient: Recipient
    answer: Answer
    confirmed_at: dt.datetime
    recorded_by: str
    outbox_id: int | None = None  # the call or SMS answered, when there is one
    rank: int | None = None  # the alert's rank it answered, set by the store when recorded
    note: str | None = None  # the operator's, e.g. 电话已联系

    @property
    def recorded(self) -> str:
        """Who recorded it, with the note: 王值班(电话已联系)."""
        return self.recorded_by + (f"({self.note})" if self.note else "")

    def answers(self, rank: int) -> bool:
        """Whether it answers the alert standing at ``rank``: given at that rank or above (a
        yes to the yellow is no answer to the red the alert has since become)."""
        return self.rank is not None and self.rank >= rank


@dataclass(frozen=True, slots=True)
class FloodContact:
    """A county's or a prefecture's 防汛负责人 (stations/flood_contacts.csv); ``county`` is
    empty for a prefecture's."""

    prefecture: str
    county: str
    person: Recipient  # role COUNTY or PREFECTURE


def mask_phone(phone: str) -> str:
    """Keeps the last four digits only: logs are read by more people than the phone book."""
    return "*" * max(len(phone) - 4, 0) + phone[-4:]


@dataclass(frozen=True, slots=True)
class FloodSeason:
    """The dates (month, day) between which a reservoir's flood-limit level applies, inclusive.

    A season may wrap the new year (start after end), as it does in the southern hemisphere.
    """

    start: tuple[int, int]
    end: tuple[int, int]

    def contains(self, day: dt.date) -> bool:
        key = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= key <= self.end
        return key >= self.start or key <= self.end


DEFAULT_REPORT_INTERVAL = dt.timedelta(minutes=5)
MAX_REPORT_INTERVAL = dt.timedelta(days=1)


@dataclass(frozen=True)
class Station:
    """One row of the station registry, validated."""

    code: str
    name: str
    kind: StationKind
    prefecture: str
    county: str
    river: str
    lat: float
    lon: float
    gateway: str | None
    timezone: str
    warning_level: float | None = None  # 警戒水位
    guaranteed_level: float | None = None  # 保证水位
    flood_limit_level: float | None = None  # 汛限水位
    flood_season: FloodSeason | None = None  # when flood_limit_level applies
    normal_level: float | None = None  # 正常蓄水位
    design_flood_level: float | None = None  # 设计洪水位
    persons: tuple[Recipient, ...] = field(default=())  # one per role of STATION_ROLES
    # How often its reports arrive (报送间隔): an hourly batch of 5-minute values is 1 hour.
    report_interval: dt.timedelta = DEFAULT_REPORT_INTERVAL
    sl651_address: str | None = None  # 遥测站地址: ten digits, when not "00" + an 8-digit code

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def identity(self) -> dict[str, str]:
        """Who and where, as every listing of stations (the API, the reports) names one."""
        return {
            "code": self.code,
            "name": self.name,
            "kind": self.kind.value,
            "prefecture": self.prefecture,
            "county": self.county,
        }


class Reading(NamedTuple):
    """One accepted observation. ``time`` is timezone-aware UTC; absent variables are None.

    A NamedTuple rather than a frozen dataclass: every reading passes through here, and a tuple
    in column order is built in half the time and goes to COPY as the row itself.
    """

    station: str
    time: dt.datetime
    water_level: float | None = None
    flow: float | None = None
    rainfall: float | None = None
    battery_v: float | None = None


class RejectionCode(StrEnum):
    """Why something went to quarantine; stable names operators filter on."""

    BAD_TOPIC = "bad_topic"  # topic is not <prefix>/<gateway>/readings
    BAD_ENCODING = "bad_encoding"  # payload is not UTF-8
    MALFORMED_JSON = "malformed_json"
    BAD_SHAPE = "bad_shape"  # JSON, but not a reading object nor {"readings": [...]}
    UNKNOWN_STATION = "unknown_station"
    WRONG_GATEWAY = "wrong_gateway"  # the registry names another gateway for this station
    BAD_TIME = "bad_time"  # missing or unreadable time
    FUTURE_TIME = "future_time"  # more than ingest.max_future ahead of the receive time
    TOO_OLD = "too_old"  # more than ingest.max_past behind (a gateway clock reset to 1970)
    NO_MEASUREMENT = "no_measurement"  # none of water_level, flow, rainfall
    BAD_VALUE = "bad_value"  # not a number, or NaN/Infinity
    OUT_OF_BOUNDS = "out_of_bounds"  # outside the configured plausible range
    STATION_CODE_NOT_STRING = "station_code_not_string"  # a JSON integer that lost leading zeros
    TOO_LARGE = "too_large"  # over ingest.max_message_bytes or max_message_readings (whole message)
    INTERNAL_ERROR = "internal_error"  # judging raised or the database refused: a defect in hydro
    GATEWAY_REFUSED = "gateway_refused"  # a gateway's own refusal, on <prefix>/<gateway>/rejects


@dataclass(frozen=True, slots=True)
class Rejection:
    """Something a gateway sent that hydro would not store as a reading, kept with its reason.

    ``payload`` is the whole message when the message itself is unreadable, otherwise the one
    reading object (re-encoded as JSON) that was refused.
    """

    topic: str
    gateway: str
    payload: bytes
    code: RejectionCode
    reason: str  # for people: what exactly was wrong, e.g. "water_level 9999.0 above 6000.0"
    received_at: dt.datetime
    station: str | None = None


class AlertChangeKind(StrEnum):
    OPEN = "open"
    ESCALATE = "escalate"
    CLEAR = "clear"
    REMIND = "remind"  # still active after alerting.repeat_interval
    STEP_DOWN = "step_down"  # fell back below its rank's level, still above a lower one


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One alert transition, with the messages it sends (none when it is late)."""

    station: str
    family: str
    rule_id: str
    severity: str
    change: AlertChangeKind
    rank: int
    observed_at: dt.datetime  # for a silence: the last reading before it fell silent
    value: float | None
    late: bool  # observed longer than alerting.max_age ago: history only, nobody is paged
    messages: tuple[Notification, ...] = ()
