"""Who answered an alert (叫应), the only module with SQL on ``confirmations``.

A person confirms an alert once: the first answer stands, whatever channel a later one comes
by, so an alert's wake-up time is the time to its first confirmation and a replayed key press
or link changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import psycopg_pool
from psycopg.rows import dict_row, scalar_row

from hydro.models import Answer, Confirmation, Recipient, Role
from hydro.store.db import Connection, connection, fetch_all, translate_errors

_COLUMNS = "alert_id, role, person, phone, answer, confirmed_at, recorded_by, outbox_id"

_RECORD = f"""
WITH new AS (
    INSERT INTO confirmations ({_COLUMNS})
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (alert_id, phone) DO NOTHING
    RETURNING {_COLUMNS}, true AS new
)
SELECT * FROM new
UNION ALL
SELECT {_COLUMNS}, false FROM confirmations WHERE alert_id = %s AND phone = %s
LIMIT 1
"""


def _confirmation(row: dict[str, Any]) -> Confirmation:
    return Confirmation(
        row["alert_id"],
        Recipient(Role(row["role"]), row["person"], row["phone"]),
        Answer(row["answer"]),
        row["confirmed_at"],
        row["recorded_by"],
        row["outbox_id"],
    )


async def record_confirmation(
    conn: Connection, confirmation: Confirmation
) -> tuple[Confirmation, bool]:
    """Records the answer in the caller's transaction unless the person had already answered
    this alert; the confirmation that stands, and whether it is this one."""
    c, to = confirmation, confirmation.recipient
    with translate_errors("recording a confirmation"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            _RECORD,
            (
                *(c.alert_id, to.role.value, to.name, to.phone, c.answer.value),
                *(c.confirmed_at, c.recorded_by, c.outbox_id, c.alert_id, to.phone),
            ),
        )
        row = await cur.fetchone()
    assert row is not None  # inserted, or there was one already
    return _confirmation(row), bool(row["new"])


async def confirm_on_behalf(
    pool: psycopg_pool.AsyncConnectionPool,
    alert_id: int,
    choose: Callable[[str], Recipient | str],
    recorded_by: str,
    now: dt.datetime,
) -> tuple[Confirmation, bool] | str | None:
    """An operator's record that they reached a person of the alert (电话已联系): ``choose``
    picks the person among those of the alert's station, or says why it cannot. The standing
    confirmation and whether it is this one; why not; or None for no such alert."""
    async with connection(pool, f"confirming alert {alert_id} on behalf of a person") as conn:
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute("SELECT station FROM alerts WHERE id = %s", (alert_id,))
        station: str | None = await cur.fetchone()
        if station is None:
            return None
        person = choose(station)
        if isinstance(person, str):
            return person
        answer = Confirmation(alert_id, person, Answer.OPERATOR, now, recorded_by)
        return await record_confirmation(conn, answer)


async def confirmations_of(
    conn: Connection, alert_ids: Sequence[int]
) -> dict[int, list[Confirmation]]:
    """The confirmations of each alert, first first; alerts nobody answered are absent."""
    rows = await fetch_all(
        conn,
        "reading confirmations",
        dict_row,
        f"SELECT {_COLUMNS} FROM confirmations WHERE alert_id = ANY(%s)"
        " ORDER BY alert_id, confirmed_at, id",
        (list(alert_ids),),
    )
    found: dict[int, list[Confirmation]] = {}
    for row in rows:
        found.setdefault(row["alert_id"], []).append(_confirmation(row))
    return found
