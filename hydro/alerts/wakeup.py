"""Evaluation when readings arrive: a LISTEN connection wakes the evaluator as a batch commits.

Ingest NOTIFYs from the transaction of every batch that journals readings, so any ``hydro run``
hears of batches committed by any ingest process. The evaluator's tick every
``alerting.interval`` stays: it is the fallback while this connection is lost, and the clock for
silence and reminders. A lost connection is logged, tried again with backoff, and on its return
wakes the evaluator once for whatever was committed while nobody listened.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Coroutine

from hydro import metrics
from hydro.config import DatabaseConfig
from hydro.errors import StorageUnavailable
from hydro.store.journal import journal_notices

log = logging.getLogger(__name__)

_RETRY_FIRST = 0.5  # seconds
_RETRY_MAX = 30.0


class JournalListener:
    def __init__(
        self, database: DatabaseConfig, wake: Callable[[], None], *, fallback: dt.timedelta
    ) -> None:
        self._database = database
        self._wake = wake
        self._fallback = fallback.total_seconds()

    async def run(self, stop: asyncio.Event) -> None:
        """Listens until ``stop``, reconnecting whenever the connection is lost."""
        delay, lost = _RETRY_FIRST, False
        while not stop.is_set():
            try:
                async with journal_notices(self._database) as notices:
                    log.info(
                        "alerting: evaluating as readings arrive%s",
                        " again, the wake-up connection is back" if lost else "",
                    )
                    delay, lost = _RETRY_FIRST, False
                    self._wake()  # what committed while nobody listened
                    await _until(self._forward(notices), stop)
                    return
            except StorageUnavailable as exc:
                log.warning(
                    "alerting: wake-up connection lost (%s); evaluating every %gs until it is"
                    " back, trying again in %.1fs",
                    exc,
                    self._fallback,
                    delay,
                )
                lost = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(2 * delay, _RETRY_MAX)

    async def _forward(self, notices: AsyncIterator[None]) -> None:
        async for _ in notices:
            metrics.EVALUATION_WAKEUPS.inc()
            self._wake()
        raise StorageUnavailable("the server ended the notices")


async def _until(work: Coroutine[object, object, None], stop: asyncio.Event) -> None:
    """Runs ``work`` until it ends (raising its error) or ``stop`` is set (it is cancelled)."""
    task = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        task.cancel()
        await asyncio.gather(task, stopping, return_exceptions=True)
    if task in done:
        task.result()
