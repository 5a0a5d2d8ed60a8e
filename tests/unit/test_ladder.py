"""The 叫应 ladder as pure logic: time passes, people answer, operators ack, alerts clear."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from hydro.alerts.ladder import LadderAlert, LadderStep, TakenStep, due_steps
from hydro.models import Answer, Channel, Confirmation, Recipient, Role
from hydro.rules import Rule, load_rules, render
from hydro.stations import load_registry
from hydro.texts import escalation_sms, sms_length, with_link
from tests.support import REPO, station

RULES = load_rules(REPO / "alert_rules")
RED = RULES.ladder_of("reservoir_design_flood")
ORANGE = RULES.ladder_of("river_guaranteed")
T0 = dt.datetime(2026, 7, 1, 19, 0, tzinfo=dt.UTC)
STATION = station("67901001")
PERSONS = {p.role: p for p in STATION.persons}
COUNTY = Recipient(Role.COUNTY, "县长", "+8613900000001")
DUTY = (Recipient(Role.DUTY, "值班甲", "+8613900000002"),)
REACH = {"county": (COUNTY,), "duty": DUTY}


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def alert(*taken: tuple[str, float], **changes: object) -> LadderAlert:
    steps = tuple(TakenStep(key, minutes(at)) for key, at in taken)
    found = LadderAlert(1, STATION, "red", True, None, steps, ())
    return dataclasses.replace(found, **changes)  # type: ignore[arg-type]


FIRST_CALLS = [("red:call:administrative:1", 0), ("red:call:technical:1", 0)]
FIRST_CALLS += [("red:call:patrol:1", 0)]
CALLED_THRICE = [
    (f"red:call:{role}:{n}", 3 * (n - 1))
    for role in ("administrative", "technical", "patrol")
    for n in (1, 2, 3)
]


def confirmed_by(person: Recipient, answer: Answer = Answer.KEYPRESS) -> tuple[Confirmation]:
    return (Confirmation(1, person, answer, minutes(1), person.name),)


@pytest.mark.parametrize(
    ("case", "at", "expected"),
    [
        (alert(), 0, [k for k, _ in FIRST_CALLS]),
        (alert(*FIRST_CALLS), 2.9, []),
        (alert(*FIRST_CALLS), 3, [k.replace(":1", ":2") for k, _ in FIRST_CALLS]),
        (alert(*CALLED_THRICE), 9.9, []),
        (alert(*CALLED_THRICE), 10, ["red:county:1"]),
        (alert(*CALLED_THRICE, ("red:county:1", 10)), 19.9, []),
        (alert(*CALLED_THRICE, ("red:county:1", 12)), 22, ["red:duty:1"]),
        (alert(*CALLED_THRICE, ("red:county:1", 10), ("red:duty:1", 20)), 30, ["red:duty:2"]),
        # hydro was down for an hour: what fell due goes now, and what follows it counts from
        # when it is taken
        (
            alert(*FIRST_CALLS),
            60,
            [*(k.replace(":1", ":2") for k, _ in FIRST_CALLS), "red:county:1"],
        ),
        (alert(*FIRST_CALLS, confirmations=confirmed_by(PERSONS[Role.PATROL])), 3, ["red:stop"]),
        (alert(*FIRST_CALLS, ("red:stop", 1)), 30, []),
        # confirmed as orange, then escalated to red: red's ladder asks again from the start
        (alert(("orange:call:technical:1", 0), ("orange:stop", 1)), 5, [k for k, _ in FIRST_CALLS]),
        # answered before red's ladder began (the link in the red SMS): no call, nothing to stop
        (alert(confirmations=confirmed_by(PERSONS[Role.PATROL])), 0, []),
        (alert(*FIRST_CALLS, acknowledged_by="王值班"), 3, ["stop"]),
        (alert(*FIRST_CALLS, open=False), 3, ["stop"]),
        (alert(*FIRST_CALLS, ("stop", 1), open=False), 30, []),
        (alert(open=False), 0, []),  # cleared before its ladder began: nothing to stop
        # the county's 防汛负责人 answers: the climb stops before the duty desk
        (
            alert(*CALLED_THRICE, ("red:county:1", 10), confirmations=confirmed_by(COUNTY)),
            40,
            ["red:stop"],
        ),
    ],
)
def test_red_ladder(case: LadderAlert, at: float, expected: list[str]) -> None:
    steps = due_steps(case, RED, REACH, minutes(at))
    assert [s.key for s in steps] == expected


def test_steps_say_why_and_whom() -> None:
    [*_, patrol] = due_steps(alert(*FIRST_CALLS), RED, REACH, minutes(3))
    assert patrol == LadderStep(
        "red:call:patrol:2",
        "巡查责任人未确认, 第2次呼叫",
        (PERSONS[Role.PATROL],),
        (Channel.VOICE,),
    )
    [county] = due_steps(alert(*CALLED_THRICE), RED, REACH, minutes(10))
    assert county == LadderStep(
        "red:county:1",
        "10分钟无人确认, 升级至县防汛负责人",
        (COUNTY,),
        (Channel.VOICE, Channel.SMS),
    )
    [stop] = due_steps(
        alert(*FIRST_CALLS, confirmations=confirmed_by(PERSONS[Role.PATROL], Answer.LINK)),
        RED,
        REACH,
        minutes(3),
    )
    assert stop.reason == f"巡查责任人{PERSONS[Role.PATROL].name}已确认(短信链接), 停止叫应"


def test_a_county_without_a_contact_is_recorded_and_the_duty_desk_follows_at_once() -> None:
    reach = {"duty": DUTY}
    [county] = due_steps(alert(*CALLED_THRICE), RED, reach, minutes(10))
    assert county.recipients == ()
    assert (
        county.reason
        == "10分钟无人确认, 升级至县防汛负责人: 台江县无县防汛负责人联系方式, 继续下一级"
    )
    taken = alert(*CALLED_THRICE, ("red:county:1", 10))
    [duty] = due_steps(taken, RED, reach, minutes(10))
    assert (duty.key, duty.recipients) == ("red:duty:1", DUTY)
    assert duty.reason == "上一级无人可联系, 升级至值班员"
    # no duty officers either: recorded once, never repeated
    nobody = alert(*CALLED_THRICE, ("red:county:1", 10), ("red:duty:1", 10))
    assert due_steps(nobody, RED, {}, minutes(100)) == []


def test_a_station_without_a_person_is_recorded_once() -> None:
    lonely = dataclasses.replace(STATION, persons=(PERSONS[Role.TECHNICAL],))
    steps = due_steps(alert(station=lonely), RED, REACH, minutes(0))
    assert [(s.key, s.recipients) for s in steps] == [
        ("red:call:administrative:1", ()),
        ("red:call:technical:1", (PERSONS[Role.TECHNICAL],)),
        ("red:call:patrol:1", ()),
    ]
    assert steps[0].reason == "测站无行政责任人电话, 无法呼叫"
    taken = alert(*FIRST_CALLS, station=lonely)
    assert [s.key for s in due_steps(taken, RED, REACH, minutes(3))] == ["red:call:technical:2"]


def test_orange_calls_the_technical_person_and_climbs_alike() -> None:
    orange = alert(severity="orange")
    assert [s.key for s in due_steps(orange, ORANGE, REACH, minutes(0))] == [
        "orange:call:technical:1"
    ]
    assert due_steps(orange, None, REACH, minutes(0)) == []  # yellow, blue: SMS only


def test_an_alert_climbing_from_orange_to_red_starts_the_red_ladder() -> None:
    was_orange = alert(("orange:call:technical:1", 0), ("orange:call:technical:2", 3))
    steps = due_steps(was_orange, RED, REACH, minutes(5))
    assert [s.key for s in steps] == [k for k, _ in FIRST_CALLS]


# The longest a default rule's message gets: the sample registry's longest names, the last
# minute of the year, a level 9.99 m over, 999.9 mm of rain with all but one report missing.
REGISTRY = load_registry(REPO / "stations", "Asia/Shanghai")
LATE = dt.datetime(2026, 12, 31, 15, 59, tzinfo=dt.UTC)
URL = "https://hydro.example.org/c/" + "x" * 11  # a code is 11 characters


def longest_message(rule: Rule) -> str:
    texts = []
    for st in REGISTRY.stations:
        if st.kind not in rule.kinds:
            continue
        level = getattr(rule, "level", None)
        window = getattr(rule, "window", None)
        texts.append(
            render(
                rule.message,
                st,
                observed_at=LATE,
                severity=rule.severity,
                value=(getattr(st, level) + 9.99) if level else 999.9,
                level_field=level,
                window=window,
                threshold=100.0,
                missing=window - dt.timedelta(minutes=5) if window else None,
            )
        )
    return max(texts, key=lambda text: sms_length(text).units)


LINKED = [rule for rule in RULES.rules if (ladder := RULES.ladder_of(rule.id)) and ladder.link]


@pytest.mark.parametrize("rule", LINKED, ids=[rule.id for rule in LINKED])
def test_the_longest_linked_sms_of_a_default_rule_fits_two_segments(rule: Rule) -> None:
    text = longest_message(rule)
    assert sms_length(with_link(text, URL)).segments <= 2, text
    escalation = escalation_sms(text, URL)
    assert sms_length(escalation).segments <= 2, escalation
    assert escalation.startswith("【无人叫应】" + text.split(",")[0])
    assert escalation.endswith(" 确认" + URL)


def test_an_escalation_sms_keeps_who_where_and_how_bad_when_cut() -> None:
    long = "贵阳市开阳县禾丰水文站水位达到910.20米," + "请立即组织巡查防守," * 10 + "做好转移准备"
    cut = escalation_sms(long, URL)
    assert sms_length(cut).segments == 2
    assert cut.startswith("【无人叫应】贵阳市开阳县禾丰水文站水位达到910.20米,请立即组织巡查防守")
    # the message as the persons got it, their link and all: the county gets its own link
    assert (
        escalation_sms(with_link("麦冲水库水位超设计洪水位", URL))
        == "【无人叫应】麦冲水库水位超设计洪水位"
    )


def test_nobody_is_called_again_while_their_last_call_waits_to_be_placed() -> None:
    """In a wide flood the call rate is a backlog: the administrative person's first call has
    not rung yet, so they get no second one; the others, whose calls rang, do."""
    steps = tuple(
        TakenStep(key, minutes(at), waiting=key == "red:call:administrative:1")
        for key, at in FIRST_CALLS
    )
    due = due_steps(alert(taken=steps), RED, REACH, minutes(3))
    assert [s.key for s in due] == ["red:call:technical:2", "red:call:patrol:2"]
    # the climb does not wait for it: nobody has confirmed after escalate_after
    later = due_steps(alert(taken=steps), RED, REACH, minutes(10))
    assert "red:county:1" in [s.key for s in later]
