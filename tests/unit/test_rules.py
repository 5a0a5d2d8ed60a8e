"""Alert rules: strict loading with file and line, level verdicts, and the exact SMS text."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from hydro.cli import main
from hydro.models import AlertChangeKind, FloodSeason, StationKind
from hydro.rules import Severity, check_rules, load_rules, render
from hydro.rules.evaluate import by_family_and_rank
from hydro.rules.levels import alert_levels, level_verdicts, threshold_sms
from hydro.stations import load_registry
from tests.support import station

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = load_rules(REPO / "alert_rules")
REGISTRY = load_registry(REPO / "stations", "Asia/Shanghai")
MAY_7_0800 = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)
FAMILIES = by_family_and_rank(DEFAULTS.level_rules)[1]


def sms(code: str, value: float, at: dt.datetime = MAY_7_0800) -> list[tuple[str, str]]:
    """(rule id, text) for the level an alert would stand at, per family."""
    target = REGISTRY.by_code[code]
    return [
        (
            v.rule.id,
            render(
                v.rule.message,
                target,
                observed_at=at,
                severity=v.rule.severity,
                value=value,
                level_field=v.rule.level,
            ),
        )
        for v in alert_levels(level_verdicts(DEFAULTS, target, value, at))
    ]


def test_the_reference_message_word_for_word() -> None:
    assert sms("67901001", 771.54) == [
        (
            "reservoir_normal",
            "黔东南州台江县麦冲水库5月7日8时0分水位达到771.54米,超正常水位0.04米,"
            "请及时复核并提醒相关责任人戒备,注意防范",
        )
    ]


HEFENG_AT = "贵阳市开阳县禾丰水文站5月7日8时0分水位"  # warning 908.50, guaranteed 910.00
MAICHONG_AT = "黔东南州台江县麦冲水库{}8时0分水位"  # 汛限 770.50 (05-01..09-30), 正常 771.50
DECEMBER_1_0800 = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("code", "change", "rank", "value", "at", "expected"),
    [
        (
            "61901002",
            AlertChangeKind.OPEN,
            2,
            910.20,
            MAY_7_0800,
            HEFENG_AT + "达到910.20米,超保证水位0.20米,请立即组织巡查防守,做好转移准备",
        ),
        # An escalated alert clears below the warning level: it names that level, and the
        # orange warning it lifts.
        (
            "61901002",
            AlertChangeKind.CLEAR,
            2,
            908.30,
            MAY_7_0800,
            HEFENG_AT + "回落至908.30米,已低于警戒水位908.50米,橙色预警解除",
        ),
        (
            "61901002",
            AlertChangeKind.CLEAR,
            1,
            908.30,
            MAY_7_0800,
            HEFENG_AT + "回落至908.30米,已低于警戒水位908.50米,黄色预警解除",
        ),
        (
            "61901002",
            AlertChangeKind.STEP_DOWN,
            1,
            909.50,
            MAY_7_0800,
            HEFENG_AT + "回落至909.50米,已低于保证水位910.00米,降为黄色预警,请继续加强巡查",
        ),
        (
            "67901001",
            AlertChangeKind.STEP_DOWN,
            1,
            771.00,
            MAY_7_0800,
            MAICHONG_AT.format("5月7日")
            + "回落至771.00米,已低于正常水位771.50米,降为蓝色预警,请按调度规程控制水位",
        ),
        (
            "67901001",
            AlertChangeKind.CLEAR,
            3,
            770.00,
            MAY_7_0800,
            MAICHONG_AT.format("5月7日") + "回落至770.00米,已低于汛限水位770.50米,红色预警解除",
        ),
        # Out of the flood season the flood-limit level does not apply: the lowest is 正常.
        (
            "67901001",
            AlertChangeKind.CLEAR,
            3,
            770.00,
            DECEMBER_1_0800,
            MAICHONG_AT.format("12月1日") + "回落至770.00米,已低于正常水位771.50米,红色预警解除",
        ),
    ],
)
def test_what_each_level_transition_says(
    code: str,
    change: AlertChangeKind,
    rank: int,
    value: float,
    at: dt.datetime,
    expected: str,
) -> None:
    family = next(f for f in FAMILIES if f[0].kinds == (REGISTRY.by_code[code].kind,))
    assert (
        threshold_sms(family, REGISTRY.by_code[code], change, rank, observed_at=at, value=value)
        == expected
    )


@pytest.mark.parametrize(
    ("code", "value", "expected"),
    [
        ("61901002", 906.63, []),  # 禾丰水文站 at its recent, normal level
        ("61901002", 908.50, ["river_warning"]),  # at the warning level counts (达到)
        ("61901002", 910.20, ["river_guaranteed"]),  # the family's highest rank only
        ("67901001", 771.50, ["reservoir_flood_limit"]),  # at normal level is not above it
        ("67901001", 773.21, ["reservoir_design_flood"]),
    ],
)
def test_level_rules_escalate_within_their_family(
    code: str, value: float, expected: list[str]
) -> None:
    assert [rule for rule, _ in sms(code, value)] == expected


def test_flood_limit_applies_only_inside_the_flood_season() -> None:
    reservoir = station("R1", kind=StationKind.RESERVOIR)
    reservoir = reservoir.__class__(
        **{
            **reservoir.__dict__,
            "flood_limit_level": 770.5,
            "flood_season": FloodSeason((5, 1), (9, 30)),
        }
    )
    in_season = level_verdicts(
        DEFAULTS, reservoir, 771.0, dt.datetime(2026, 9, 30, 12, tzinfo=dt.UTC)
    )
    # 2026-09-30 16:00 UTC is already October 1st in Asia/Shanghai: the season is over.
    after = level_verdicts(DEFAULTS, reservoir, 771.0, dt.datetime(2026, 9, 30, 16, tzinfo=dt.UTC))
    assert [v.rule.id for v in in_season if v.fires] == ["reservoir_flood_limit"]
    assert [v.rule.id for v in after if v.fires] == []
    assert [v.rule.id for v in after if v.crossed] == ["reservoir_flood_limit"]


def test_messages_render_times_in_the_station_zone_and_durations_in_chinese() -> None:
    berlin = station("B1", timezone="Europe/Berlin")
    text = render(
        "{station}{time}{window}内上涨{rise:.2f}米;{silent_for};{severity};{excess}",
        berlin,
        observed_at=dt.datetime(2026, 5, 7, 6, 5, tzinfo=dt.UTC),
        severity=Severity.ORANGE,
        value=1.0,
        rise=0.62,
        window=dt.timedelta(hours=1),
        silent_for=dt.timedelta(minutes=15),
    )
    assert text == "测站B15月7日8时5分1小时内上涨0.62米;15分钟;橙色;"


def write_rules(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


RULE = """rules:
  - id: r1
    type: threshold
    name: 超警戒水位
    kinds: [river]
    level: warning_level
    family: f
    rank: 1
    severity: yellow
    message: "{station}{value:.2f}"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            RULE.replace("    rank: 1\n", "    rank: 1\n    colour: red\n"),
            ":9: rules.0.threshold.colour: unknown key",
        ),
        (
            RULE.replace("yellow", "purple"),
            ":9: rules.0.threshold.severity: Input should be 'blue'",
        ),
        (
            RULE.replace("{value:.2f}", "{valeu}"),
            ":10: rules.0.threshold.message: Value error, unknown placeholder {valeu}",
        ),
        (
            RULE.replace("{value:.2f}", "{station:.2f}"),
            ":10: rules.0.threshold.message: Value error, placeholder {station:.2f}",
        ),
        (
            RULE.replace("warning_level", "warn_level"),
            ":6: rules.0.threshold.level: Input should be",
        ),
        (RULE.replace("    family: f\n", ""), ":2: rules.0.threshold.family: Field required"),
        (RULE.replace("type: threshold", "type: flood"), ":2: rules.0: Input tag 'flood'"),
        (
            RULE + RULE[7:].replace("id: r1", "id: r2"),
            ":1: rules: Value error, rules r1 and r2 share family 'f'",
        ),
        ("rules:\n  - id: [\n", ":3: not valid YAML"),
        (
            RULE.replace("    rank: 1\n", "    rank: 1\n    roles: [patrol, duty]\n"),
            ":9: rules.0.threshold.roles: Value error, a rule addresses a station's persons",
        ),
    ],
)
def test_rule_file_problems_name_file_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write_rules(tmp_path / "rules", "a.yaml", text)
    _, problems = check_rules(path.parent)
    rendered = [str(p).removeprefix(str(path)) for p in problems]
    assert any(p.startswith(expected) for p in rendered), rendered


LADDER = """
ladders:
  - id: loud
    severities: [yellow]
    call: [patrol]
    call_again: 3m
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RULE + LADDER.replace("call_again", "call_agian"), ":16: ladders.0.call_agian: unknown"),
        (RULE + LADDER.replace("3m", "10s"), ":16: ladders.0.call_again: Value error, must be at"),
        (RULE + LADDER.replace("[patrol]", "[duty]"), ":15: ladders.0.call: Value error, must"),
        (
            RULE.replace("    rank: 1\n", "    rank: 1\n    ladder: lound\n"),
            ":9: rule r1: ladder 'lound' is not defined in any ladders: section",
        ),
        (
            RULE + LADDER + LADDER[10:].replace("id: loud", "id: quiet"),
            ":17: ladder quiet: severities yellow already default to ladder loud",
        ),
    ],
)
def test_ladder_problems_name_file_policy_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write_rules(tmp_path / "rules", "a.yaml", text)
    _, problems = check_rules(path.parent)
    rendered = [str(p).removeprefix(str(path)) for p in problems]
    assert any(p.startswith(expected) for p in rendered), rendered


def test_default_ladders_call_red_and_orange_alerts_only() -> None:
    ladders = {rule.id: DEFAULTS.ladder_of(rule.id) for rule in DEFAULTS.rules}
    assert {i for i, ladder in ladders.items() if ladder and ladder.id == "red"} == {
        "reservoir_design_flood",
        "rainstorm_red",
    }
    assert {i for i, ladder in ladders.items() if ladder and ladder.id == "orange"} == {
        "river_guaranteed",
        "rainstorm_orange",
    }
    red = DEFAULTS.ladder_of("rainstorm_red")
    assert red is not None
    assert (red.call_again, red.attempts, red.escalate_after) == (
        dt.timedelta(minutes=3),
        3,
        dt.timedelta(minutes=10),
    )
    assert red.escalate_to == ("county", "duty")


def test_a_rule_may_name_a_ladder_or_none(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write_rules(folder, "a.yaml", RULE.replace("    rank: 1\n", "    rank: 1\n    ladder: none\n"))
    write_rules(folder, "b.yaml", LADDER.lstrip() + "rules: []\n")
    rules, problems = check_rules(folder)
    assert problems == []
    assert rules.ladder_of("r1") is None
    write_rules(folder, "a.yaml", RULE)
    ladder = load_rules(folder).ladder_of("r1")
    assert ladder is not None
    assert ladder.id == "loud"


def test_rule_ids_are_unique_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write_rules(folder, "a.yaml", RULE)
    second = write_rules(folder, "b.yaml", RULE.replace("family: f", "family: g"))
    rules, problems = check_rules(folder)
    assert len(rules.rules) == 1
    assert [str(p) for p in problems] == [
        f"{second}:2: rule id 'r1' is already used (first at {folder / 'a.yaml'}:2)"
    ]


def test_hydro_check_reports_rule_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "stations", tmp_path / "stations")
    write_rules(tmp_path / "alert_rules", "a.yaml", RULE.replace("yellow", "green"))
    (tmp_path / "config.yaml").write_text("", encoding="utf-8")
    assert main(["--config", str(tmp_path / "config.yaml"), "check"]) == 1
    assert (
        f"{tmp_path / 'alert_rules' / 'a.yaml'}:9: rules.0.threshold.severity"
        in capsys.readouterr().err
    )


def test_rules_test_command_prints_the_sms(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(REPO / "config.yaml")
    assert (
        main(
            [
                "--config",
                config,
                "rules",
                "test",
                "67901001",
                "771.54",
                "--time",
                "2026-05-07 08:00",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert next(line for line in out.splitlines() if "reservoir_normal" in line).endswith("fires")
    assert "黔东南州台江县麦冲水库5月7日8时0分水位达到771.54米,超正常水位0.04米" in out
    assert main(["--config", config, "rules", "test", "00000000", "1"]) == 1
