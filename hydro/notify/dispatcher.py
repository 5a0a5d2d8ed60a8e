"""Sending the outbox: claim due rows, send with bounded concurrency and rate, record the outcome.

SMS and voice calls take the same path, each channel claimed in batches of its own and paced at
its own rate (``sms.rate_per_second``, ``voice.calls_per_second``); a call's outbox row is
placed once, like an SMS is sent once, and its call SID becomes the row's provider id.

At most one SMS per outbox row, whatever number of ``hydro run`` share the database: a row is
claimed (``sending``, with this dispatcher's name and a lease of ``sms.claim_lease``) and
committed before the provider is called, whose call ``sms.provider_timeout`` bounds; the outcome
is recorded right after. At the call at least twice that timeout is left of the lease: a row
that waited longer for its turn has its lease renewed first, if the claim is still its own. A
row is taken from its sender only once its lease has run out, so a standby never sends what a
live process is sending.
The windows for a duplicate: a crash (or a database out of reach) between the provider accepting
a message and that record, after which the row goes out again once its lease has run out (never
silently lost; the log names the rows), and a provider that accepts a message but answers later
than ``sms.provider_timeout``, which is retried like any other timeout.

Transient failures (HTTP 429, 5xx, network, no answer in time) are retried with exponential
backoff up to ``sms.max_attempts``; permanent ones fail at once, are recorded, and whoever is
on duty then (``hydro.duty``) is told.

The dispatcher runs on a task of its own (:meth:`Dispatcher.run`): the evaluator wakes it and
never waits for a provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg_pool

from hydro.config import SmsConfig, VoiceConfig
from hydro.duty import DutyRoster, utc_now
from hydro.errors import HydroError
from hydro.models import DUTY_DESK_ROLES, Channel, Notification, mask_phone
from hydro.notify.providers import SmsError, SmsProvider
from hydro.store.db import connection
from hydro.store.outbox import (
    Claim,
    DutyNotices,
    apply_receipts,
    claim_due,
    mark_failed,
    mark_sent,
    queue_duty_notices,
    renew_claim,
    requeue_abandoned,
)
from hydro.texts import delivery_failure_notice, undelivered_notice

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Lane:
    """One channel's claims, pace and requests in flight: how many rows a claim takes, when the
    next send may start, and how many may wait for the provider at once. Each channel has its
    own, so SMS waiting for their pace never hold calls back, nor calls SMS."""

    channel: Channel
    batch: int
    spacing: float  # seconds between the starts of two sends
    slots: asyncio.Semaphore
    next_start: float = 0.0

    @classmethod
    def of(cls, channel: Channel, per_second: float, batch: int, concurrency: int) -> _Lane:
        return cls(
            channel,
            max(batch, math.ceil(per_second)),
            1.0 / per_second,
            asyncio.Semaphore(concurrency),
        )


class Dispatcher:
    def __init__(
        self,
        config: SmsConfig,
        provider: SmsProvider,
        pool: psycopg_pool.AsyncConnectionPool,
        roster: DutyRoster,
        voice: VoiceConfig | None = None,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        """``clock`` says when a notice to the duty desk is queued, and so who gets it."""
        self._config = config
        self._provider = provider
        self._pool = pool
        self._notices = DutyNotices(roster, undelivered_notice, clock)
        calls = (voice or VoiceConfig()).calls_per_second
        self._lanes = (
            _Lane.of(Channel.SMS, config.rate_per_second, config.concurrency, config.concurrency),
            # A call rate is about one per second: claim no more than that, or calls would wait
            # their turn holding claims.
            _Lane.of(Channel.VOICE, calls, 1, config.concurrency),
        )
        self._timeout = config.provider_timeout.total_seconds()
        self._woken = asyncio.Event()
        # Whose claim a row is: unique per dispatcher, readable in the outbox and the log.
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def wake(self) -> None:
        """New SMS are queued: send them now, not at the next poll."""
        self._woken.set()

    async def run(self, stop: asyncio.Event, poll: dt.timedelta = dt.timedelta(seconds=1)) -> None:
        """Sends until ``stop``: when woken, and every ``poll`` for retries that came due. A send
        under way when ``stop`` comes is finished first."""
        while not stop.is_set():
            self._woken.clear()
            try:
                _, busy = await self._send_due()
            except HydroError as exc:
                if not exc.retryable:
                    log.exception("sending the outbox failed; trying again in %s", poll)
                else:
                    log.warning("sending the outbox: %s; trying again in %s", exc, poll)
                busy = False
            except Exception:
                log.exception("sending the outbox failed; trying again in %s", poll)
                busy = False
            if not busy:
                await _first_of(self._woken, stop, seconds=poll.total_seconds())

    async def recover(self) -> None:
        """Rows whose sender's lease ran out (it died while sending) are queued again: better
        twice than never. Rows a live process is sending are left alone."""
        async with connection(self._pool, "recovering the outbox") as conn:
            abandoned = await requeue_abandoned(conn)
        for row in abandoned:
            log.warning(
                "outbox=%d was being sent by %s, whose lease ran out; sending again (a duplicate"
                " is possible if the provider had accepted it)",
                row.outbox_id,
                row.claimed_by or "a hydro from before leases",
            )

    async def run_once(self) -> int:
        """Sends what is due now, about a second's worth at the configured rates (so a stop
        never waits long and little is left half-done); returns how many rows were claimed."""
        claimed, _ = await self._send_due()
        return claimed

    async def _send_due(self) -> tuple[int, bool]:
        """:meth:`run_once`, and whether a channel had a whole batch due: then go on at once."""
        await self.recover()
        # Taken before the claim: the lease, counted by the database from its commit, lasts at
        # least claim_lease from here.
        claimed_at = time.monotonic()
        async with connection(self._pool, "claiming SMS and calls") as conn:
            lease = self._config.claim_lease
            batches = [
                (lane, await claim_due(conn, self.name, lease, lane.batch, lane.channel))
                for lane in self._lanes
            ]
        await asyncio.gather(
            *(self._send(claim, lane, claimed_at) for lane, batch in batches for claim in batch)
        )
        full = any(len(batch) >= lane.batch for lane, batch in batches)
        return sum(len(batch) for _, batch in batches), full

    async def _send(self, claim: Claim, lane: _Lane, claimed_at: float) -> None:
        sms = claim.notification
        async with lane.slots:
            await _pace(lane)
            if not await self._still_ours(claim, claimed_at):
                log.warning(
                    "outbox=%d station=%s: claim ran out before it could be sent; left to the"
                    " process that took it over",
                    sms.outbox_id,
                    sms.station,
                )
                return
            try:
                provider_id = await self._call_provider(sms)
            except SmsError as exc:
                await self._failed(sms, claim, exc)
                return
        async with connection(self._pool, "recording a sent SMS") as conn:
            recorded = await mark_sent(conn, claim, provider_id)
            # A receipt that beat this commit (a fast carrier) was kept; apply it now.
            await apply_receipts(conn, provider_id, self._notices, channel=sms.channel)
        if recorded:
            log.info("%s sent via %s id=%s", _named(sms), self._provider.name, provider_id)
        else:
            log.warning(
                "%s sent via %s id=%s after its claim ran out, and another process sent it"
                " too: the person may get it twice",
                _named(sms),
                self._provider.name,
                provider_id,
            )

    async def _still_ours(self, claim: Claim, claimed_at: float) -> bool:
        """True when the lease covers the provider call and its record: at least twice the
        provider's timeout is left of it, as counted or once renewed. A fresh claim needs no
        renewal (the common case: no database round trip between claim and call)."""
        lease = self._config.claim_lease.total_seconds()
        if time.monotonic() - claimed_at < lease - 2 * self._timeout:
            return True
        async with connection(self._pool, "renewing an SMS claim") as conn:
            return await renew_claim(conn, self.name, claim, self._config.claim_lease)

    async def _call_provider(self, sms: Notification) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._provider.send(sms)
        except TimeoutError as exc:
            raise SmsError(
                f"{self._provider.name} did not answer within {self._timeout:g}s", retryable=True
            ) from exc

    async def _failed(self, sms: Notification, claim: Claim, exc: SmsError) -> None:
        retry = exc.retryable and claim.attempts < self._config.max_attempts
        delay = (
            min(self._config.retry_first * 2 ** (claim.attempts - 1), self._config.retry_max)
            if retry
            else None
        )
        async with connection(self._pool, "recording a failed SMS") as conn:
            if not await mark_failed(conn, self.name, claim, str(exc), delay):
                log.warning(
                    "outbox=%d station=%s: %s; its claim ran out meanwhile, left to the process"
                    " that took it over",
                    sms.outbox_id,
                    sms.station,
                    exc,
                )
                return
            if delay is None and sms.recipient.role not in DUTY_DESK_ROLES:
                body = delivery_failure_notice(sms, str(exc))
                on_duty = self._notices.roster.on_duty(self._notices.clock())
                await queue_duty_notices(conn, sms.station, on_duty, body)
        log.warning(
            "%s %s: %s",
            _named(sms),
            "FAILED" if delay is None else f"retry in {delay.total_seconds():.0f}s",
            exc,
        )


async def _pace(lane: _Lane) -> None:
    now = time.monotonic()
    start = max(now, lane.next_start)
    lane.next_start = start + lane.spacing
    if start > now:
        await asyncio.sleep(start - now)


def _named(sms: Notification) -> str:
    to = sms.recipient
    return (
        f"outbox={sms.outbox_id} station={sms.station} {sms.channel} to {to.role}"
        f" {mask_phone(to.phone)}"
    )


async def _first_of(*events: asyncio.Event, seconds: float) -> None:
    """Returns when one of ``events`` is set, or after ``seconds``."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)
