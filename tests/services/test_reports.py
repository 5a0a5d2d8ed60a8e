"""The daily report against a real PostgreSQL: the 08:00 day, stored reports, the digest."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest
from psycopg.rows import scalar_row
from psycopg_pool import AsyncConnectionPool

from hydro.config import Config
from hydro.duty import DutyRoster, load_roster
from hydro.models import Answer, Confirmation, FloodSeason, Reading, Recipient, Role, StationKind
from hydro.reports.daily import day_bounds, last_ended_day, wettest_windows
from hydro.reports.formats import DIGEST_LIMIT, FORMATS, digest
from hydro.reports.model import DailyReport
from hydro.reports.service import DailyReports
from hydro.rules import load_rules
from hydro.stations import Registry, StorageCurve
from hydro.store.confirmations import record_confirmation
from hydro.store.db import Connection, open_pool
from hydro.store.ladder import take_step
from hydro.store.readings import ReadingWriter
from hydro.store.reports import HourlyRain, store_report
from hydro.store.schema import migrate
from hydro.texts import sms_length
from tests.support import run_refresh_policies, station

T = TypeVar("T")
RULES = load_rules(Path(__file__).resolve().parents[2] / "alert_rules")
SHANGHAI = "Asia/Shanghai"
DAY = dt.date(2026, 5, 7)  # 5月7日8时 to 5月8日8时 in Shanghai: 00:00 to 00:00 UTC
START = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)
GAUGE, QUIET, RIVER = "P1", "P2", "R1"  # R1: warning 775.0, guaranteed 777.0


def registry(zone: str = SHANGHAI) -> Registry:
    return Registry.of(
        [
            dataclasses.replace(
                station(GAUGE, kind=StationKind.RAIN, timezone=zone), county="雷山县"
            ),
            station(QUIET, kind=StationKind.RAIN, timezone=zone),
            station(RIVER, timezone=zone),
        ]
    )


def at(minutes: float, start: dt.datetime = START) -> dt.datetime:
    return start + dt.timedelta(minutes=minutes)


def every_five_minutes(code: str, start: dt.datetime, end: dt.datetime) -> list[Reading]:
    count = int((end - start) / dt.timedelta(minutes=5))
    return [Reading(code, start + dt.timedelta(minutes=5 * i)) for i in range(count)]


def with_reports(
    pg_url: str,
    body: Callable[[AsyncConnectionPool, ReadingWriter, DailyReports], Awaitable[T]],
    *,
    zone: str = SHANGHAI,
    mode: str = "off",
    now: dt.datetime = START + dt.timedelta(days=1, minutes=5),
    duty: bool = False,
    roster: DutyRoster | None = None,
    stations: Registry | None = None,
) -> T:
    config = Config.model_validate(
        {
            "database": {"url": pg_url, "timescaledb": mode},
            "registry": {"default_timezone": zone},
            "sms": {
                "duty_officers": [{"name": "值班员", "phone": "+8613900000000"}] if duty else []
            },
        }
    )

    async def main() -> T:
        async with open_pool(config.database) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config.database, zone)
            reports = DailyReports(
                config.report,
                stations or registry(zone),
                RULES,
                pool,
                zone=config.registry.default_timezone,
                roster=roster or DutyRoster(fallback=config.sms.duty_officers),
                clock=lambda: now,
            )
            return await body(pool, ReadingWriter(pool), reports)

    return asyncio.run(main())


def rows(pg_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def storm_day() -> list[Reading]:
    """P1 reports all day: 54 mm between 14:00 and 17:00 local (orange: 50 mm in 3 h; never
    20 mm in an hour), two of those reports lost; P2 says nothing; R1 stands above its warning
    level from 16:00 to 18:00."""
    end = at(24 * 60)
    lost = {at(480), at(485)}
    rain = [
        Reading(GAUGE, r.time, rainfall=54 / 34 if at(360) < r.time <= at(540) else 0.0)
        for r in every_five_minutes(GAUGE, START, end)
        if r.time not in lost
    ]
    river = [
        Reading(RIVER, r.time, water_level=775.4 if at(480) <= r.time < at(600) else 774.0)
        for r in every_five_minutes(RIVER, START, end)
    ]
    return [*rain, *river, Reading(RIVER, at(24 * 60), water_level=774.2)]  # 08:00 next day


def test_a_day_with_a_rainstorm_and_a_silent_station(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> DailyReport:
        await writer.write(storm_day())
        return await reports.build(DAY)

    report = with_reports(pg_url, body)
    gauge = report.by_code[GAUGE]
    assert (gauge.rain_mm, gauge.rain_reports, gauge.expected) == (54.0, 286, 288)
    assert report.wettest == [GAUGE]
    assert [(a.county, a.mean_mm, a.incomplete) for a in report.rain_by_county] == [
        ("雷山县", 54.0, 1)
    ]
    assert {g.rule_id: g.stations for g in report.grades} == {
        "rainstorm_red": 0,
        "rainstorm_orange": 1,  # 52.4 mm in the clock hours 14-17: orange, its highest
        "rainstorm_yellow": 0,
        "rainstorm_blue": 0,
        "short_heavy_rain": 0,  # 19.1 mm in its wettest clock hour
    }
    [excess] = report.above_levels
    assert (excess.code, excess.level_name, excess.excess, excess.level_0800) == (
        RIVER,
        "警戒水位",
        0.4,
        774.2,  # the 08:00 reading that closes the day, though it belongs to the next one
    )
    assert report.silent == [QUIET]
    assert report.missing_data == [GAUGE]
    text = FORMATS["text"](report)
    assert "雷山县测站P1 54.0毫米(缺报2次)" in text
    assert "暴雨橙色预警1站" in text
    assert "全天无数据 1站: 测站P2(P2)" in text
    sms = digest(report)
    assert len(sms) <= DIGEST_LIMIT
    assert sms == (
        "【水情日报】5月7日8时至5月8日8时:最大降雨雷山县测站P154.0毫米,暴雨站橙色1,"
        "超特征水位1站,新增预警0条,仍有效0条,无数据1站"
    )
    csv_row = FORMATS["csv"](report).splitlines()[1]
    assert csv_row.startswith("P1,测站P1,rain,黔东南州,雷山县,286,288,54.0,286")
    assert "<td>54.0</td>" in FORMATS["html"](report)
    assert DailyReport.model_validate_json(FORMATS["json"](report)).model_dump() == (
        report.model_dump()
    )


def test_wettest_windows_end_within_the_day_at_an_hour_with_a_report() -> None:
    since = START - dt.timedelta(hours=2)  # two hours of rain before the day are looked back over
    mm = np.zeros((3, 26))
    mm[0, [1, 2, 3]] = [10.0, 30.0, 9.9]  # 07:00-09:00 local: the day opens at column 2
    mm[1, [5, 6, 7]] = [0.1, 0.2, 49.7]  # sums to 50.0 exactly, whatever the float order
    mm[2, 1] = 80.0  # only before the day: no window of its own
    reported = mm > 0
    reported[1, 8] = True  # a dry hour reported
    rain = HourlyRain(since, ("A", "B", "C"), mm, reported)

    found = wettest_windows(rain, START, at(24 * 60), [1, 3])

    assert found == {
        ("A", 1): 30.0,
        ("A", 3): 49.9,  # 10 mm before the day counts in a window that ends within it
        ("B", 1): 49.7,
        ("B", 3): 50.0,
    }
    reported[0, 3] = False  # the 09:00 hour lost: 30 mm in the window ending at 08:00 only
    assert wettest_windows(rain, START, at(24 * 60), [3])[("A", 3)] == 40.0


def test_a_day_without_any_data(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> DailyReport:
        return await reports.build(DAY)

    report = with_reports(pg_url, body)
    assert report.silent == [GAUGE, QUIET, RIVER]
    assert (report.wettest, report.rain_by_prefecture, report.above_levels) == ([], [], [])
    assert {g.stations for g in report.grades} == {0}
    assert digest(report) == "【水情日报】5月7日8时至5月8日8时:新增预警0条,仍有效0条,无数据3站"
    assert "无降雨数据" in FORMATS["text"](report)


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (SHANGHAI, DAY, 24),
        # New York: the day of March 7, 2026 closes after the clocks went forward: 23 hours.
        ("America/New_York", dt.date(2026, 3, 7), 23),
    ],
)
def test_0755_and_0800_fall_in_different_days_in_the_deployments_zone(
    pg_url: str, zone: str, day: dt.date, hours: int
) -> None:
    start, end = day_bounds(day, zone)
    assert (end - start, start.astimezone(ZoneInfo(zone)).hour) == (dt.timedelta(hours=hours), 8)

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> DailyReport:
        await writer.write(
            [
                Reading(GAUGE, at(-5, start), rainfall=1.0),  # 07:55: the day before
                Reading(GAUGE, at(0, start), rainfall=2.0),  # 08:00: this day
                Reading(GAUGE, at(-5, end), rainfall=4.0),  # 07:55 next morning: this day
                Reading(GAUGE, at(0, end), rainfall=8.0),  # 08:00 next morning: the next day
            ]
        )
        return await reports.build(day)

    report = with_reports(pg_url, body, zone=zone)
    gauge = report.by_code[GAUGE]
    assert (gauge.rain_mm, gauge.rain_reports, gauge.expected) == (6.0, 2, hours * 12)
    assert (report.start, report.end, report.timezone) == (start, end, zone)


def test_the_stored_report_reads_the_same_after_late_data_which_shows_as_corrections(
    pg_url: str,
) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> tuple[DailyReport, DailyReport, bool]:
        await writer.write([Reading(GAUGE, at(60), rainfall=5.0)])
        await reports.publish_due()
        await reports.publish_due()  # stored already: nothing again
        built, _ = await reports.report(DAY)
        await writer.write(
            [Reading(GAUGE, at(65), rainfall=3.0), Reading(QUIET, at(70), rainfall=1.0)]
        )
        later, stored = await reports.report(DAY)
        return built, later, stored

    built, later, stored = with_reports(pg_url, body, duty=True)
    assert stored
    assert later.model_copy(update={"corrections": []}).model_dump() == built.model_dump()
    assert later.by_code[GAUGE].rain_mm == 5.0
    assert [(c.code, c.figure, c.was, c.now) for c in later.corrections] == [
        (GAUGE, "rain_mm", 5.0, 8.0),
        (GAUGE, "readings", 1, 2),
        (QUIET, "rain_mm", None, 1.0),
        (QUIET, "readings", 0, 1),
    ]
    assert "六、报告生成后的数据更正" in FORMATS["text"](later)
    [(role, person, body)] = rows(pg_url, "SELECT role, person, body FROM outbox")
    assert (role, person) == ("duty", "值班员")
    assert body.startswith("【水情日报】5月7日8时至5月8日8时:最大降雨雷山县测站P15.0毫米")


def test_the_digest_goes_to_whoever_is_on_duty_when_it_is_queued(
    pg_url: str, tmp_path: Path
) -> None:
    roster = tmp_path / "duty_roster.csv"
    roster.write_text(
        "start,end,role,name,phone\n"
        "2026-05-07 20:00,2026-05-08 08:00,值班员,夜班,+8613800000001\n"
        "2026-05-08 08:00,2026-05-08 20:00,值班员,白班,+8613800000002\n"
        "2026-05-07 08:00,2026-05-09 08:00,带班领导,带班,+8613800000003\n",
        encoding="utf-8",
    )

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports) -> None:
        await writer.write([Reading(GAUGE, at(60), rainfall=5.0)])
        await reports.publish_due()  # at 08:05 on May 8: the day shift has taken over

    on_duty = load_roster(roster, SHANGHAI, (), today=DAY)
    with_reports(pg_url, body, duty=True, roster=on_duty)
    assert rows(pg_url, "SELECT role, person FROM outbox ORDER BY id") == [
        ("duty", "白班"),
        ("leader", "带班"),
    ]


def test_a_report_missed_while_down_is_caught_up_at_start_unless_the_day_had_no_data(
    pg_url: str,
) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> tuple[bool, bool]:
        await reports.publish_due(unless_empty=True)
        empty_day_stored = await reports.report(DAY)
        await writer.write([Reading(GAUGE, at(60), rainfall=5.0)])
        await reports.publish_due(unless_empty=True)
        return empty_day_stored[1], (await reports.report(DAY))[1]

    before_data, after_data = with_reports(pg_url, body, duty=True)
    assert (before_data, after_data) == (False, True)
    [(body,)] = rows(pg_url, "SELECT body FROM outbox")
    assert body.startswith("【水情日报】5月7日8时至5月8日8时")


async def seed_alert(
    conn: Connection,
    code: str,
    opened: dt.datetime,
    *,
    ladder: bool = True,
    confirmed: tuple[tuple[dt.datetime, Answer], ...] = (),
    acked: bool = False,
) -> int:
    """An alert as the evaluator opens it (a family of its own), its ladder's first step and
    its persons' answers."""
    acked_at = opened + dt.timedelta(hours=1) if acked else None
    cur = conn.cursor(row_factory=scalar_row)
    await cur.execute(
        "INSERT INTO alerts (station, family, rule_id, rank, severity, state, opened_at,"
        " acknowledged_by, acknowledged_at) VALUES (%s, %s, 'rule', 1, 'red', 'open', %s, %s,"
        " %s) RETURNING id",
        (code, f"f{opened:%d%H%M%S}", opened, "王值班" if acked else None, acked_at),
    )
    alert_id: int | None = await cur.fetchone()
    assert alert_id is not None
    if ladder:
        await take_step(conn, alert_id, "call:1", "呼叫三个责任人", opened)
    for i, (when, answer) in enumerate(confirmed):
        person = Recipient(Role.PATROL, f"p{i}", f"+86138000100{i:02d}")
        await record_confirmation(conn, Confirmation(alert_id, person, answer, when, "p"))
    return alert_id


def test_the_wake_up_time_of_the_days_ladders_by_county_in_every_format(pg_url: str) -> None:
    minutes = dt.timedelta(minutes=1)

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> tuple[list[int], DailyReport, DailyReport]:
        async with pool.connection() as conn:
            ids = [
                # 台江县: 4 and 10 minutes, one nobody confirmed (an operator acked it)
                await seed_alert(
                    conn,
                    RIVER,
                    at(60),
                    confirmed=(
                        (at(60) + 4 * minutes, Answer.KEYPRESS),
                        (at(60) + 6 * minutes, Answer.OPERATOR),  # the second counts not
                    ),
                ),
                await seed_alert(conn, QUIET, at(120), confirmed=((at(130), Answer.LINK),)),
                await seed_alert(conn, RIVER, at(180), acked=True),
                # 雷山县: 90 s; and 07:59 next morning, confirmed after the day closed: 4 minutes
                await seed_alert(conn, GAUGE, at(300), confirmed=((at(301.5), Answer.KEYPRESS),)),
                await seed_alert(
                    conn, GAUGE, at(24 * 60 - 1), confirmed=((at(24 * 60 + 3), Answer.LINK),)
                ),
                # Not the day's ladders: no ladder (an SMS-only alert), opened the day before
                await seed_alert(conn, GAUGE, at(200), ladder=False),
                await seed_alert(conn, GAUGE, at(-10), confirmed=((at(-5), Answer.LINK),)),
            ]
        await reports.publish_due()
        built = await reports.build(DAY)
        stored, _ = await reports.report(DAY)
        return ids, built, stored

    ids, report, stored = with_reports(pg_url, body)
    assert [(w.id, w.county, w.wake_up_s, w.answer, w.acknowledged) for w in report.wake_ups] == [
        (ids[0], "台江县", 240.0, "keypress", False),
        (ids[1], "台江县", 600.0, "link", False),
        (ids[2], "台江县", None, None, True),
        (ids[3], "雷山县", 90.0, "keypress", False),
        (ids[4], "雷山县", 240.0, "link", False),
    ]
    assert [
        (c.county, c.alerts, c.confirmed, c.median_s, c.worst_s, c.unconfirmed)
        for c in report.wake_up_by_county
    ] == [
        ("台江县", 3, 2, 420.0, 600.0, [ids[2]]),
        ("雷山县", 2, 2, 165.0, 240.0, []),
    ]
    assert stored.model_dump() == report.model_dump(exclude={"built_at"}) | {
        "built_at": stored.built_at
    }
    text = FORMATS["text"](report)
    assert "  叫应 (开始至首次确认): 5条, 已确认4条" in text
    assert (
        f"    黔东南州台江县 3条 已确认2条 中位7分0秒 最长10分0秒 未叫应: #{ids[2]}测站R1" in text
    )
    assert "    黔东南州雷山县 2条 已确认2条 中位2分45秒 最长4分0秒" in text
    csv_lines = FORMATS["csv"](report).splitlines()
    assert csv_lines[0].endswith("ladder_alerts,ladder_confirmed,wake_up_median_s,wake_up_worst_s")
    assert (csv_lines[1].split(",")[0], csv_lines[1].endswith(",2,2,165.0,240.0")) == ("P1", True)
    assert (csv_lines[2].split(",")[0], csv_lines[2].endswith(",1,1,600.0,600.0")) == ("P2", True)
    assert (csv_lines[3].split(",")[0], csv_lines[3].endswith(",2,1,240.0,240.0")) == ("R1", True)
    page = FORMATS["html"](report)
    assert "<td>黔东南州台江县</td><td>3</td><td>2</td><td>7分0秒</td><td>10分0秒</td>" in page
    assert "<td>已签收,无人确认</td>" in page
    assert DailyReport.model_validate_json(FORMATS["json"](report)) == report


def test_sms_and_calls_are_counted_apart(pg_url: str) -> None:
    """A flood's 叫应 places many calls: the report's 短信 line counts SMS only, calls have a
    line of their own, and a failed call is in the digest like a failed SMS."""
    queued = [  # (channel, status) of outbox rows queued in the day, and one the day before
        *[("sms", "delivered")] * 2,
        ("sms", "failed"),
        *[("voice", "sent")] * 3,
        ("voice", "failed"),
        ("voice", "queued"),
    ]

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> DailyReport:
        await writer.write(storm_day())
        async with pool.connection() as conn:
            for i, (channel, status) in enumerate([*queued, ("voice", "failed")]):
                await conn.execute(
                    "INSERT INTO outbox (station, role, person, phone, body, channel, status,"
                    " created_at) VALUES (%s, 'patrol', 'p', '+8613800000001', '...', %s, %s, %s)",
                    (GAUGE, channel, status, at(60 + i) if i < len(queued) else at(-60)),
                )
        return await reports.build(DAY)

    report = with_reports(pg_url, body)
    assert report.sms == {"delivered": 2, "failed": 1}
    assert report.calls == {"failed": 1, "queued": 1, "sent": 3}
    text = FORMATS["text"](report)
    assert (
        "五、短信 已发2条(送达2条), 失败1条, 待发0条\n  电话 已呼叫3次, 失败1次, 待呼叫1次" in text
    )
    assert "<p>电话 已呼叫3次, 失败1次, 待呼叫1次</p>" in FORMATS["html"](report)
    assert "短信失败1条,电话失败1次" in digest(report)


def test_a_report_stored_before_wake_up_times_still_reads(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> DailyReport:
        report = await reports.build(DAY)
        old = report.model_dump(mode="json", exclude={"wake_ups", "wake_up_by_county"})
        async with pool.connection() as conn:
            await store_report(conn, DAY, old)
        return (await reports.report(DAY))[0]

    report = with_reports(pg_url, body)
    assert (report.wake_ups, report.wake_up_by_county) == ([], [])
    assert "  叫应: 无" in FORMATS["text"](report)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2026, 5, 8, 0, 5, tzinfo=dt.UTC), DAY),  # 08:05 on May 8
        (dt.datetime(2026, 5, 8, 0, 4, tzinfo=dt.UTC), DAY - dt.timedelta(days=1)),
        (dt.datetime(2026, 5, 8, 15, 59, tzinfo=dt.UTC), DAY),  # 23:59 on May 8
    ],
)
def test_the_job_reports_the_day_that_closed_before_its_time(
    now: dt.datetime, expected: dt.date
) -> None:
    assert last_ended_day(now, SHANGHAI, dt.time(8, 5)) == expected


@pytest.mark.timescaledb
def test_continuous_aggregates_and_plain_queries_give_the_same_report(
    pg_url: str, local_postgres: Any
) -> None:
    """The day's readings arrive months late, after the refresh policies materialised today's."""

    def build(url: str, mode: str) -> DailyReport:
        async def body(
            pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
        ) -> DailyReport:
            today = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
            for batch in ([Reading(GAUGE, today, rainfall=1.0)], storm_day()):
                await writer.write(batch)
                if mode == "required":
                    await run_refresh_policies(pool)
            return await reports.build(DAY)

        return with_reports(url, body, mode=mode)

    other = local_postgres.create_database("report_plain")
    try:
        plain = build(other, "off")
    finally:
        local_postgres.drop_database("report_plain")
    timescale = build(pg_url, "required")
    assert timescale.model_dump(exclude={"built_at"}) == plain.model_dump(exclude={"built_at"})
    assert timescale.by_code[GAUGE].rain_mm == 54.0


def reservoirs() -> Registry:
    """K1, K2, K3, K5 medium (a total capacity of 2,760 万m³ at the design flood level), K4
    small; all with flood-limit 770.5, normal 771.5 (2,300 万m³), design flood 773.2 m."""
    codes = ("K1", "K2", "K3", "K4", "K5")
    held = [
        dataclasses.replace(
            station(code, kind=StationKind.RESERVOIR),
            flood_limit_level=770.5,
            flood_season=FloodSeason((5, 1), (9, 30)),
            design_flood_level=773.2,
        )
        for code in codes
    ]
    storages = (1000.0, 2000.0, 2400.0, 3000.0)
    return Registry.of(
        [*registry().stations, *held],
        curves=[
            StorageCurve(
                code,
                (760.0, 770.0, 772.0, 774.0),
                tuple(v / 10 for v in storages) if code == "K4" else storages,
            )
            for code in codes
        ],
    )


@pytest.mark.parametrize("mode", ["off", pytest.param("required", marks=pytest.mark.timescaledb)])
def test_storage_of_medium_reservoirs_at_0800_its_change_and_the_digest(
    pg_url: str, mode: str
) -> None:
    end = at(24 * 60)  # the closing 08:00
    readings = [
        Reading("K1", START - dt.timedelta(minutes=10), water_level=770.0),  # 2,000 at opening
        Reading("K1", end - dt.timedelta(minutes=30), water_level=771.0),  # 2,200, 30 min old
        Reading("K1", end + dt.timedelta(minutes=5), water_level=773.0),  # after 08:00: not it
        Reading("K2", START, water_level=771.0),
        Reading("K2", end - dt.timedelta(hours=3), water_level=775.0),  # above its curve
        Reading("K4", end, water_level=771.0),  # small: not in the report
        Reading("K5", START - dt.timedelta(days=1, minutes=5), water_level=765.0),  # too old
        Reading("K5", end, water_level=772.0),  # on a point of the curve
        Reading("K3", end - dt.timedelta(days=1, minutes=5), water_level=771.0),  # too old
    ]

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> DailyReport:
        await writer.write(readings)
        if mode == "required":
            await run_refresh_policies(pool)
        return await reports.build(DAY)

    report = with_reports(pg_url, body, mode=mode, stations=reservoirs())
    by_code = {r.code: r for r in report.storage}
    assert list(by_code) == ["K1", "K2", "K3", "K5"]
    k1, k2, k3, k5 = by_code.values()
    assert (k1.size, k1.normal_storage, k1.level, k1.age_minutes) == ("中型", 2300.0, 771.0, 30)
    assert (k1.storage, k1.storage_before, k1.change, k1.percent_normal) == (
        2200.0,
        2000.0,
        200.0,
        95.7,
    )
    assert (k1.flood_limit_level, k1.above_flood_limit) == (770.5, 0.5)
    assert (k2.level, k2.outside, k2.storage, k2.storage_before, k2.change) == (
        775.0,
        "above",
        None,
        2200.0,
        None,
    )
    assert (k3.level, k3.storage, k3.age_minutes) == (None, None, None)
    assert (k5.storage, k5.storage_before, k5.change, k5.age_minutes) == (2400.0, None, None, 0)
    assert report.storage_totals is not None
    assert report.storage_totals.model_dump() == {
        "reservoirs": 4,
        "reported": 2,
        "storage": 4600.0,
        "normal_storage": 4600.0,
        "percent_normal": 100.0,
        "change": 200.0,
        "compared": 1,
        "above_flood_limit": 3,  # K2 too: its level is known, only its storage is not
    }
    sms = digest(report)
    assert sms == (
        "【水情日报】5月7日8时至5月8日8时:超特征水位2站,新增预警0条,仍有效0条,"
        "中型以上水库蓄水4600万m³(正常100%),较前日+200万m³,超汛限3座,无数据6站"
    )
    assert sms_length(sms).segments <= 2
    text = FORMATS["text"](report)
    assert "六、中型以上水库蓄水 (8时) 4座, 有数据2座: 蓄水4600.00万m³, 为正常库容的100.0%" in text
    assert (
        "测站K1(中型) 水位771.00米(30分钟前) 蓄水2200.00万m³ (95.7%) 较前日+200.00 超汛限0.50米"
        in text
    )
    assert "测站K2(中型) 水位775.00米(3小时前) 高于库容曲线, 库容未知 超汛限4.50米" in text
    assert "测站K3(中型) 8时前24小时无水位" in text
    csv_rows = {row.split(",")[0]: row for row in FORMATS["csv"](report).splitlines()}
    # storage columns, then the wake-up columns (no ladder here)
    assert csv_rows["K1"].endswith(",中型,2026-05-07 23:30:00+00:00,2200.0,200.0,95.7,0.5,0,0,,")
    assert csv_rows["K4"].endswith(",,,,,,,0,0,,")
    assert "<td>2200.0</td><td>200.0</td><td>95.7</td><td>0.5</td>" in FORMATS["html"](report)
    assert DailyReport.model_validate_json(FORMATS["json"](report)) == report


def test_a_late_level_before_0800_shows_as_a_storage_correction(pg_url: str) -> None:
    end = at(24 * 60)

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, reports: DailyReports
    ) -> DailyReport:
        await writer.write([Reading("K1", end - dt.timedelta(minutes=30), water_level=771.0)])
        await reports.publish_due()
        # the gateway's hourly batch: the level at 07:55, after the report was stored
        await writer.write([Reading("K1", end - dt.timedelta(minutes=5), water_level=772.0)])
        later, stored = await reports.report(DAY)
        assert stored
        return later

    later = with_reports(pg_url, body, stations=reservoirs())
    assert later.storage[0].storage == 2200.0  # the report as it was stored
    assert ("K1", "storage", 2200.0, 2400.0) in [
        (c.code, c.figure, c.was, c.now) for c in later.corrections
    ]


def test_a_report_stored_before_storage_was_added_still_reads() -> None:
    stored = DailyReport.model_validate_json(FORMATS["json"](digest_less_report()))
    assert (stored.storage, stored.storage_totals) == ([], None)
    assert "中型以上" not in FORMATS["text"](stored) + digest(stored)


_LISTS = (
    "stations",
    "rain_by_prefecture",
    "rain_by_county",
    "wettest",
    "grades",
    "above_levels",
    "alerts_opened",
    "alerts_active",
    "silent",
    "missing_data",
)


def digest_less_report() -> DailyReport:
    """A report as stored before storage figures existed: without their keys."""
    return DailyReport.model_validate(
        {
            "day": DAY,
            "start": START,
            "end": at(24 * 60),
            "timezone": SHANGHAI,
            "built_at": at(24 * 60 + 5),
            **{key: [] for key in _LISTS},
            "sms": {},
        }
    )
