"""The duty desk's manual sends (人工短信), the only module with SQL on ``manual_sends``: one
record per send and its outbox rows, queued together or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg.rows import scalar_row

from hydro.models import Notification
from hydro.store.db import Connection, translate_errors
from hydro.store.outbox import Authorship, enqueue_many


@dataclass(frozen=True, slots=True)
class ManualSend:
    """What an operator sent, to whom (as they picked it) and why."""

    written_by: str
    reason: str
    audience: str  # e.g. "prefecture 黔东南州"
    template: str
    alert_id: int | None = None  # sent from this alert: its history shows the messages


async def queue_manual_send(
    conn: Connection, send: ManualSend, notifications: Sequence[Notification]
) -> int:
    """Records the send and queues its messages in one transaction (a failure queues none);
    the send's id."""
    if not notifications:
        raise ValueError("a manual send needs at least one message")
    async with conn.transaction():
        with translate_errors("recording a manual send"):
            cur = conn.cursor(row_factory=scalar_row)
            await cur.execute(
                "INSERT INTO manual_sends (written_by, reason, audience, template, recipients,"
                " alert_id) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    send.written_by,
                    send.reason,
                    send.audience,
                    send.template,
                    len(notifications),
                    send.alert_id,
                ),
            )
            send_id: int | None = await cur.fetchone()
        assert send_id is not None
        await enqueue_many(conn, notifications, Authorship(send_id, send.written_by, send.reason))
    return send_id
