"""Sending the outbox: claim due rows, send with bounded concurrency and rate, record the outcome.

At most one SMS per outbox row: a row is marked ``sending`` and committed before the provider
is called, and its outcome is recorded right after. The only window for a duplicate is a crash
between the provider accepting a message and that record: rows found ``sending`` at start-up are
sent again (a message is never silently lost), and the log names them.

Transient failures (HTTP 429, 5xx, network) are retried with exponential backoff up to
``sms.max_attempts``; permanent ones fail at once, are recorded, and the duty officers are told.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time

import psycopg_pool

from hydro.config import SmsConfig
from hydro.models import mask_phone
from hydro.notify.providers import OutgoingSms, SmsError, SmsProvider
from hydro.rules.messages import delivery_failure_notice, undelivered_notice
from hydro.store.db import connection
from hydro.store.outbox import DutyNotices, apply_receipts, queue_duty_notices

log = logging.getLogger(__name__)

_CLAIM = """
UPDATE outbox SET status = 'sending', attempts = attempts + 1, updated_at = now()
WHERE id IN (
    SELECT id FROM outbox
    WHERE status = 'queued' AND next_attempt_at <= now()
    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
)
RETURNING id, station, role, person, phone, body, attempts
"""


class Dispatcher:
    def __init__(
        self,
        config: SmsConfig,
        provider: SmsProvider,
        pool: psycopg_pool.AsyncConnectionPool,
    ) -> None:
        self._config = config
        self._provider = provider
        self._pool = pool
        self._duty = config.duty_officers
        self._notices = DutyNotices(config.duty_officers, undelivered_notice)
        self._slots = asyncio.Semaphore(config.concurrency)
        self._spacing = 1.0 / config.rate_per_second
        self._next_start = 0.0

    async def recover(self) -> None:
        """Rows left ``sending`` by a crash go out again: better twice than never."""
        async with connection(self._pool, "recovering the outbox") as conn:
            cur = await conn.execute(
                "UPDATE outbox SET status = 'queued', updated_at = now()"
                " WHERE status = 'sending' RETURNING id"
            )
            ids = [int(str(row[0])) for row in await cur.fetchall()]
        if ids:
            log.warning(
                "outbox=%s were being sent when hydro stopped; sending again (a duplicate is"
                " possible if the provider had accepted them)",
                ",".join(map(str, ids)),
            )

    async def run_once(self) -> int:
        """Sends what is due now, about a second's worth at the configured rate (so a stop never
        waits long and little is left half-done); returns how many rows were attempted."""
        limit = max(self._config.concurrency, math.ceil(self._config.rate_per_second))
        async with connection(self._pool, "claiming SMS") as conn:
            cur = await conn.execute(_CLAIM, (limit,))
            claimed = await cur.fetchall()
        batch = [
            (
                OutgoingSms(int(str(r[0])), _opt(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])),
                int(str(r[6])),
            )
            for r in claimed
        ]
        await asyncio.gather(*(self._send(sms, attempts) for sms, attempts in batch))
        return len(batch)

    async def _send(self, sms: OutgoingSms, attempts: int) -> None:
        async with self._slots:
            await self._pace()
            try:
                provider_id = await self._provider.send(sms)
            except SmsError as exc:
                await self._failed(sms, attempts, exc)
                return
        async with connection(self._pool, "recording a sent SMS") as conn:
            await conn.execute(
                "UPDATE outbox SET status = 'sent', provider_id = %s, sent_at = now(),"
                " updated_at = now(), last_error = NULL WHERE id = %s",
                (provider_id, sms.outbox_id),
            )
            # A receipt that beat this commit (a fast carrier) was kept; apply it now.
            await apply_receipts(conn, provider_id, self._notices)
        log.info(
            "outbox=%d sent station=%s to %s %s via %s id=%s",
            sms.outbox_id,
            sms.station,
            sms.role,
            mask_phone(sms.phone),
            self._provider.name,
            provider_id,
        )

    async def _pace(self) -> None:
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._spacing
        if start > now:
            await asyncio.sleep(start - now)

    async def _failed(self, sms: OutgoingSms, attempts: int, exc: SmsError) -> None:
        retry = exc.retryable and attempts < self._config.max_attempts
        delay = (
            min(self._config.retry_first * 2 ** (attempts - 1), self._config.retry_max)
            if retry
            else dt.timedelta(0)
        )
        async with connection(self._pool, "recording a failed SMS") as conn:
            await conn.execute(
                "UPDATE outbox SET status = %s, last_error = %s, updated_at = now(),"
                " next_attempt_at = now() + %s WHERE id = %s",
                ("queued" if retry else "failed", str(exc), delay, sms.outbox_id),
            )
            if not retry and sms.role != "duty":
                body = delivery_failure_notice(
                    sms.station, sms.role, sms.person, sms.phone, str(exc)
                )
                await queue_duty_notices(conn, sms.station, self._duty, body)
        log.warning(
            "outbox=%d station=%s to %s %s %s: %s",
            sms.outbox_id,
            sms.station,
            sms.role,
            mask_phone(sms.phone),
            f"retry in {delay.total_seconds():.0f}s" if retry else "FAILED",
            exc,
        )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
