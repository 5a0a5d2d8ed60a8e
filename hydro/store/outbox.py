"""Delivery receipts for sent SMS, and notices to the duty officers when one does not arrive.

A receipt (Twilio's status callback) is kept as it came, then applied to its outbox row if it is
a step forward: ``sent`` -> ``delivered`` | ``undelivered`` | ``failed``. Receipts arrive out of
order, twice, or before hydro has recorded the message as sent (a fast carrier can beat our own
commit); such an early receipt is applied when the dispatcher records the send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from hydro.config import DutyOfficer
from hydro.models import mask_phone
from hydro.store.db import translate_errors

Connection = psycopg.AsyncConnection[tuple[object, ...]]
log = logging.getLogger(__name__)


# Provider statuses that end a message's journey, as the outbox names them.
FINAL_STATUSES = ("delivered", "undelivered", "failed")


@dataclass(frozen=True, slots=True)
class Undelivered:
    """An SMS the provider accepted but could not deliver: someone must call instead."""

    outbox_id: int
    station: str | None
    role: str
    person: str
    phone: str
    status: str
    error_code: str | None


_APPLY = """
UPDATE outbox o SET status = r.status, error_code = r.error_code, updated_at = now(),
    delivered_at = CASE WHEN r.status = 'delivered' THEN r.received_at END,
    last_error = CASE WHEN r.status = 'delivered' THEN NULL
                      ELSE 'provider reported ' || r.status
                           || coalesce(' (error ' || r.error_code || ')', '') END
FROM (
    SELECT DISTINCT ON (provider_id) provider_id, status, error_code, received_at
    FROM delivery_receipts
    WHERE provider_id = %s AND status = ANY(%s)
    ORDER BY provider_id, received_at DESC, id DESC
) r
WHERE o.provider_id = r.provider_id AND o.status = 'sent'
RETURNING o.id, o.station, o.role, o.person, o.phone, o.status, o.error_code
"""


UndeliveredNotice = Callable[[Undelivered], str]  # the duty officers' SMS about one


@dataclass(frozen=True, slots=True)
class DutyNotices:
    """Who to tell when a responsible person's SMS was not delivered, and in what words."""

    officers: Sequence[DutyOfficer]
    text: UndeliveredNotice


async def record_receipt(
    conn: Connection,
    provider_id: str,
    status: str,
    error_code: str | None,
    notices: DutyNotices,
) -> list[Undelivered]:
    """Keeps the receipt and applies it; returns the rows it made undelivered or failed."""
    with translate_errors(f"recording a delivery receipt for {provider_id}"):
        await conn.execute(
            "INSERT INTO delivery_receipts (provider_id, status, error_code) VALUES (%s, %s, %s)",
            (provider_id, status, error_code),
        )
    return await apply_receipts(conn, provider_id, notices)


async def apply_receipts(
    conn: Connection, provider_id: str, notices: DutyNotices
) -> list[Undelivered]:
    """Brings a sent row up to its latest final receipt, if one has come. An undelivered alert
    SMS is logged and the duty officers are told, in the same transaction."""
    with translate_errors(f"applying delivery receipts for {provider_id}"):
        cur = await conn.execute(_APPLY, (provider_id, list(FINAL_STATUSES)))
        rows = await cur.fetchall()
    undelivered = [
        Undelivered(
            outbox_id=int(str(row[0])),
            station=None if row[1] is None else str(row[1]),
            role=str(row[2]),
            person=str(row[3]),
            phone=str(row[4]),
            status=str(row[5]),
            error_code=None if row[6] is None else str(row[6]),
        )
        for row in rows
        if row[5] != "delivered"
    ]
    for row in undelivered:
        log.warning(
            "outbox=%d station=%s to %s %s: provider reports %s (error %s)",
            row.outbox_id,
            row.station,
            row.role,
            mask_phone(row.phone),
            row.status.upper(),
            row.error_code,
        )
        if row.role != "duty":
            await queue_duty_notices(conn, row.station, notices.officers, notices.text(row))
    return undelivered


async def queue_duty_notices(
    conn: Connection, station: str | None, officers: Sequence[DutyOfficer], body: str
) -> None:
    with translate_errors("queueing notices to the duty officers"):
        for officer in officers:
            await conn.execute(
                "INSERT INTO outbox (station, role, person, phone, body)"
                " VALUES (%s, 'duty', %s, %s, %s)",
                (station, officer.name, officer.phone, body),
            )
