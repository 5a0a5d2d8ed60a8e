"""The duty roster: who is on duty at a moment, hand-over, fallback, and what hydro check says."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hydro.cli import main
from hydro.config import DutyOfficer
from hydro.duty import DutyRoster, WatchedRoster, check_roster, load_roster
from hydro.errors import RosterError
from hydro.models import Recipient, Role

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
FALLBACK = (DutyOfficer(name="备用值班", phone="+8613900000000"),)
HEADER = "start,end,role,name,phone\n"
# Two 12-hour officer shifts a day, a leader per day, two officers sharing the night of the 2nd.
DATED = HEADER + (
    "2026-12-01 08:00,2026-12-01 20:00,值班员,张伟,+8613800000001\n"
    "2026-12-01 20:00,2026-12-02 08:00,值班员,李娜,+8613800000002\n"
    "2026-12-02 08:00,2026-12-02 20:00,officer,王强,13800000003\n"
    "2026-12-02 20:00,2026-12-03 08:00,值班员,赵敏,+8613800000004\n"
    "2026-12-02 20:00,2026-12-03 08:00,值班员,钱勇,+8613800000005\n"
    "2026-12-01 08:00,2026-12-02 08:00,带班领导,孙局长,+8613800000006\n"
    "2026-12-02 08:00,2026-12-03 08:00,leader,周局长,+8613800000007\n"
)


def local(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def roster_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "duty_roster.csv"
    path.write_text(text, encoding="utf-8")
    return path


def checked(
    tmp_path: Path, text: str, today: str = "2026-12-01"
) -> tuple[DutyRoster, list[str], list[str]]:
    roster, problems, warnings = check_roster(
        roster_file(tmp_path, text), "Asia/Shanghai", FALLBACK, today=dt.date.fromisoformat(today)
    )
    return roster, [str(p) for p in problems], [str(w) for w in warnings]


def names(people: tuple[Recipient, ...]) -> list[str]:
    return [p.name for p in people]


@pytest.mark.parametrize(
    ("at", "on_duty"),
    [
        ("2026-12-01 08:00", ["张伟", "孙局长"]),  # a shift starts at its start
        ("2026-12-01 19:59", ["张伟", "孙局长"]),
        ("2026-12-01 20:00", ["李娜", "孙局长"]),  # and ends at its end: hand-over
        ("2026-12-02 08:00", ["王强", "周局长"]),
        ("2026-12-02 23:00", ["赵敏", "钱勇", "周局长"]),  # a shared shift: both are told
    ],
)
def test_who_is_on_duty_changes_exactly_at_the_shift_boundaries(
    tmp_path: Path, at: str, on_duty: list[str]
) -> None:
    roster, problems, _ = checked(tmp_path, DATED)
    assert problems == []
    people = roster.on_duty(local(at))
    assert names(people) == on_duty
    assert people[0].role is Role.DUTY
    assert people[-1].role is Role.LEADER


def test_a_number_without_plus_is_read_as_chinese_and_kept_as_e164(tmp_path: Path) -> None:
    roster, _, _ = checked(tmp_path, DATED)
    assert roster.on_duty(local("2026-12-02 09:00"))[0].phone == "+8613800000003"


def test_outside_the_roster_sms_duty_officers_are_told_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    roster, _, _ = checked(tmp_path, DATED)
    with caplog.at_level(logging.WARNING, "hydro.duty"):
        people = roster.on_duty(local("2026-12-03 08:00"))
    assert people == (Recipient(Role.DUTY, "备用值班", "+8613900000000"),)
    assert "no officer on the duty roster" in caplog.text


def test_a_gap_in_the_roster_is_warned_about_once_not_at_every_lookup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    roster, _, _ = checked(tmp_path, DATED)
    with caplog.at_level(logging.WARNING, "hydro.duty"):
        roster.on_duty(local("2026-12-03 08:00"))
        roster.on_duty(local("2026-12-03 08:01"))
        roster.on_duty(local("2026-12-02 09:00"))  # an officer again: the gap is over
        roster.on_duty(local("2026-12-03 08:02"))
    assert caplog.text.count("no officer on the duty roster") == 2


def test_without_a_roster_the_duty_desk_is_sms_duty_officers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    roster = load_roster(None, "Asia/Shanghai", FALLBACK, today=dt.date(2026, 12, 1))
    with caplog.at_level(logging.WARNING, "hydro.duty"):
        assert names(roster.on_duty(local("2026-12-01 12:00"))) == ["备用值班"]
    assert caplog.text == ""  # nothing to warn about: there is no roster to fall out of


def test_next_shift_is_the_hand_over_of_each_role(tmp_path: Path) -> None:
    roster, _, _ = checked(tmp_path, DATED)
    now = local("2026-12-01 12:00")
    assert [(s.name, s.start) for s in roster.shifts(now)] == [
        ("张伟", local("2026-12-01 08:00")),
        ("孙局长", local("2026-12-01 08:00")),
    ]
    assert [(s.name, s.start) for s in roster.next_shift(now)] == [
        ("李娜", local("2026-12-01 20:00")),
        ("周局长", local("2026-12-02 08:00")),
    ]
    assert roster.next_shift(local("2026-12-03 07:00")) == ()


WEEKLY = HEADER + (
    "Mon 08:00,Wed 08:00,值班员,张伟,+8613800000001\n"
    "周三 08:00,周五 08:00,值班员,李娜,+8613800000002\n"
    "Fri 08:00,Mon 08:00,值班员,王强,+8613800000003\n"  # over the weekend into Monday
)


@pytest.mark.parametrize(
    ("at", "on_duty", "next_name", "next_start"),
    [
        ("2026-11-30 08:00", "张伟", "李娜", "2026-12-02 08:00"),  # a Monday
        ("2026-12-04 07:59", "李娜", "王强", "2026-12-04 08:00"),
        ("2026-12-06 23:00", "王强", "张伟", "2026-12-07 08:00"),  # Sunday night
        ("2026-11-30 07:00", "王强", "张伟", "2026-11-30 08:00"),  # Monday before the change
    ],
)
def test_a_weekly_roster_repeats_every_week(
    tmp_path: Path, at: str, on_duty: str, next_name: str, next_start: str
) -> None:
    roster, problems, warnings = checked(tmp_path, WEEKLY)
    assert (problems, warnings) == ([], [])
    assert names(roster.on_duty(local(at))) == [on_duty]
    [upcoming] = roster.next_shift(local(at))
    assert (upcoming.name, upcoming.start) == (next_name, local(next_start))


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (
            "2026-12-01 08:00,2026-12-01 20:00,值班员,张伟,+86138\n",
            "duty_roster.csv:2: phone '+86138' is not a valid phone number",
        ),
        (
            "2026-12-01 20:00,2026-12-01 08:00,值班员,张伟,+8613800000001\n",
            "duty_roster.csv:2: end 2026-12-01 08:00 is not after start 2026-12-01 20:00",
        ),
        (
            "2026-12-01 08:00,2026-12-01 20:00,值班员,张伟,+8613800000001\n"
            "2026-12-01 19:00,2026-12-02 08:00,值班员,李娜,+8613800000002\n",
            "duty_roster.csv:3: 值班员 shift overlaps line 2's",
        ),
        (
            "2026-12-01 08:00,2026-12-01 20:00,值班员,张伟,+8613800000001\n"
            "2026-12-01 21:00,2026-12-02 08:00,值班员,李娜,+8613800000002\n",
            "duty_roster.csv:3: no 值班员 from the end of line 2's shift to the start of line 3's",
        ),
        (
            "2026-12-01 08:00,2026-12-01 20:00,值班员,张伟,+8613800000001\n"
            "2026-12-01 08:00,2026-12-01 20:00,值班员,张伟,+8613800000001\n",
            "duty_roster.csv:3: repeats line 2",
        ),
        (
            "2026-12-01 08:00,2026-12-02 08:00,带班领导,孙局长,+8613800000006\n",
            "duty_roster.csv: no 值班员 (officer) on the roster",
        ),
        (
            "2026-12-01 08:00,2026-12-02 08:00,局长,孙局长,+8613800000006\n",
            "duty_roster.csv:2: role '局长' is not 值班员/officer or 带班领导/leader",
        ),
        (
            "12/01 08:00,2026-12-02 08:00,值班员,张伟,+8613800000001\n",
            "duty_roster.csv:2: start '12/01 08:00' is neither a date-time like 2026-12-01 08:00"
            " nor a weekday and time like Mon 08:00",
        ),
        (
            "Mon 08:00,Sun 08:00,值班员,张伟,+8613800000001\n",
            "duty_roster.csv:2: no 值班员 from the end of line 2's shift to the start of line 2's",
        ),
        (
            "Mon 08:00,Mon 08:00,值班员,张伟,+8613800000001\n",
            "duty_roster.csv:2: end Mon 08:00 is not after start Mon 08:00",
        ),
        (
            "Mon 08:00,Tue 08:00,值班员,张伟,+8613800000001\n"
            "2026-12-01 08:00,2026-12-02 08:00,值班员,李娜,+8613800000002\n",
            "duty_roster.csv: mixes dated shifts and weekly ones (Mon 08:00): use one kind",
        ),
    ],
)
def test_a_bad_roster_is_refused_with_a_message_naming_its_line(
    tmp_path: Path, rows: str, problem: str
) -> None:
    _, problems, _ = checked(tmp_path, HEADER + rows)
    assert [p.removeprefix(str(tmp_path) + "/") for p in problems] == [problem]
    with pytest.raises(RosterError):
        load_roster(
            roster_file(tmp_path, HEADER + rows),
            "Asia/Shanghai",
            FALLBACK,
            today=dt.date(2026, 12, 1),
        )


def test_a_bad_header_names_the_columns(tmp_path: Path) -> None:
    _, problems, _ = checked(tmp_path, "开始,结束,岗位,姓名,手机\n")
    assert problems == [
        f"{tmp_path}/duty_roster.csv:1: the header must be start,end,role,name,phone"
        " (or 开始,结束,岗位,姓名,电话); unknown: 手机; missing: phone"
    ]


def test_days_of_the_coming_week_without_a_roster_are_a_warning_not_an_error(
    tmp_path: Path,
) -> None:
    _, problems, warnings = checked(tmp_path, DATED, today="2026-12-01")
    assert problems == []
    assert warnings == [
        f"{tmp_path}/duty_roster.csv: warning: no 值班员 on the roster for 2026-12-01,"
        " 2026-12-03, 2026-12-04, 2026-12-05, 2026-12-06, 2026-12-07: sms.duty_officers are"
        " told instead"
    ]


def test_hydro_check_stops_on_a_roster_error_and_passes_with_warnings_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"registry:\n  stations: {REPO / 'stations'}\nalerting:\n  rules: {REPO / 'alert_rules'}\n"
        "duty:\n  roster: duty_roster.csv\n",
        encoding="utf-8",
    )
    roster_file(tmp_path, HEADER + "2026-12-01 08:00,2026-12-01 20:00,值班员,张伟,+86138\n")
    assert main(["--config", str(config), "check"]) == 1
    assert (
        "duty_roster.csv:2: phone '+86138' is not a valid phone number" in capsys.readouterr().err
    )
    roster_file(tmp_path, DATED)  # long past: every day of the coming week is a warning
    assert main(["--config", str(config), "check"]) == 0
    assert "warning: no 值班员 on the roster for" in capsys.readouterr().err


def test_the_sample_weekly_roster_is_valid_and_covers_every_moment() -> None:
    roster, problems, warnings = check_roster(
        REPO / "duty" / "roster.csv", "Asia/Shanghai", (), today=dt.date(2026, 12, 1)
    )
    assert (problems, warnings) == ([], [])
    for hour in range(0, 24 * 7, 5):
        at = local("2026-11-30 00:00") + dt.timedelta(hours=hour)
        assert [p.role for p in roster.on_duty(at)] == [Role.DUTY, Role.LEADER]


def test_an_edited_roster_is_taken_by_a_running_hydro_and_a_bad_edit_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A swapped shift reaches the running process at the next look (every ``recheck``
    seconds); an edit with errors, or a file gone, leaves the roster as it was, and says so."""
    path = roster_file(tmp_path, DATED)
    ticks = [0.0]
    roster = WatchedRoster(
        path,
        "Asia/Shanghai",
        FALLBACK,
        today=dt.date(2026, 12, 1),
        recheck=10,
        clock=lambda: ticks[0],
    )
    morning = local("2026-12-01 09:00")
    assert names(roster.on_duty(morning)) == ["张伟", "孙局长"]
    path.write_text(DATED.replace("张伟", "陈刚"), encoding="utf-8")
    ticks[0] = 9.0
    assert names(roster.on_duty(morning)) == ["张伟", "孙局长"]  # not looked at yet
    ticks[0] = 10.0
    assert names(roster.on_duty(morning)) == ["陈刚", "孙局长"]
    assert [s.name for s in roster.next_shift(morning)] == ["李娜", "周局长"]
    with caplog.at_level(logging.ERROR, "hydro.duty"):
        path.write_text(DATED.replace("2026-12-01 20:00,值班员", "2026-12-01 07:00,值班员"))
        ticks[0] = 20.0
        assert names(roster.on_duty(morning)) == ["陈刚", "孙局长"]
        path.unlink()
        ticks[0] = 30.0
        assert [s.name for s in roster.shifts(morning)] == ["陈刚", "孙局长"]
    assert caplog.text.count("edited with errors, the edit is refused") == 2
    assert ":2: end 2026-12-01 07:00 is not after start 2026-12-01 08:00" in caplog.text


def test_a_bad_roster_stops_the_start(tmp_path: Path) -> None:
    path = roster_file(tmp_path, DATED.replace("值班员,张伟", "值班员,张伟,extra"))
    with pytest.raises(RosterError):
        load_roster(path, "Asia/Shanghai", FALLBACK, today=dt.date(2026, 12, 1))
