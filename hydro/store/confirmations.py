"""Who answered an alert (叫应), the only module with SQL on ``confirmations``.

A person confirms each severity of an alert once: the first answer stands, whatever channel a
later one comes by, so an alert's wake-up time is the time to its first confirmation and a
replayed key press or link changes nothing. An answer holds for the rank the alert stood at
and the ranks below it: once the alert escalates, its new ladder asks the person again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import psycopg_pool
from psycopg.rows import dict_row, scalar_row

from hydro.errors import StorageError
from hydro.models import Answer, Confirmation, Recipient, Role
from hydro.store.db import Connection, connection, fetch_all, translate_errors

_COLUMNS = "alert_id, role, person, phone, answer, confirmed_at, recorded_by, outbox_id, rank, note"

# The person's standing answer to the alert's present rank (one given at it or above), else a
# new one at that rank.
_RECORD = f"""
WITH alert AS (SELECT rank FROM alerts WHERE id = %(alert_id)s),
standing AS (
    SELECT {_COLUMNS}, false AS new FROM confirmations c
    WHERE c.alert_id = %(alert_id)s AND c.phone = %(phone)s
        AND c.rank >= (SELECT rank FROM alert)
    ORDER BY c.confirmed_at, c.id LIMIT 1
),
new AS (
    INSERT INTO confirmations ({_COLUMNS})
    SELECT %(alert_id)s, %(role)s, %(person)s, %(phone)s, %(answer)s, %(confirmed_at)s,
        %(recorded_by)s, %(outbox_id)s, alert.rank, %(note)s
    FROM alert WHERE NOT EXISTS (SELECT 1 FROM standing)
    ON CONFLICT (alert_id, rank, phone) DO NOTHING
    RETURNING {_COLUMNS}, true AS new
)
SELECT * FROM new
UNION ALL
SELECT * FROM standing
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
        row["rank"],
        row["note"],
    )


async def record_confirmation(
    conn: Connection, confirmation: Confirmation
) -> tuple[Confirmation, bool]:
    """Records the answer in the caller's transaction, at the alert's present rank, unless the
    person had already answered that rank (or a higher one); the confirmation that stands, and
    whether it is this one."""
    c, to = confirmation, confirmation.recipient
    params = {
        "alert_id": c.alert_id,
        "role": to.role.value,
        "person": to.name,
        "phone": to.phone,
        "answer": c.answer.value,
        "confirmed_at": c.confirmed_at,
        "recorded_by": c.recorded_by,
        "outbox_id": c.outbox_id,
        "note": c.note,
    }
    with translate_errors(f"recording a confirmation of alert {c.alert_id}"):
        cur = conn.cursor(row_factory=dict_row)
        # Twice at most: an answer committed by another transaction while this one waited on
        # the unique index is seen by the second statement's snapshot, not by the first's.
        for _ in range(2):
            await cur.execute(_RECORD, params)
            row = await cur.fetchone()
            if row is not None:
                return _confirmation(row), bool(row["new"])
    raise StorageError(f"no alert {c.alert_id} to confirm")


async def confirm_on_behalf(
    pool: psycopg_pool.AsyncConnectionPool,
    alert_id: int,
    choose: Callable[[str], Recipient | str],
    recorded_by: str,
    now: dt.datetime,
    *,
    note: str | None = None,
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
        answer = Confirmation(alert_id, person, Answer.OPERATOR, now, recorded_by, note=note)
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
