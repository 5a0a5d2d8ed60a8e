"""What an alert rule says, as operators write it in ``alert_rules/*.yaml``.

Four kinds of rule, told apart by ``type``:

- ``threshold``: a water level at or above (or above) one of the station's characteristic
  levels from the registry. Threshold rules of one ``family`` escalate into each other by
  ``rank`` (警戒 -> 保证), and step down again.
- ``rate_of_rise``: the water level rose more than ``rise`` metres within ``window``.
- ``silence``: no observation for ``after`` (plus however much longer than 5 minutes the
  station's ``report_interval`` is). A silent station keeps its level alerts open.
- ``rainfall``: at least ``threshold`` mm within ``window`` (rainstorm signals blue to red).
  Rainfall rules of one ``family`` escalate into each other by ``rank``, like threshold rules,
  but never step down: a rainstorm signal stands until it clears.

Pure data: evaluation and the alert lifecycle read these objects and never the YAML.
"""

from __future__ import annotations

import datetime as dt
import string
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from hydro.config import Duration
from hydro.models import DUTY_DESK_ROLES, STATION_ROLES, Role, StationKind


class Severity(StrEnum):
    """China's four-colour warning scale, mildest first."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


LevelField = Literal[
    "warning_level", "guaranteed_level", "flood_limit_level", "normal_level", "design_flood_level"
]

# Chinese names of the characteristic levels, as they appear in messages (超警戒水位0.04米).
LEVEL_NAMES: dict[str, str] = {
    "warning_level": "警戒水位",
    "guaranteed_level": "保证水位",
    "flood_limit_level": "汛限水位",
    "normal_level": "正常水位",
    "design_flood_level": "设计洪水位",
}

# What a message template may mention, with an example of each for `hydro check` to format.
TEMPLATE_FIELDS: dict[str, object] = {
    "prefecture": "黔东南州",
    "county": "台江县",
    "station": "麦冲水库",
    "code": "61901001",
    "river": "翁密河",
    "month": 5,
    "day": 7,
    "hour": 8,
    "minute": 0,
    "time": "5月7日8时0分",
    "value": 771.54,
    "level": 771.50,
    "level_name": "正常水位",
    "excess": 0.04,
    "rise": 0.62,
    "window": "1小时",
    "silent_for": "15分钟",
    "severity": "黄色",
    "threshold": 50.0,
    "gap": "(其中20分钟无数据)",
}


def _checked_template(template: str | None) -> str | None:
    if template is not None:
        check_template(template)
    return template


# A message a rule may leave out, its placeholders checked like every message's.
OptionalTemplate = Annotated[str | None, AfterValidator(_checked_template)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    kinds: tuple[StationKind, ...] = (StationKind.RIVER, StationKind.RESERVOIR)
    severity: Severity
    roles: tuple[Role, ...] = STATION_ROLES
    message: str
    clear_message: str | None = None
    # The 叫应 ladder of this rule's alerts: a ladder's id, "none", or unset for the ladder
    # whose ``severities`` name this rule's severity (if any).
    ladder: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")

    @field_validator("message", "clear_message")
    @classmethod
    def _known_placeholders(cls, template: str | None) -> str | None:
        return _checked_template(template)

    @field_validator("roles", "kinds")
    @classmethod
    def _not_empty(cls, value: tuple[object, ...]) -> tuple[object, ...]:
        if not value:
            raise ValueError("must name at least one")
        return value

    @field_validator("roles")
    @classmethod
    def _station_roles(cls, roles: tuple[Role, ...]) -> tuple[Role, ...]:
        if DUTY_DESK_ROLES & set(roles):
            raise ValueError(
                "a rule addresses a station's persons (administrative, technical, patrol); the"
                " duty desk is told by hydro itself"
            )
        return roles


class LevelRule(_Rule):
    type: Literal["threshold"]
    level: LevelField
    condition: Literal["at_or_above", "above"] = "at_or_above"
    family: str
    rank: int = Field(ge=1)
    in_flood_season_only: bool = False
    # Sent when an alert of a higher rank falls back to this one (保证 -> 警戒): people told of
    # the higher level must hear that it is over, though the alert is not.
    step_down_message: OptionalTemplate = None

    def crossed(self, value: float, level: float) -> bool:
        return value >= level if self.condition == "at_or_above" else value > level


class RainfallRule(_Rule):
    type: Literal["rainfall"]
    kinds: tuple[StationKind, ...] = tuple(StationKind)  # any station with a rain gauge
    window: Duration
    threshold: float = Field(gt=0)  # mm within the window
    clear_margin: float = Field(5.0, ge=0)  # mm: clears only below threshold minus this
    family: str
    rank: int = Field(ge=1)

    @field_validator("window")
    @classmethod
    def _whole_slots(cls, value: dt.timedelta) -> dt.timedelta:
        seconds = value.total_seconds()
        if seconds <= 0 or seconds % 300 or seconds > 86400:
            raise ValueError("must be a multiple of 5m, at most 24h (gauges report every 5m)")
        return value

    @property
    def slots(self) -> int:
        """The window in 5-minute report slots."""
        return int(self.window.total_seconds()) // 300


class RateOfRiseRule(_Rule):
    type: Literal["rate_of_rise"]
    rise: float = Field(gt=0)  # metres
    window: Duration = dt.timedelta(hours=1)


class SilenceRule(_Rule):
    type: Literal["silence"]
    kinds: tuple[StationKind, ...] = tuple(StationKind)
    roles: tuple[Role, ...] = (Role.TECHNICAL, Role.PATROL)
    after: Duration = dt.timedelta(minutes=15)
    # Sent instead of ``message`` when the station has an open level alert: the alert stays
    # open (gauges are often destroyed at the peak) and people must know why data stopped.
    during_alert_message: OptionalTemplate = None


# Levels a ladder escalates to, in the order it names them: the county's or the prefecture's
# 防汛负责人 (stations/flood_contacts.csv), then the duty officers.
EscalationLevel = Literal["county", "prefecture", "duty"]


class LadderPolicy(BaseModel):
    """叫应: whom to call for an alert, how often again, and whom next while nobody answers.

    The station persons of ``call`` are called at once (the rule's SMS goes as always); one who
    has not confirmed after ``call_again`` is called again, up to ``attempts`` calls. While
    nobody has confirmed, every ``escalate_after`` the alert climbs one level of
    ``escalate_to`` (call and SMS); the last level (by default the duty officers) is repeated
    every ``repeat_interval`` until someone confirms, an operator acks or the alert clears.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    severities: tuple[Severity, ...] = ()  # rules of these severities use it unless they name one
    call: tuple[Role, ...] = STATION_ROLES
    call_again: Duration = dt.timedelta(minutes=3)
    attempts: int = Field(3, ge=1, le=10)
    escalate_after: Duration = dt.timedelta(minutes=10)
    escalate_to: tuple[EscalationLevel, ...] = ("county", "duty")
    repeat_interval: Duration = dt.timedelta(minutes=10)
    link: bool = True  # each person's SMS ends with a personal confirmation link

    @field_validator("call")
    @classmethod
    def _station_roles(cls, roles: tuple[Role, ...]) -> tuple[Role, ...]:
        if not roles or any(role not in STATION_ROLES for role in roles):
            raise ValueError("must name station persons: administrative, technical, patrol")
        return roles

    @field_validator("call_again", "escalate_after", "repeat_interval")
    @classmethod
    def _at_least_a_minute(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(minutes=1):
            raise ValueError("must be at least 1m: a person needs time to answer")
        return value

    @field_validator("escalate_to")
    @classmethod
    def _once_each(cls, levels: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(levels)) != len(levels):
            raise ValueError("names a level twice")
        return levels


NO_LADDER = "none"

Rule = Annotated[
    LevelRule | RateOfRiseRule | SilenceRule | RainfallRule, Field(discriminator="type")
]


class RuleFile(BaseModel):
    """One ``alert_rules/*.yaml`` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...]
    ladders: tuple[LadderPolicy, ...] = ()

    @field_validator("rules")
    @classmethod
    def _one_rule_per_rank(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        seen: dict[tuple[str, int], str] = {}
        family_type: dict[str, str] = {}
        for rule in rules:
            if isinstance(rule, LevelRule | RainfallRule):
                other = seen.setdefault((rule.family, rule.rank), rule.id)
                if other != rule.id:
                    raise ValueError(
                        f"rules {other} and {rule.id} share family {rule.family!r} and rank"
                        f" {rule.rank}: escalation needs one rule per rank"
                    )
                if family_type.setdefault(rule.family, rule.type) != rule.type:
                    raise ValueError(
                        f"family {rule.family!r} mixes threshold and rainfall rules ({rule.id})"
                    )
        return rules


def check_template(template: str) -> None:
    """Raises ValueError naming an unknown placeholder or a format that cannot apply."""
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            known = ", ".join(TEMPLATE_FIELDS)
            raise ValueError(f"unknown placeholder {{{field}}} (known: {known})")
        try:
            format(TEMPLATE_FIELDS[field], spec or "")
        except ValueError as exc:
            raise ValueError(f"placeholder {{{field}:{spec}}}: {exc}") from exc
