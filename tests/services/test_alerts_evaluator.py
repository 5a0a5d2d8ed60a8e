"""The evaluation tick against a real PostgreSQL: journal in, alerts, events and outbox out."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from hydro.alerts.evaluator import AlertEvaluator
from hydro.config import AlertingConfig, DatabaseConfig
from hydro.models import Reading
from hydro.rules import load_rules
from hydro.stations import Registry, load_registry
from hydro.store.db import open_pool
from hydro.store.readings import ReadingWriter
from hydro.store.schema import migrate

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
REGISTRY = load_registry(REPO / "stations", "Asia/Shanghai")
RULES = load_rules(REPO / "alert_rules")
MAICHONG = "67901001"  # 麦冲水库, normal level 771.50
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
RESERVOIR = "reservoir_level"
RESERVOIR_EVENTS = (
    "SELECT e.change FROM alert_events e JOIN alerts a ON a.id = e.alert_id"
    " WHERE a.family = 'reservoir_level' ORDER BY e.id"
)
RESERVOIR_SMS = (
    "SELECT count(*) FROM outbox o JOIN alerts a ON a.id = o.alert_id"
    " WHERE a.family = 'reservoir_level'"
)


def minutes_ago(m: int) -> dt.datetime:
    return NOW - dt.timedelta(minutes=m)


def with_evaluator(
    pg_url: str, body: Callable[[AsyncConnectionPool, ReadingWriter, AlertEvaluator], Awaitable[T]]
) -> T:
    async def main() -> T:
        config = DatabaseConfig(url=pg_url, timescaledb="off")
        async with open_pool(config) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config, "Asia/Shanghai")
            evaluator = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool, clock=lambda: NOW)
            await evaluator.load_state()
            return await body(pool, ReadingWriter(pool), evaluator)

    return asyncio.run(main())


def rows(pg_url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def test_crossing_opens_one_alert_with_three_sms_and_the_exact_text(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> tuple[int, int]:
        await writer.write([Reading(MAICHONG, minutes_ago(10), water_level=771.40)])
        await writer.write([Reading(MAICHONG, minutes_ago(5), water_level=771.54)])
        first = await ev.tick()
        await writer.write([Reading(MAICHONG, minutes_ago(0), water_level=771.60)])
        second = await ev.tick()  # still above: nothing new
        return len(first.changes), len(second.changes)

    assert with_evaluator(pg_url, body) == (1, 0)
    assert rows(pg_url, "SELECT rule_id, state, rank, severity FROM alerts") == [
        ("reservoir_normal", "open", 2, "yellow")
    ]
    outbox = rows(pg_url, "SELECT role, phone, body, status FROM outbox ORDER BY id")
    assert [r[0] for r in outbox] == ["administrative", "technical", "patrol"]
    local = minutes_ago(5).astimezone(REGISTRY.by_code[MAICHONG].tz)
    assert outbox[0][2] == (
        f"黔东南州台江县麦冲水库{local.month}月{local.day}日{local.hour}时{local.minute}分"
        "水位达到771.54米,超正常水位0.04米,请及时复核并提醒相关责任人戒备,注意防范"
    )
    assert {r[3] for r in outbox} == {"queued"}


def test_restart_mid_alert_neither_repeats_nor_forgets(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[str]:
        await writer.write([Reading(MAICHONG, minutes_ago(20), water_level=771.6)])
        await ev.tick()
        await writer.write([Reading(MAICHONG, minutes_ago(15), water_level=771.4)])  # below: 1
        await ev.tick()
        restarted = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool)
        await restarted.load_state()
        await writer.write([Reading(MAICHONG, minutes_ago(10), water_level=771.7)])  # still open
        await writer.write([Reading(MAICHONG, minutes_ago(5), water_level=771.4)])
        await writer.write([Reading(MAICHONG, minutes_ago(0), water_level=771.3)])
        report = await restarted.tick()
        return [c.change.value for c in report.changes if c.family == RESERVOIR]

    assert with_evaluator(pg_url, body) == ["clear"]
    assert rows(pg_url, RESERVOIR_EVENTS) == [("open",), ("clear",)]
    assert rows(pg_url, RESERVOIR_SMS) == [(6,)]  # three to open, three to clear


def test_a_late_back_filled_peak_is_history_and_pages_nobody(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator) -> None:
        await writer.write(
            [
                Reading(MAICHONG, minutes_ago(180 - 5 * i), water_level=level)
                for i, level in enumerate([771.0, 771.8, 771.2, 771.1])
            ]
        )
        await ev.tick()

    with_evaluator(pg_url, body)
    assert rows(
        pg_url,
        "SELECT e.change, e.late, e.observed_at FROM alert_events e"
        " JOIN alerts a ON a.id = e.alert_id WHERE a.family = 'reservoir_level' ORDER BY e.id",
    ) == [("open", True, minutes_ago(175)), ("clear", True, minutes_ago(165))]
    assert rows(pg_url, RESERVOIR_SMS) == [(0,)]


def test_a_gauge_silent_at_its_peak_keeps_the_alert_open_and_says_so(pg_url: str) -> None:
    hefeng = "61901002"  # a river: warning 908.50

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[list[tuple[str, str, str]]]:
        await writer.write([Reading(MAICHONG, minutes_ago(25), water_level=771.6)])  # 超正常
        await writer.write([Reading(hefeng, minutes_ago(20), water_level=906.6)])  # normal
        ticks = [await ev.tick()]  # both silent since: 25 and 20 minutes
        await writer.write([Reading(MAICHONG, minutes_ago(0), water_level=771.7)])
        ticks.append(await ev.tick())  # 麦冲 reports again
        return [[(c.station, c.family, c.change.value) for c in t.changes] for t in ticks]

    first, second = with_evaluator(pg_url, body)
    assert sorted(first) == [
        (hefeng, "station_silent", "open"),
        (MAICHONG, "reservoir_level", "open"),
        (MAICHONG, "station_silent", "open"),
    ]
    assert second == [(MAICHONG, "station_silent", "clear")]
    assert rows(
        pg_url, "SELECT family, state FROM alerts WHERE station = '67901001' ORDER BY id"
    ) == [
        ("reservoir_level", "open"),  # silence did not clear the level alert
        ("station_silent", "cleared"),
    ]
    silent_sms = rows(
        pg_url,
        "SELECT o.station, o.role, o.body FROM outbox o JOIN alerts a ON a.id = o.alert_id"
        " WHERE a.family = 'station_silent' AND o.body LIKE '%未收到%' ORDER BY o.id",
    )
    assert {(s, r) for s, r, _ in silent_sms} == {
        (MAICHONG, "technical"),
        (MAICHONG, "patrol"),
        (hefeng, "technical"),
        (hefeng, "patrol"),
    }
    by_station = {s: b for s, _, b in silent_sms}
    assert "预警期间" in by_station[MAICHONG]
    assert "25分钟未收到" in by_station[MAICHONG]
    assert "预警期间" not in by_station[hefeng]


def test_an_alert_still_open_after_repeat_interval_is_repeated_once(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[list[str]]:
        await writer.write([Reading(MAICHONG, minutes_ago(5), water_level=771.6)])
        ticks = [await ev.tick()]
        ticks.append(await ev.tick())  # notified a moment ago: nothing to repeat
        async with pool.connection() as conn:
            await conn.execute("UPDATE alerts SET last_notified_at = now() - interval '7 hours'")
        await writer.write([Reading(MAICHONG, minutes_ago(0), water_level=771.8)])
        ticks.append(await ev.tick())
        ticks.append(await ev.tick())
        return [[c.change.value for c in t.changes if c.family == RESERVOIR] for t in ticks]

    assert with_evaluator(pg_url, body) == [["open"], [], ["remind"], []]
    reminders = rows(pg_url, "SELECT body FROM outbox WHERE body LIKE '【预警持续】%'")
    assert len(reminders) == 3
    assert "水位达到771.80米,超正常水位0.30米" in str(reminders[0][0])


def test_a_reminder_falls_due_by_the_evaluators_clock_not_the_databases(pg_url: str) -> None:
    """A replay a month back (or the demo's fast clock): six hours later by the injected clock
    the alert is repeated, and the database records the injected time as its notification."""
    then = NOW - dt.timedelta(days=30)
    clock = [then]

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, _: AlertEvaluator
    ) -> list[list[str]]:
        ev = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool, clock=lambda: clock[0])
        await ev.load_state()
        ticks = []
        for hours, level in ((0, 771.6), (7, 771.8)):
            clock[0] = then + dt.timedelta(hours=hours)
            at = clock[0] - dt.timedelta(minutes=1)
            await writer.write([Reading(MAICHONG, at, water_level=level)])
            report = await ev.tick()
            ticks.append([c.change.value for c in report.changes if c.family == RESERVOIR])
        return ticks

    assert with_evaluator(pg_url, body) == [["open"], ["remind"]]
    assert rows(pg_url, f"SELECT last_notified_at FROM alerts WHERE family = '{RESERVOIR}'") == [
        (then + dt.timedelta(hours=7),)
    ]


def test_a_fast_rise_below_any_level_opens_a_rate_of_rise_alert(pg_url: str) -> None:
    hefeng = "61901002"  # warning 908.50: nothing here reaches it

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[list[tuple[str, str, float | None]]]:
        ticks = []
        for minutes, level in ((60, 906.0), (40, 906.1), (20, 906.3), (5, 906.62)):
            await writer.write([Reading(hefeng, minutes_ago(minutes), water_level=level)])
            ticks.append(await ev.tick())
        await writer.write([Reading(hefeng, minutes_ago(0), water_level=906.7)])  # still rising
        ticks.append(await ev.tick())
        return [
            [(c.family, c.change.value, c.value) for c in t.changes if c.family == "rapid_rise"]
            for t in ticks
        ]

    ticks = with_evaluator(pg_url, body)
    assert ticks == [[], [], [], [("rapid_rise", "open", 906.62)], []]
    [(sms,)] = rows(pg_url, "SELECT DISTINCT body FROM outbox WHERE body LIKE '%上涨%'")
    assert "水位1小时内上涨0.62米,现为906.62米" in str(sms)


def test_a_standby_evaluator_picks_up_what_the_active_one_did(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, active: AlertEvaluator
    ) -> tuple[int, int, list[str]]:
        standby = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool, clock=lambda: NOW)
        await standby.load_state()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x6879_6576,))
            skipped = await standby.tick()  # the lock is taken: it stands by
        await writer.write([Reading(MAICHONG, minutes_ago(5), water_level=771.6)])
        opened = await active.tick()
        await writer.write([Reading(MAICHONG, minutes_ago(0), water_level=771.7)])
        taken_over = await standby.tick()  # reloads the alerts before evaluating
        return skipped.readings, len(opened.changes), [c.change.value for c in taken_over.changes]

    assert with_evaluator(pg_url, body) == (0, 1, [])
    assert rows(pg_url, "SELECT count(*) FROM alerts") == [(1,)]


PINGSHAN = "61000000"  # 平山雨量站, a rain gauge
RAINSTORM_SMS = (
    "SELECT DISTINCT o.body FROM outbox o JOIN alerts a ON a.id = o.alert_id"
    " WHERE a.family = 'rainstorm'"
)


def rain(minutes: int, mm: float) -> Reading:
    return Reading(PINGSHAN, minutes_ago(minutes), rainfall=mm)


def test_three_hours_of_rain_open_the_orange_signal_and_the_sms_names_the_gap(
    pg_url: str,
) -> None:
    # 1.6 mm every 5 minutes for 3 hours, but the reports of 100 and 95 minutes ago never came.
    minutes = [175 - 5 * i for i in range(36) if 175 - 5 * i not in (100, 95)]

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[tuple[str, str, int, float | None]]:
        await writer.write([rain(m, 1.6) for m in minutes[:20]])
        first = await ev.tick()
        await writer.write([rain(m, 1.6) for m in minutes[20:]])
        second = await ev.tick()
        return [
            (c.family, c.change.value, c.rank, c.value)
            for c in (*first.changes, *second.changes)
            if c.family == "rainstorm"
        ]

    # Blue, yellow and orange are all reached by the 32nd report (51.2 mm in 3, 6 and 12 h):
    # one alert, opened at orange, one SMS each.
    assert with_evaluator(pg_url, body) == [("rainstorm", "open", 3, 51.2)]
    local = minutes_ago(10).astimezone(REGISTRY.by_code[PINGSHAN].tz)
    assert rows(pg_url, RAINSTORM_SMS) == [
        (
            f"贵阳市云岩区平山雨量站{local.month}月{local.day}日{local.hour}时{local.minute}分"
            "前3小时降雨量达到51.2毫米(其中20分钟无数据),达到暴雨橙色预警标准,"
            "请及时复核并提醒相关责任人戒备,注意防范",
        )
    ]
    assert rows(
        pg_url, "SELECT rule_id, severity, state FROM alerts WHERE family = 'rainstorm'"
    ) == [("rainstorm_orange", "orange", "open")]


def test_a_corrected_rain_report_replaces_its_value_and_a_restart_reloads_the_rain(
    pg_url: str,
) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[list[tuple[str, float | None]]]:
        await writer.write([rain(5 * i + 5, 1.6) for i in range(30)])  # 48.0 mm in 3 h
        ticks = [await ev.tick()]
        # The gateway corrects its latest report to 0.6 and sends a new one of 2.5: 49.5 mm
        # (adding the correction instead of replacing would make it 51.1).
        await writer.write([rain(5, 0.6), rain(0, 2.5)])
        ticks.append(await ev.tick())
        restarted = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool, clock=lambda: NOW)
        await restarted.load_state()  # the ring comes back from the stored readings
        await writer.write([rain(0, 3.0)])  # and the newest one corrected upwards: 50.0 mm
        ticks.append(await restarted.tick())
        return [
            [(c.change.value, c.value) for c in t.changes if c.family == "rainstorm"] for t in ticks
        ]

    assert with_evaluator(pg_url, body) == [[], [], [("open", 50.0)]]


def test_an_hourly_batch_station_is_silent_only_after_a_missed_batch(pg_url: str) -> None:
    hefeng = "61901002"  # every 5 minutes, as by default
    hourly = dataclasses.replace(REGISTRY.by_code[MAICHONG], report_interval=dt.timedelta(hours=1))
    registry = Registry.of(hourly if s.code == MAICHONG else s for s in REGISTRY.stations)
    clock = [NOW]

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, _: AlertEvaluator
    ) -> list[list[tuple[str, str]]]:
        ev = AlertEvaluator(AlertingConfig(), registry, RULES, pool, clock=lambda: clock[0])
        await ev.load_state()
        # The batch that arrived at NOW: twelve 5-minute values, the newest an hour old.
        await writer.write(
            [Reading(MAICHONG, minutes_ago(115 - 5 * i), water_level=771.0) for i in range(12)]
        )
        await writer.write([Reading(hefeng, minutes_ago(20), water_level=906.6)])
        ticks = []
        for minutes in (0, 9, 11):  # the next batch is due at NOW + 60 s
            clock[0] = NOW + dt.timedelta(minutes=minutes)
            report = await ev.tick()
            ticks.append([(c.station, c.change.value) for c in report.changes])
        return ticks

    assert with_evaluator(pg_url, body) == [
        [(hefeng, "open")],  # 20 minutes without a 5-minute report
        [],  # between batches: the hourly station is not silent
        [(MAICHONG, "open")],  # no observation for 71 minutes: a batch is missing
    ]
    assert rows(
        pg_url,
        "SELECT body FROM outbox WHERE station = '67901001' AND role = 'technical'",
    ) == [
        (
            "黔东南州台江县麦冲水库"
            + _local_time(minutes_ago(60))
            + "起71分钟未收到监测数据,请尽快检查设备及通信",
        )
    ]


def _local_time(at: dt.datetime) -> str:
    local = at.astimezone(REGISTRY.by_code[MAICHONG].tz)
    return f"自{local.month}月{local.day}日{local.hour}时{local.minute}分"


def test_a_river_steps_down_once_then_clears_and_each_sms_says_what_ended(pg_url: str) -> None:
    hefeng = "61901002"  # warning 908.50, guaranteed 910.00

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator) -> None:
        for minutes, level in ((60, 908.7), (55, 910.2), (50, 909.9), (45, 910.01)):
            await writer.write([Reading(hefeng, minutes_ago(minutes), water_level=level)])
        await ev.tick()  # opened, escalated; 909.9 and 910.01 flicker within the margin
        for minutes, level in ((40, 909.5), (35, 909.6), (30, 909.98), (25, 909.7)):
            await writer.write([Reading(hefeng, minutes_ago(minutes), water_level=level)])
        await ev.tick()  # two readings below 保证 - 0.05: one step down, and no more
        restarted = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool, clock=lambda: NOW)
        await restarted.load_state()
        for minutes, level in ((20, 908.4), (15, 908.3), (10, 908.2)):
            await writer.write([Reading(hefeng, minutes_ago(minutes), water_level=level)])
        await restarted.tick()

    with_evaluator(pg_url, body)
    events = rows(
        pg_url,
        "SELECT e.change, e.rank, e.observed_at FROM alert_events e"
        " JOIN alerts a ON a.id = e.alert_id WHERE a.family = 'river_level' ORDER BY e.id",
    )
    assert events == [
        ("open", 1, minutes_ago(60)),
        ("escalate", 2, minutes_ago(55)),
        ("step_down", 1, minutes_ago(35)),
        ("clear", 1, minutes_ago(15)),
    ]
    texts = rows(
        pg_url,
        "SELECT e.change, o.body FROM outbox o JOIN alert_events e ON e.id = o.event_id"
        " JOIN alerts a ON a.id = o.alert_id WHERE a.family = 'river_level'"
        " AND o.role = 'technical' AND e.change IN ('step_down', 'clear') ORDER BY o.id",
    )
    local = {m: _local_time(minutes_ago(m)).removeprefix("自") for m in (35, 15)}
    assert texts == [
        (
            "step_down",
            f"贵阳市开阳县禾丰水文站{local[35]}水位回落至909.60米,已低于保证水位910.00米,"
            "降为黄色预警,请继续加强巡查",
        ),
        (
            "clear",
            f"贵阳市开阳县禾丰水文站{local[15]}水位回落至908.30米,已低于警戒水位908.50米,"
            "黄色预警解除",  # the orange warning ended with the step down
        ),
    ]


def test_a_restart_between_readings_below_steps_down_as_without_it(pg_url: str) -> None:
    hefeng = "61901002"  # warning 908.50, guaranteed 910.00

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[tuple[str, int]]:
        for minutes, level in ((15, 910.2), (10, 909.5)):  # 909.5 still holds 警戒
            await writer.write([Reading(hefeng, minutes_ago(minutes), water_level=level)])
            await ev.tick()
        restarted = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool, clock=lambda: NOW)
        await restarted.load_state()
        await writer.write([Reading(hefeng, minutes_ago(5), water_level=908.3)])
        report = await restarted.tick()
        return [(c.change.value, c.rank) for c in report.changes if c.family == "river_level"]

    assert with_evaluator(pg_url, body) == [("step_down", 1)]  # not a clear


def test_an_escalated_alert_clears_below_the_warning_level_and_says_so(pg_url: str) -> None:
    hefeng = "61901002"  # warning 908.50, guaranteed 910.00

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator) -> None:
        for minutes, level in ((15, 908.7), (10, 910.2), (5, 908.3), (0, 908.2)):
            await writer.write([Reading(hefeng, minutes_ago(minutes), water_level=level)])
        await ev.tick()

    with_evaluator(pg_url, body)
    local = _local_time(minutes_ago(0)).removeprefix("自")
    assert rows(
        pg_url,
        "SELECT e.change, o.body FROM outbox o JOIN alert_events e ON e.id = o.event_id"
        " JOIN alerts a ON a.id = o.alert_id WHERE a.family = 'river_level'"
        " AND o.role = 'technical' AND e.change = 'clear'",
    ) == [
        (
            "clear",
            f"贵阳市开阳县禾丰水文站{local}水位回落至908.20米,已低于警戒水位908.50米,橙色预警解除",
        )
    ]
