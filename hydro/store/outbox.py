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

A voice call (``channel`` voice) is queued, claimed and placed the same way; its row stays
``sent`` and the call's final status (Twilio's call status callback, kept as a receipt too)
lands in ``call_status`` once: ``completed``, ``busy``, ``no-answer``, ``failed``, ``canceled``.
Who pressed 1 is kept in ``confirmations``, not here.
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

from hydro.duty import DutyRoster, utc_now
from hydro.models import DUTY_DESK_ROLES, Channel, Notification, Recipient, Role, mask_phone
from hydro.store.db import Connection, connection, fetch_all, translate_errors

log = logging.getLogger(__name__)


# Provider statuses that end a message's journey, as the outbox names them.
FINAL_STATUSES = ("delivered", "undelivered", "failed")
# How a call ends, as Twilio names it; the outbox keeps it in call_status.
CALL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")


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


# In the order given (ORDINALITY): the ids, drawn in that order, come back ascending.
_ENQUEUE = """
INSERT INTO outbox (alert_id, event_id, station, role, person, phone, body, channel)
SELECT alert_id, %s, station, role, person, phone, body, channel
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
    WITH ORDINALITY AS u(alert_id, station, role, person, phone, body, channel, n)
ORDER BY n
RETURNING id
"""


async def enqueue(
    conn: Connection, notification: Notification, *, event_id: int | None = None
) -> int:
    """Queues the notification in the caller's transaction; its outbox id. ``event_id``: the
    alert transition that sends it."""
    [outbox_id] = await enqueue_all(conn, [notification], event_id=event_id)
    return outbox_id


async def enqueue_all(
    conn: Connection, notifications: Sequence[Notification], *, event_id: int | None = None
) -> list[int]:
    """Queues them in the caller's transaction in one statement (an alert change's messages to
    its three persons: one round trip); their outbox ids, in their order."""
    if not notifications:
        return []
    with translate_errors("queueing messages"):
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute(
            _ENQUEUE,
            (
                event_id,
                [n.alert_id for n in notifications],
                [n.station for n in notifications],
                [n.recipient.role.value for n in notifications],
                [n.recipient.name for n in notifications],
                [n.recipient.phone for n in notifications],
                [n.text for n in notifications],
                [n.channel.value for n in notifications],
            ),
        )
        ids: list[int] = sorted(await cur.fetchall())
    return ids


@dataclass(frozen=True, slots=True)
class Authorship:
    """Who wrote a manual message, why, and the send (``manual_sends``) it is part of."""

    manual_send_id: int
    written_by: str
    reason: str


_COPY = """
COPY outbox (alert_id, station, role, person, phone, body, channel, manual_send_id, written_by,
    reason) FROM STDIN
"""


async def enqueue_many(
    conn: Connection, notifications: Sequence[Notification], authorship: Authorship
) -> int:
    """Queues a manual send's messages in the caller's transaction with one COPY (2,300 rows
    of a prefecture in milliseconds, where one INSERT each takes a round trip); how many."""
    a = authorship
    with translate_errors(f"queueing the SMS of manual send {a.manual_send_id}"):
        async with conn.cursor().copy(_COPY) as copy:
            for n in notifications:
                to = n.recipient
                await copy.write_row(
                    (
                        n.alert_id,
                        n.station,
                        to.role.value,
                        to.name,
                        to.phone,
                        n.text,
                        n.channel.value,
                        a.manual_send_id,
                        a.written_by,
                        a.reason,
                    )
                )
    return len(notifications)


async def last_alert_message(conn: Connection, station: str) -> tuple[int, str] | None:
    """The alert id and text of the last SMS an alert of ``station`` sent to one of its
    responsible persons (not a duty notice, not a manual message); None when it never had one."""
    with translate_errors(f"reading the last alert SMS of station {station}"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT alert_id, body FROM outbox WHERE station = %s AND alert_id IS NOT NULL"
            " AND manual_send_id IS NULL AND role <> %s ORDER BY id DESC LIMIT 1",
            (station, Role.DUTY.value),
        )
        row = await cur.fetchone()
    return None if row is None else (row["alert_id"], row["body"])


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
WHERE o.provider_id = r.provider_id AND o.status = 'sent' AND o.channel = 'sms'
RETURNING o.id, o.alert_id, o.station, o.role, o.person, o.phone, o.body, o.channel,
    o.status, o.error_code
"""


_APPLY_CALL = """
UPDATE outbox o SET call_status = r.status, error_code = r.error_code, updated_at = now()
FROM (
    SELECT provider_id, status, error_code FROM delivery_receipts
    WHERE provider_id = %s AND status = ANY(%s) ORDER BY received_at, id LIMIT 1
) r
WHERE o.provider_id = r.provider_id AND o.channel = 'voice' AND o.status = 'sent'
    AND o.call_status IS NULL
RETURNING o.id
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


# One channel at a time: each has its own batch and pace in the dispatcher.
_CLAIM = f"""
UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_by = %s,
    lease_until = now() + %s, updated_at = now()
WHERE id IN (
    SELECT id FROM outbox
    WHERE status = 'queued' AND next_attempt_at <= now() AND channel = %s
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


async def claim_due(
    conn: Connection,
    sender: str,
    lease: dt.timedelta,
    limit: int,
    channel: Channel = Channel.SMS,
) -> list[Claim]:
    """Up to ``limit`` due rows of ``channel``, oldest first, now ``sending`` by ``sender``."""
    with translate_errors(f"claiming {channel} notifications"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_CLAIM, (sender, lease, channel.value, limit))
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
    """Who to tell when a responsible person's SMS was not delivered (whoever is on duty by
    ``clock`` when the receipt is applied), and in what words."""

    roster: DutyRoster
    text: UndeliveredNotice
    clock: Callable[[], dt.datetime] = utc_now


async def record_receipt(
    conn: Connection,
    provider_id: str,
    status: str,
    error_code: str | None,
    notices: DutyNotices,
) -> list[Undelivered]:
    """Keeps an SMS's delivery receipt (the Messages API's status callback) and applies it;
    returns the rows it made undelivered or failed."""
    await _keep_receipt(conn, provider_id, status, error_code)
    return await apply_receipts(conn, provider_id, notices, channel=Channel.SMS)


async def record_call_status(
    conn: Connection, call_sid: str, status: str, error_code: str | None
) -> int | None:
    """Keeps a call's status callback and records a final status on its row, once; the row's
    outbox id, None when no placed call has that SID (yet: an early status is applied when the
    dispatcher records the call) or its outcome was recorded already."""
    await _keep_receipt(conn, call_sid, status, error_code)
    return await _apply_call_status(conn, call_sid)


async def _keep_receipt(
    conn: Connection, provider_id: str, status: str, error_code: str | None
) -> None:
    with translate_errors(f"recording a delivery receipt for {provider_id}"):
        await conn.execute(
            "INSERT INTO delivery_receipts (provider_id, status, error_code) VALUES (%s, %s, %s)",
            (provider_id, status, error_code),
        )


async def _apply_call_status(conn: Connection, call_sid: str) -> int | None:
    with translate_errors(f"applying the call status of {call_sid}"):
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute(_APPLY_CALL, (call_sid, list(CALL_STATUSES)))
        outbox_id: int | None = await cur.fetchone()
    return outbox_id


async def apply_receipts(
    conn: Connection, provider_id: str, notices: DutyNotices, *, channel: Channel | None = None
) -> list[Undelivered]:
    """Brings a sent row up to its latest final receipt, if one has come: an SMS to its
    delivery status, a call to its final status. An undelivered alert SMS is logged and the
    duty officers are told, in the same transaction; an unanswered call is the 叫应 ladder's
    to follow up. ``channel``, the row's when the caller knows it, spares the other channel's
    update (a round trip for every SMS the dispatcher sends)."""
    if channel is not Channel.SMS:
        await _apply_call_status(conn, provider_id)
    if channel is Channel.VOICE:
        return []
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
        if n.recipient.role not in DUTY_DESK_ROLES:
            text = notices.text(n, row.status, row.error_code)
            on_duty = notices.roster.on_duty(notices.clock())
            await queue_duty_notices(conn, n.station, on_duty, text)
    return undelivered


async def queue_duty_notices(
    conn: Connection, station: str | None, on_duty: Sequence[Recipient], body: str
) -> list[int]:
    """One message per person on duty (``DutyRoster.on_duty``); the outbox ids."""
    return [await enqueue(conn, Notification(person, body, station=station)) for person in on_duty]


async def voice_call(conn: Connection, outbox_id: int) -> Notification | None:
    """The call queued as ``outbox_id``; None when there is no such row or it is no call."""
    with translate_errors(f"reading the call outbox={outbox_id}"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM outbox WHERE id = %s AND channel = 'voice'",
            (outbox_id,),
        )
        row = await cur.fetchone()
    return None if row is None else _notification(row)


async def counts_by_status(
    conn: Connection, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> dict[Channel, dict[str, int]]:
    """Outbox rows by channel and status, every channel present (an SMS and a call are not
    the same thing to count: a flood's calls are a backlog of their own); only those queued
    in [since, until) when both are given."""
    window = sql.SQL(
        "" if since is None or until is None else " WHERE created_at >= %s AND created_at < %s"
    )
    counts: dict[Channel, dict[str, int]] = {channel: {} for channel in Channel}
    with translate_errors("counting the outbox by channel and status"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            sql.SQL(
                "SELECT channel, status, count(*) AS n FROM outbox{} GROUP BY channel, status"
            ).format(window),
            [] if since is None or until is None else [since, until],
        )
        for row in await cur.fetchall():
            counts[Channel(row["channel"])][row["status"]] = row["n"]
    return counts


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
    # A manual message (the duty desk's): its send, who wrote it and why; None for the others.
    manual_send_id: int | None
    written_by: str | None
    reason: str | None
    call_status: str | None = None  # a call's outcome, once Twilio has reported it


_RECORD_COLUMNS = sql.SQL(
    _NOTIFICATION_COLUMNS + ", event_id, status, attempts, provider_id, last_error, error_code,"
    " created_at, sent_at, delivered_at, manual_send_id, written_by, reason, call_status"
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
        row["manual_send_id"],
        row["written_by"],
        row["reason"],
        row["call_status"],
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
