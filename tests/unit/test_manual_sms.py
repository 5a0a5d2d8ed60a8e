"""Manual SMS, pure: whom a send reaches (once each by phone) and the exact text each gets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from hydro.desk.compose import Limits, compose, notifications
from hydro.desk.recipients import Audience, AudienceKind, Directory
from hydro.errors import SmsRefused
from hydro.models import Recipient, Role, Station
from hydro.rules import load_rules
from hydro.rules.messages import rule_text
from hydro.stations import Registry, generate_stations
from tests.support import REPO, station

LIMITS = Limits(signature="【防汛】", max_length=120)
DUTY = Recipient(Role.DUTY, "值班员", "+8613900000000")
SHARED = Recipient(Role.ADMINISTRATIVE, "王县长", "+8613800009999")


def _station(code: str, county: str, river: str, *, shared: bool = False) -> Station:
    base = station(code)
    persons = tuple(
        dataclasses.replace(p, phone=f"+86138{code[-3:]}{i:05d}")
        for i, p in enumerate(base.persons)
    )
    if shared:
        persons = (SHARED, *persons[1:])
    return dataclasses.replace(
        base, county=county, river=river, name=f"站{code[-3:]}", persons=persons
    )


@pytest.fixture
def directory() -> Directory:
    registry = Registry.of(
        [
            _station("61000001", "台江县", "清水江", shared=True),
            _station("61000002", "台江县", "翁密河", shared=True),
            _station("61000003", "剑河县", "清水江"),
        ]
    )
    return Directory(registry, {"防指": [DUTY, SHARED]})


def _phones(directory: Directory, audience: Audience, **kwargs: object) -> list[str]:
    return [a.recipient.phone for a in directory.addressees(audience, **kwargs)]  # type: ignore[arg-type]


def test_a_person_of_several_stations_is_one_recipient_named_with_them(
    directory: Directory,
) -> None:
    county = directory.addressees(Audience(AudienceKind.COUNTY, "台江县"))
    assert len(county) == 5  # 2 stations x 3 persons, 王县长 once
    shared = [a for a in county if a.recipient == SHARED]
    assert [s.code for s in shared[0].stations] == ["61000001", "61000002"]
    preview = compose("{name}: {station}水位上涨", county, Audience(AudienceKind.COUNTY), LIMITS)
    assert preview.messages[0].text == "【防汛】王县长: 站001、站002水位上涨"


@pytest.mark.parametrize(
    ("audience", "count"),
    [
        (Audience(AudienceKind.STATION, "61000003"), 3),
        (Audience(AudienceKind.PREFECTURE, "黔东南州"), 8),
        (Audience(AudienceKind.RIVER, "清水江"), 6),
        (Audience(AudienceKind.RIVER, "翁密河"), 3),
        (Audience(AudienceKind.GROUP, "防指"), 2),
    ],
)
def test_each_audience_reaches_its_persons(
    directory: Directory, audience: Audience, count: int
) -> None:
    phones = _phones(directory, audience)
    assert len(phones) == count == len(set(phones))


def test_in_alert_takes_the_stations_with_open_alerts_of_the_severity(
    directory: Directory,
) -> None:
    alerts = {"61000001": frozenset({"yellow"}), "61000003": frozenset({"red", "blue"})}
    everyone = _phones(directory, Audience(AudienceKind.IN_ALERT), in_alert=alerts)
    red = _phones(directory, Audience(AudienceKind.IN_ALERT, "red"), in_alert=alerts)
    assert len(everyone) == 6
    assert red == _phones(directory, Audience(AudienceKind.STATION, "61000003"))


def test_duty_is_whoever_is_on_duty_now(directory: Directory) -> None:
    assert _phones(directory, Audience(AudienceKind.DUTY), on_duty=[DUTY, DUTY]) == [DUTY.phone]


@pytest.mark.parametrize(
    ("audience", "named"),
    [
        (Audience(AudienceKind.STATION, "99999999"), "unknown station '99999999'"),
        (Audience(AudienceKind.COUNTY, "无此县"), "unknown county '无此县'"),
        (Audience(AudienceKind.PREFECTURE, "无此州"), "unknown prefecture '无此州'"),
        (Audience(AudienceKind.RIVER, "无此河"), "unknown river '无此河'"),
        (Audience(AudienceKind.GROUP, "无此组"), "unknown group '无此组' (groups: 防指)"),
        (Audience(AudienceKind.COUNTY), "name the county"),
    ],
)
def test_unknown_names_are_refused_by_name(
    directory: Directory, audience: Audience, named: str
) -> None:
    with pytest.raises(SmsRefused, match=re.escape(named)):
        directory.addressees(audience)


def test_bad_texts_and_nobody_to_send_to_are_refused(directory: Directory) -> None:
    some = directory.addressees(Audience(AudienceKind.STATION, "61000001"))
    audience = Audience(AudienceKind.STATION, "61000001")
    with pytest.raises(SmsRefused, match="the text is empty"):
        compose("  \n", some, audience, LIMITS)
    with pytest.raises(SmsRefused, match=r"too long: 125 characters .* over sms.max_length 120"):
        compose("水" * 121, some, audience, LIMITS)
    with pytest.raises(SmsRefused, match="the text contains an unpaired surrogate at 1"):
        compose("水\udcff", some, audience, LIMITS)  # a non-UTF-8 byte in argv, escaped
    with pytest.raises(SmsRefused, match="nobody to send to: in_alert has no recipients"):
        compose("text", (), Audience(AudienceKind.IN_ALERT), LIMITS)


def test_the_preview_counts_characters_and_segments_as_carriers_do(directory: Directory) -> None:
    some = directory.addressees(Audience(AudienceKind.STATION, "61000001"))
    audience = Audience(AudienceKind.STATION, "61000001")
    chinese = compose("水" * 66, some, audience, Limits("【防汛】", 500))
    assert [m.characters for m in chinese.messages] == [70, 70, 70]
    assert {(m.length.encoding, m.length.segments) for m in chinese.messages} == {("UCS-2", 1)}
    plain = compose("Water {code} {unknown}", some, audience, Limits("", 500))
    assert plain.messages[0].text == "Water 61000001 {unknown}"  # other braces stay as written
    assert (plain.messages[0].length.encoding, plain.segments) == ("GSM-7", 3)
    longer = compose("水" * 67, some, audience, Limits("【防汛】", 500))
    assert longer.segments == 3 * 2
    assert longer.confirm != chinese.confirm
    assert longer.confirm.startswith("3-")


def test_messages_are_queued_about_the_first_station_and_the_alert(directory: Directory) -> None:
    county = directory.addressees(Audience(AudienceKind.COUNTY, "台江县"))
    preview = compose("text", county, Audience(AudienceKind.COUNTY, "台江县"), LIMITS)
    queued = notifications(preview, 7)
    assert [n.station for n in queued] == ["61000001"] * 3 + ["61000002"] * 2
    assert {n.alert_id for n in queued} == {7}


def test_a_rule_text_is_what_rules_test_prints() -> None:
    rules = load_rules(REPO / "alert_rules")
    maichong = station("67901001")
    at = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)
    texts = {rule.id: rule_text(rule, maichong, observed_at=at) for rule in rules.rules}
    assert "8时0分水位达到775.00米,超警戒水位0.00米" in texts["river_warning"]
    assert "前3小时降雨量达到100.0毫米" in texts["rainstorm_red"]
    assert "15分钟未收到监测数据" in texts["station_silent"]


def test_a_prefecture_of_the_full_registry_is_deduplicated() -> None:
    registry = Registry.of(generate_stations(6951))
    directory = Directory(registry, {})
    sizes = {
        p: sum(s.prefecture == p for s in registry.stations)
        for p in directory.names(AudienceKind.PREFECTURE)
    }
    largest = max(sizes, key=sizes.__getitem__)
    addressees = directory.addressees(Audience(AudienceKind.PREFECTURE, largest))
    phones = {p.phone for s in registry.stations if s.prefecture == largest for p in s.persons}
    assert len(addressees) == len(phones) > 2000
