"""The SMS outbox, the only module with SQL on ``outbox``: queueing, claims by a sender,
outcomes, delivery receipts, notices to the duty officers when a message does not arrive, and
the listings and counts operators read.

A sender *claims* due rows (``sending``, with its name and a lease) and commits before it calls
the provider; a row that waited long for its turn has its lease renewed before the call, only
while the claim is still the sender's own (``attempts`` fences it: a row queued again and claimed
anew has a higher count), so a row is never in two senders' hands. A row whose lease has run
out lost its sender (a crash, a kill, a host gone) and is queued again by whoever looks next.

A receipt (Twilio's status callback) is kept as it came, then applied to its outbox row if it is
a step forward: ``sent`` -> ``delivered`` | ``undelivered`` | ``failed``. Receipts arrive out of
order, twice, or before hydro has recorded the message as sent (a fast carrier can beat our own
commit); such an early receipt is applied when the dispatcher records the send.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg_pool
from psycopg import sql
from psycopg.rows import class_row, dict_row, scalar_row

from hydro.config import DutyOfficer
from hydro.models import Channel, Notification, Recipient, Role, mask_phone
from hydro.store.db import Connection, connection, fetch_all, translate_errors

log = logging.getLogger(__name__)


# Provider statuses that end a message's journey, as the outbox names them.
FINAL_STATUSES = ("delivered", "undelivered", "failed")


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A notification the provider accepted but could not deliver: someone must call instead."""

    notification: Notification
    status: str
    error_code: str | None


# The columns a Notification is read from, as _notification takes them.
_NOTIFICATION_COLUMNS = "id, alert_id, station, role, person, phone, body, channel"


def _outbox_id(claim: Claim) -> int:
    assert claim.notification.outbox_id is not None  # read from its row
    return claim.notification.outbox_id


def _notification(row: dict[str, Any]) -> Notification:
    return Notification(
        Recipient(Role(row["role"]), row["person"], row["phone"]),
        row["body"],
        channel=Channel(row["channel"]),
        station=row["station"],
        alert_id=row["alert_id"],
        outbox_id=row["id"],
    )


_ENQUEUE = """
INSERT INTO outbox (alert_id, event_id, station, role, person, phone, body, channel)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""


async def enqueue(
    conn: Connection, notification: Notification, *, event_id: int | None = None
) -> int:
    """Queues the notification in the caller's transaction; its outbox id. ``event_id``: the
    alert transition that sends it."""
    n, to = notification, notification.recipient
    with translate_errors("queueing an SMS"):
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute(
            _ENQUEUE,
            (n.alert_id, event_id, n.station, to.role.value, to.name, to.phone, n.text, n.channel),
        )
        outbox_id: int | None = await cur.fetchone()
    assert outbox_id is not None
    return outbox_id


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
RETURNING o.id, o.alert_id, o.station, o.role, o.person, o.phone, o.body, o.channel,
    o.status, o.error_code
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """An outbox row a sender holds, and the attempt this claim is."""

    notification: Notification
    attempts: int


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A row queued again because its sender's lease ran out while it was ``sending``."""

    outbox_id: int
    claimed_by: str | None  # None: left by a hydro from before leases


# SMS only: a voice row (a 叫应 call) is no text message, and waits for a sender that places
# calls (issue 13).
_CLAIM = f"""
UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_by = %s,
    lease_until = now() + %s, updated_at = now()
WHERE id IN (
    SELECT id FROM outbox
    WHERE status = 'queued' AND channel = 'sms' AND next_attempt_at <= now()
    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
)
RETURNING {_NOTIFICATION_COLUMNS}, attempts
"""


_REQUEUE = """
UPDATE outbox o SET status = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = now()
FROM (SELECT id, claimed_by FROM outbox WHERE status = 'sending'
      AND (lease_until IS NULL OR lease_until < now()) FOR UPDATE SKIP LOCKED) gone
WHERE o.id = gone.id RETURNING o.id AS outbox_id, gone.claimed_by
"""


async def requeue_abandoned(conn: Connection) -> list[Abandoned]:
    """Queues again the rows whose sender's lease has run out."""
    doing = "queueing abandoned SMS again"
    return await fetch_all(conn, doing, class_row(Abandoned), _REQUEUE)


async def claim_due(conn: Connection, sender: str, lease: dt.timedelta, limit: int) -> list[Claim]:
    """Up to ``limit`` due rows, oldest first, now ``sending`` by ``sender``."""
    with translate_errors("claiming SMS"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_CLAIM, (sender, lease, limit))
        rows = await cur.fetchall()
    return [Claim(_notification(row), row["attempts"]) for row in rows]


async def renew_claim(conn: Connection, sender: str, claim: Claim, lease: dt.timedelta) -> bool:
    """Extends the lease from now; False when the claim is no longer this sender's (it ran out
    and the row was queued again): then the row must not be sent."""
    with translate_errors(f"renewing the claim on outbox={_outbox_id(claim)}"):
        cur = await conn.execute(
            "UPDATE outbox SET lease_until = now() + %s"
            " WHERE id = %s AND status = 'sending' AND claimed_by = %s AND attempts = %s"
            " RETURNING id",
            (lease, _outbox_id(claim), sender, claim.attempts),
        )
        return await cur.fetchone() is not None


async def mark_sent(conn: Connection, claim: Claim, provider_id: str) -> bool:
    """Records the provider's acceptance. Even when the claim ran out meanwhile, a message that
    went out is recorded, so no sender sends it again; False when it was already recorded (a
    sender that took the row over sent it too)."""
    outbox_id = _outbox_id(claim)
    with translate_errors(f"recording outbox={outbox_id} as sent"):
        cur = await conn.execute(
            "UPDATE outbox SET status = 'sent', provider_id = %s, sent_at = now(),"
            " updated_at = now(), last_error = NULL, lease_until = NULL"
            " WHERE id = %s AND status IN ('queued', 'sending') RETURNING id",
            (provider_id, outbox_id),
        )
        return await cur.fetchone() is not None


async def mark_failed(
    conn: Connection, sender: str, claim: Claim, error: str, retry_in: dt.timedelta | None
) -> bool:
    """Queues the row again after ``retry_in``, or fails it for good (None); False when the
    claim is no longer this sender's, and then nothing is changed."""
    with translate_errors(f"recording outbox={_outbox_id(claim)} as not sent"):
        cur = await conn.execute(
            "UPDATE outbox SET status = %s, last_error = %s, updated_at = now(),"
            " next_attempt_at = now() + %s, lease_until = NULL"
            " WHERE id = %s AND status = 'sending' AND claimed_by = %s AND attempts = %s"
            " RETURNING id",
            (
                "failed" if retry_in is None else "queued",
                error,
                retry_in or dt.timedelta(0),
                _outbox_id(claim),
                sender,
                claim.attempts,
            ),
        )
        return await cur.fetchone() is not None


# The duty officers' SMS about a notification not delivered: (it, status, error code) -> text.
UndeliveredNotice = Callable[[Notification, str, str | None], str]


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
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_APPLY, (provider_id, list(FINAL_STATUSES)))
        rows = await cur.fetchall()
    undelivered = [
        Undelivered(_notification(row), row["status"], row["error_code"])
        for row in rows
        if row["status"] != "delivered"
    ]
    for row in undelivered:
        n = row.notification
        log.warning(
            "outbox=%d station=%s to %s %s: provider reports %s (error %s)",
            n.outbox_id,
            n.station,
            n.recipient.role,
            mask_phone(n.recipient.phone),
            row.status.upper(),
            row.error_code,
        )
        if n.recipient.role is not Role.DUTY:
            text = notices.text(n, row.status, row.error_code)
            await queue_duty_notices(conn, n.station, notices.officers, text)
    return undelivered


async def queue_duty_notices(
    conn: Connection, station: str | None, officers: Sequence[DutyOfficer], body: str
) -> list[int]:
    """One message per duty officer; the outbox ids."""
    return [
        await enqueue(
            conn, Notification(Recipient(Role.DUTY, o.name, o.phone), body, station=station)
        )
        for o in officers
    ]


async def counts_by_status(
    conn: Connection, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> dict[str, int]:
    """SMS by status; only those queued in [since, until) when both are given."""
    window = sql.SQL(
        "" if since is None or until is None else " WHERE created_at >= %s AND created_at < %s"
    )
    with translate_errors("counting SMS by status"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            sql.SQL("SELECT status, count(*) AS n FROM outbox{} GROUP BY status").format(window),
            [] if since is None or until is None else [since, until],
        )
        return {row["status"]: row["n"] for row in await cur.fetchall()}


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A queued notification and what became of it."""

    notification: Notification
    event_id: int | None
    status: str
    attempts: int
    provider_id: str | None
    last_error: str | None
    error_code: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None


_RECORD_COLUMNS = sql.SQL(
    _NOTIFICATION_COLUMNS + ", event_id, status, attempts, provider_id, last_error, error_code,"
    " created_at, sent_at, delivered_at"
)


def _record(row: dict[str, Any]) -> OutboxRecord:
    return OutboxRecord(
        _notification(row),
        row["event_id"],
        row["status"],
        row["attempts"],
        row["provider_id"],
        row["last_error"],
        row["error_code"],
        row["created_at"],
        row["sent_at"],
        row["delivered_at"],
    )


async def alert_messages(conn: Connection, alert_id: int) -> list[OutboxRecord]:
    """Every SMS an alert caused, in the order they were queued."""
    with translate_errors(f"reading the SMS of alert {alert_id}"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            sql.SQL("SELECT {} FROM outbox WHERE alert_id = %s ORDER BY id").format(
                _RECORD_COLUMNS
            ),
            [alert_id],
        )
        return [_record(row) for row in await cur.fetchall()]


async def list_outbox(
    pool: psycopg_pool.AsyncConnectionPool, *, status: str | None, limit: int
) -> list[OutboxRecord]:
    where = sql.SQL(" WHERE status = %s") if status else sql.SQL("")
    statement = sql.SQL("SELECT {} FROM outbox{} ORDER BY id DESC LIMIT %s").format(
        _RECORD_COLUMNS, where
    )
    async with connection(pool, "listing the outbox") as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(statement, [status, limit] if status else [limit])
        return [_record(row) for row in await cur.fetchall()]
