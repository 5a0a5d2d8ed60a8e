"""The text of an SMS, from a rule's template and what was observed. Pure."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hydro.models import Station
from hydro.rules.model import (
    LEVEL_NAMES,
    LevelRule,
    RainfallRule,
    RateOfRiseRule,
    Rule,
    Severity,
    SilenceRule,
)
from hydro.texts import SEVERITY_NAMES


def render(
    template: str,
    station: Station,
    *,
    observed_at: dt.datetime,
    severity: Severity,
    value: float | None = None,
    level_field: str | None = None,
    rise: float | None = None,
    window: dt.timedelta | None = None,
    silent_for: dt.timedelta | None = None,
    threshold: float | None = None,
    missing: dt.timedelta | None = None,
) -> str:
    """Fills ``template``; times are the station's local time, as its people read them.

    Placeholders the situation does not provide (a rise for a level rule) render as empty, which
    ``hydro check`` cannot rule out for a template shared by several rule types.
    """
    local = observed_at.astimezone(station.tz)
    level = getattr(station, level_field) if level_field else None
    context: dict[str, object] = {
        "prefecture": station.prefecture,
        "county": station.county,
        "station": station.name,
        "code": station.code,
        "river": station.river,
        "month": local.month,
        "day": local.day,
        "hour": local.hour,
        "minute": local.minute,
        "time": f"{local.month}月{local.day}日{local.hour}时{local.minute}分",
        "value": value,
        "level": level,
        "level_name": LEVEL_NAMES.get(level_field or "", ""),
        "excess": None if value is None or level is None else round(value - level, 2),
        "rise": rise,
        "window": _chinese_duration(window),
        "silent_for": _chinese_duration(silent_for),
        "severity": SEVERITY_NAMES[severity],
        "threshold": threshold,
        # Unknown rain is not zero rain: a window with gaps says how much is unknown.
        "gap": f"(其中{_chinese_duration(missing)}无数据)" if missing else None,
    }
    return template.format_map(_Blank(context))


def rule_text(
    rule: Rule, station: Station, *, observed_at: dt.datetime, value: float | None = None
) -> str:
    """The rule's message filled for the station as the rule itself would fill it: what
    ``hydro rules test`` prints, and what the duty desk starts a manual SMS from. Without a
    ``value``, a level rule is filled at its own level (the water just reaching it), a rainfall
    rule at its threshold."""
    situation: dict[str, Any] = {}
    match rule:
        case LevelRule():
            situation = {"level_field": rule.level}
            value = getattr(station, rule.level) if value is None else value
        case RateOfRiseRule():
            situation = {"rise": rule.rise, "window": rule.window}
        case RainfallRule():
            situation = {"window": rule.window, "threshold": rule.threshold}
            value = rule.threshold if value is None else value
        case SilenceRule():
            situation = {"silent_for": rule.after}
    return render(
        rule.message,
        station,
        observed_at=observed_at,
        severity=rule.severity,
        value=value,
        **situation,
    )


class _Blank(dict[str, object]):
    """Formats a missing value as nothing rather than failing a message that must go out."""

    def __getitem__(self, key: str) -> object:
        value = super().__getitem__(key)
        return _Empty() if value is None else value


class _Empty:
    def __format__(self, spec: str) -> str:
        return ""


def _chinese_duration(span: dt.timedelta | None) -> str | None:
    if span is None:
        return None
    minutes = int(span.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}天"
    if minutes % 60 == 0:
        return f"{minutes // 60}小时"
    return f"{minutes}分钟"
