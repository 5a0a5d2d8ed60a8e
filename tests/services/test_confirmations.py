"""Confirmations (叫应) against a real PostgreSQL: the first answer of a person stands."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import psycopg
import pytest

from hydro.config import DatabaseConfig
from hydro.errors import StorageError
from hydro.models import Answer, Confirmation, Recipient, Role
from hydro.store.confirmations import confirmations_of, record_confirmation
from hydro.store.db import open_pool
from tests import support
from tests.support import migrated

T0 = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)
PATROL = Recipient(Role.PATROL, "王五", "+8613800000003")
TECHNICAL = Recipient(Role.TECHNICAL, "李四", "+8613800000002")


def open_alert(pg_url: str) -> int:
    return support.open_alert(
        pg_url,
        "61901001",
        family="reservoir_level",
        rule_id="reservoir_design_flood",
        rank=3,
        severity="red",
        opened_at=T0,
    )


def record(pg_url: str, *answers: Confirmation) -> list[tuple[Confirmation, bool]]:
    async def main() -> list[tuple[Confirmation, bool]]:
        async with open_pool(DatabaseConfig(url=pg_url)) as pool:
            results = []
            for answer in answers:
                async with pool.connection() as conn:
                    results.append(await record_confirmation(conn, answer))
            return results

    return asyncio.run(main())


def listed(pg_url: str, alert_ids: list[int]) -> dict[int, list[Confirmation]]:
    async def main() -> dict[int, list[Confirmation]]:
        async with open_pool(DatabaseConfig(url=pg_url)) as pool, pool.connection() as conn:
            return await confirmations_of(conn, alert_ids)

    return asyncio.run(main())


def test_the_first_answer_of_a_person_stands(pg_url: str) -> None:
    migrated(pg_url)
    alert = open_alert(pg_url)
    by_key = Confirmation(alert, PATROL, Answer.KEYPRESS, T0 + dt.timedelta(minutes=2), "王五")
    by_operator = Confirmation(
        alert, PATROL, Answer.OPERATOR, T0 + dt.timedelta(minutes=5), "duty:张三"
    )
    (first, first_new), (second, second_new) = record(pg_url, by_key, by_operator)
    stored = dataclasses.replace(by_key, rank=3)  # the alert's rank it answered
    assert (first, first_new) == (stored, True)
    assert (second, second_new) == (stored, False)  # the standing one, not the operator's
    assert listed(pg_url, [alert]) == {alert: [stored]}


def test_each_person_confirms_each_alert_once(pg_url: str) -> None:
    migrated(pg_url)
    first_alert = open_alert(pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE alerts SET state = 'cleared' WHERE id = %s", (first_alert,))
    second_alert = open_alert(pg_url)
    answers = [
        Confirmation(first_alert, PATROL, Answer.LINK, T0, "王五"),
        Confirmation(second_alert, PATROL, Answer.LINK, T0, "王五"),
        Confirmation(second_alert, TECHNICAL, Answer.KEYPRESS, T0 - dt.timedelta(1), "李四"),
    ]
    assert [new for _, new in record(pg_url, *answers)] == [True, True, True]
    found = listed(pg_url, [first_alert, second_alert, 999])
    stored = [dataclasses.replace(answer, rank=3) for answer in answers]
    assert found == {first_alert: stored[:1], second_alert: [stored[2], stored[1]]}


def test_an_answer_to_an_unknown_alert_is_refused(pg_url: str) -> None:
    migrated(pg_url)
    with pytest.raises(StorageError):
        record(pg_url, Confirmation(424242, PATROL, Answer.LINK, T0, "王五"))


def test_notes_kept_inside_recorded_by_before_migration_0019_are_split_out(pg_url: str) -> None:
    migrated(pg_url)
    alert = open_alert(pg_url)
    with psycopg.connect(pg_url) as conn:  # the database as it was before migration 0019
        conn.execute("ALTER TABLE confirmations DROP COLUMN note")
        conn.execute("DELETE FROM schema_migrations WHERE version = 19")
        for phone, answer, recorded_by in [
            ("+8613800000001", "operator", "li(电话已联系)"),
            ("+8613800000002", "operator", "zhao"),
            ("+8613800000003", "link", "王五(巡查)"),  # a person's own name: left as it is
        ]:
            conn.execute(
                "INSERT INTO confirmations (alert_id, role, person, phone, answer, confirmed_at,"
                " recorded_by, rank) VALUES (%s, 'patrol', 'p', %s, %s, %s, %s, 3)",
                (alert, phone, answer, T0, recorded_by),
            )
    migrated(pg_url)
    assert support.fetch(pg_url, "SELECT recorded_by, note FROM confirmations ORDER BY phone") == [
        ("li", "电话已联系"),
        ("zhao", None),
        ("王五(巡查)", None),
    ]
