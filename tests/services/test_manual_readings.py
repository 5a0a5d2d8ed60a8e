"""A reading typed in by hand: judged as ingest judges, stored, evaluated, recorded with who."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from psycopg_pool import AsyncConnectionPool

from hydro.alerts.evaluator import AlertEvaluator
from hydro.cli import main
from hydro.config import IngestConfig
from hydro.errors import ReadingRefused
from hydro.ingest.manual import ManualReadings
from hydro.store.manual import ManualEntry, manual_readings
from hydro.store.readings import ReadingWriter
from tests.services.test_alerts_evaluator import MAICHONG, NOW, REGISTRY, with_evaluator
from tests.support import REPO, fetch

T = TypeVar("T")


def entry(
    time: dt.datetime | str = NOW,
    station: str = MAICHONG,
    water_level: float | None = 771.62,
    note: str = "巡查员张秀英电话报数,网关停电",
) -> ManualEntry:
    when = time if isinstance(time, str) else time.isoformat()
    return ManualEntry(station, when, water_level, None, None, "王值班", note)


def with_manual(
    pg_url: str,
    body: Callable[[AsyncConnectionPool, ManualReadings, AlertEvaluator], Awaitable[T]],
) -> T:
    """``with_evaluator``'s pool and evaluator, readings entered by hand at ``NOW``."""

    async def entering(pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator) -> T:
        manual = ManualReadings(IngestConfig(), REGISTRY.by_code, writer, clock=lambda: NOW)
        return await body(pool, manual, ev)

    return with_evaluator(pg_url, entering)


def test_a_reading_entered_by_hand_opens_an_alert_through_the_evaluator(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, manual: ManualReadings, evaluator: AlertEvaluator
    ) -> list[str]:
        await manual.enter(entry(NOW - dt.timedelta(minutes=5)))
        report = await evaluator.tick()
        return [c.change.value for c in report.changes]

    assert with_manual(pg_url, body) == ["open"]
    assert fetch(pg_url, "SELECT station, water_level FROM readings") == [(MAICHONG, 771.62)]
    assert fetch(pg_url, "SELECT rule_id, state FROM alerts") == [("reservoir_normal", "open")]
    assert fetch(pg_url, "SELECT count(*) FROM outbox") == [(3,)]
    assert fetch(pg_url, "SELECT station, water_level, entered_by, note FROM manual_readings") == [
        (MAICHONG, 771.62, "王值班", "巡查员张秀英电话报数,网关停电")
    ]


def test_the_listing_names_who_entered_it_and_a_retyped_reading_is_recorded_again(
    pg_url: str,
) -> None:
    async def body(
        pool: AsyncConnectionPool, manual: ManualReadings, evaluator: AlertEvaluator
    ) -> list[tuple[str, float | None, str]]:
        local = (NOW - dt.timedelta(minutes=30)).astimezone(REGISTRY.by_code[MAICHONG].tz)
        await manual.enter(entry(local.replace(tzinfo=None).isoformat(sep=" ")))  # local time
        await manual.enter(entry(local.replace(tzinfo=None).isoformat(sep=" ")))  # again
        listed = await manual_readings(pool, MAICHONG, NOW - dt.timedelta(hours=1), NOW)
        return [(r.time.isoformat(), r.water_level, r.entered_by) for r in listed]

    when = (NOW - dt.timedelta(minutes=30)).isoformat()
    assert with_manual(pg_url, body) == [(when, 771.62, "王值班"), (when, 771.62, "王值班")]
    assert fetch(pg_url, "SELECT count(*) FROM readings") == [(1,)]


@pytest.mark.parametrize(
    ("bad", "code", "reason"),
    [
        (entry(station="99999999"), "unknown_station", "station '99999999' is not in the registry"),
        (
            entry(water_level=9999.0),
            "out_of_bounds",
            "water_level 9999.0 is above the plausible maximum 6000.0 for reservoir stations",
        ),
        (entry(NOW + dt.timedelta(hours=1)), "future_time", "is more than 0:10:00 after"),
        (entry(NOW - dt.timedelta(days=400)), "too_old", "is more than 365 days, 0:00:00 before"),
        (entry(water_level=None), "no_measurement", "none of water_level, flow, rainfall"),
        (entry(time="yesterday 3pm"), "bad_time", "is not an ISO 8601 date and time"),
        (entry(note="  "), "no_note", "a note of 1 to 500 characters is required"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_problem_and_nothing_is_stored(
    pg_url: str, bad: ManualEntry, code: str, reason: str
) -> None:
    async def body(
        pool: AsyncConnectionPool, manual: ManualReadings, evaluator: AlertEvaluator
    ) -> ReadingRefused:
        with pytest.raises(ReadingRefused) as refused:
            await manual.enter(bad)
        return refused.value

    refused = with_manual(pg_url, body)
    assert refused.code == code
    assert reason in refused.reason
    assert fetch(pg_url, "SELECT count(*) FROM readings") == [(0,)]
    assert fetch(pg_url, "SELECT count(*) FROM manual_readings") == [(0,)]
    assert fetch(pg_url, "SELECT count(*) FROM ingest_journal") == [(0,)]


def test_hydro_readings_add_stores_or_refuses_with_a_clear_error(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: {pg_url}\n  timescaledb: 'off'\n"
        f"registry:\n  stations: {REPO / 'stations'}\n",
        encoding="utf-8",
    )
    with_manual(pg_url, lambda *_: asyncio.sleep(0))  # the schema
    common = ["--config", str(config), "readings", "add", MAICHONG, "--by", "王值班"]
    local = (NOW - dt.timedelta(minutes=5)).astimezone(REGISTRY.by_code[MAICHONG].tz)
    time = local.strftime("%Y-%m-%d %H:%M")
    assert main([*common, "--time", time, "--water-level", "9999", "--note", "电话"]) == 1
    assert "water_level 9999.0 is above the plausible maximum" in capsys.readouterr().err
    assert main([*common, "--time", time, "--water-level", "771.6", "--note", "电话"]) == 0
    assert "(manual, by 王值班)" in capsys.readouterr().out
    assert fetch(pg_url, "SELECT water_level, entered_by, note FROM manual_readings") == [
        (771.6, "王值班", "电话")
    ]
