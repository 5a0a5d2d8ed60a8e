"""叫应 ladder steps, the only module with SQL on ``ladder_steps``.

A step is taken by inserting its (alert, key) row: the unique index makes the first insert win,
so of two processes, or of a run before and after a restart, only one queues the step's outbox
rows, in the same transaction. The alerts a run looks at are locked (``SKIP LOCKED``): a second
process leaves them to the first instead of waiting for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import LiteralString

import psycopg_pool
from psycopg.rows import class_row, scalar_row

from hydro.models import Confirmation
from hydro.store.confirmations import confirmations_of
from hydro.store.db import Connection, connection, fetch_all, translate_errors

# 未叫应: an open alert whose ladder has started, that nobody has confirmed at its present rank
# and no operator has acknowledged (an ack stops the ladder: somebody has it in hand). A
# condition on ``alerts``.
UNCONFIRMED: LiteralString = (
    "alerts.state = 'open' AND alerts.acknowledged_at IS NULL"
    " AND EXISTS (SELECT 1 FROM ladder_steps s WHERE s.alert_id = alerts.id)"
    " AND NOT EXISTS (SELECT 1 FROM confirmations c"
    " WHERE c.alert_id = alerts.id AND c.rank >= alerts.rank)"
)


async def count_unconfirmed(conn: Connection) -> int:
    with translate_errors("counting unconfirmed alerts"):
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute(f"SELECT count(*) FROM alerts WHERE {UNCONFIRMED}")
        count: int | None = await cur.fetchone()
    return count or 0


@dataclass(frozen=True, slots=True)
class LadderRow:
    """An alert whose ladder may owe a step: open (and not late), or with a ladder that has
    not recorded its stop. ``message``: the last SMS its station persons were sent."""

    alert_id: int
    station: str
    rule_id: str
    rank: int
    severity: str
    open: bool
    acknowledged_by: str | None
    keys: list[str]
    taken_at: list[dt.datetime]
    waiting: list[bool]  # each step: an outbox row it queued is not yet placed
    message: str | None


_LADDER_ALERTS = """
SELECT a.id AS alert_id, a.station, a.rule_id, a.rank, a.severity, a.state = 'open' AS open,
    a.acknowledged_by,
    coalesce(s.keys, '{}') AS keys, coalesce(s.taken_at, '{}') AS taken_at,
    coalesce(s.waiting, '{}') AS waiting,
    (SELECT o.body FROM outbox o WHERE o.alert_id = a.id AND o.channel = 'sms'
        AND o.role IN ('administrative', 'technical', 'patrol') ORDER BY o.id DESC LIMIT 1)
        AS message
FROM alerts a
LEFT JOIN LATERAL (
    SELECT array_agg(key ORDER BY id) AS keys, array_agg(taken_at ORDER BY id) AS taken_at,
        array_agg(EXISTS (
            SELECT 1 FROM outbox o
            WHERE o.id = ANY(l.outbox_ids) AND o.status IN ('queued', 'sending')
        ) ORDER BY id) AS waiting
    FROM ladder_steps l WHERE alert_id = a.id
) s ON true
WHERE a.id IN (
    SELECT id FROM alerts WHERE state = 'open' AND NOT late
    UNION
    SELECT alert_id FROM ladder_steps GROUP BY alert_id HAVING NOT bool_or(key = 'stop')
)
ORDER BY a.id
FOR UPDATE OF a SKIP LOCKED
"""


async def ladder_alerts(conn: Connection) -> list[LadderRow]:
    """The alerts to look at, locked for the caller's transaction."""
    return await fetch_all(conn, "loading 叫应 ladders", class_row(LadderRow), _LADDER_ALERTS)


async def take_step(
    conn: Connection, alert_id: int, key: str, reason: str, at: dt.datetime
) -> int | None:
    """Records the step in the caller's transaction; its id, or None when it was taken
    already (by another process, or before a restart)."""
    with translate_errors(f"taking ladder step {key} of alert {alert_id}"):
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute(
            "INSERT INTO ladder_steps (alert_id, key, reason, taken_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (alert_id, key) DO NOTHING RETURNING id",
            (alert_id, key, reason, at),
        )
        step_id: int | None = await cur.fetchone()
    return step_id


async def attach_outbox(conn: Connection, step_id: int, outbox_ids: Sequence[int]) -> None:
    """The outbox rows the step queued, for the alert's timeline."""
    with translate_errors(f"recording the messages of ladder step {step_id}"):
        await conn.execute(
            "UPDATE ladder_steps SET outbox_ids = %s WHERE id = %s", (list(outbox_ids), step_id)
        )


@dataclass(frozen=True, slots=True)
class LadderStepRecord:
    key: str
    reason: str
    taken_at: dt.datetime
    outbox_ids: list[int]


async def ladder_steps_of(conn: Connection, alert_id: int) -> list[LadderStepRecord]:
    """The alert's ladder, in the order its steps were taken."""
    return await fetch_all(
        conn,
        f"reading the ladder of alert {alert_id}",
        class_row(LadderStepRecord),
        "SELECT key, reason, taken_at, outbox_ids FROM ladder_steps WHERE alert_id = %s"
        " ORDER BY id",
        (alert_id,),
    )


async def ladder_detail(
    pool: psycopg_pool.AsyncConnectionPool, alert_id: int
) -> tuple[list[LadderStepRecord], list[Confirmation]]:
    """The alert's ladder and who confirmed it, first first."""
    async with connection(pool, f"reading the ladder of alert {alert_id}") as conn:
        steps = await ladder_steps_of(conn, alert_id)
        answers = await confirmations_of(conn, [alert_id])
    return steps, answers.get(alert_id, [])


@dataclass(frozen=True, slots=True)
class LadderOpened:
    """An alert opened in a period whose ladder started, with its first confirmation as
    recorded so far (None: nobody has confirmed)."""

    id: int
    station: str
    severity: str
    opened_at: dt.datetime
    confirmed_at: dt.datetime | None
    answer: str | None
    acknowledged: bool


_LADDERS_OPENED = """
SELECT a.id, a.station, a.severity, a.opened_at, c.confirmed_at, c.answer,
    a.acknowledged_at IS NOT NULL AS acknowledged
FROM alerts a
LEFT JOIN LATERAL (
    SELECT confirmed_at, answer FROM confirmations WHERE alert_id = a.id
    ORDER BY confirmed_at, id LIMIT 1
) c ON true
WHERE a.opened_at >= %(start)s AND a.opened_at < %(end)s
    AND EXISTS (SELECT 1 FROM ladder_steps s WHERE s.alert_id = a.id)
ORDER BY a.opened_at, a.id
"""


async def ladders_opened(
    conn: Connection, start: dt.datetime, end: dt.datetime
) -> list[LadderOpened]:
    """The alerts opened in [start, end) whose ladder started: the daily report's 叫应."""
    return await fetch_all(
        conn,
        "reading the 叫应 ladders of a day",
        class_row(LadderOpened),
        _LADDERS_OPENED,
        {"start": start, "end": end},
    )


def wake_up(opened_at: dt.datetime, confirmations: Sequence[Confirmation]) -> dt.timedelta | None:
    """From the alert's opening to its first confirmation (叫应's measure); None: nobody yet."""
    return min(c.confirmed_at for c in confirmations) - opened_at if confirmations else None
