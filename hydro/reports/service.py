"""The daily report job and the report operators ask for: figures in, stored report out.

The job stores the report of the day that just ended and queues its SMS digest in the same
transaction, once: a second ``hydro run`` (a standby) finds it stored and sends nothing. Asked
for later, a stored report is shown as it was built, with what late data changed since.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import psycopg_pool

from hydro.config import ReportConfig
from hydro.duty import DutyRoster
from hydro.reports.daily import (
    build_daily,
    day_bounds,
    hours_looked_back,
    last_ended_day,
    medium_and_larger,
    with_corrections,
)
from hydro.reports.formats import digest
from hydro.reports.model import DailyReport
from hydro.rules import RuleSet
from hydro.stations import Registry
from hydro.store.db import connection
from hydro.store.outbox import queue_duty_notices
from hydro.store.reports import day_figures, store_report, stored_report

log = logging.getLogger(__name__)


class DailyReports:
    def __init__(
        self,
        config: ReportConfig,
        registry: Registry,
        rules: RuleSet,
        pool: psycopg_pool.AsyncConnectionPool,
        *,
        zone: str,
        roster: DutyRoster,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """``zone`` is the registry's default time zone, in which a day begins and ends; the
        digest goes to whoever ``roster`` has on duty by ``clock`` when it is queued."""
        self._config = config
        self._zone = zone
        self._roster = roster
        self._registry = registry
        self._rules = rules
        self._pool = pool
        self._clock = clock

    def last_ended_day(self) -> dt.date:
        return last_ended_day(self._clock(), self._zone, self._config.daily_at)

    async def report(self, day: dt.date) -> tuple[DailyReport, bool]:
        """The stored report of ``day`` with its corrections, or (not stored) one built now."""
        fresh = await self.build(day)
        async with connection(self._pool, f"reading the daily report of {day}") as conn:
            stored = await stored_report(conn, day)
        if stored is None:
            return fresh, False
        return with_corrections(DailyReport.model_validate(stored), fresh), True

    async def build(self, day: dt.date) -> DailyReport:
        start, end = day_bounds(day, self._zone)
        async with connection(self._pool, f"reading the figures of {day}") as conn:
            figures = await day_figures(
                conn,
                start,
                end,
                hours_looked_back(self._rules),
                medium_and_larger(self._registry.storage),
            )
        return build_daily(
            day,
            self._zone,
            self._registry.stations,
            self._rules,
            figures,
            wettest=self._config.wettest,
            built_at=self._clock(),
            curves=self._registry.storage,
        )

    async def publish_due(self, *, unless_empty: bool = False) -> None:
        """Builds and stores the report of the day that just ended, and queues its digest.

        Run at start-up as well (``unless_empty``), this catches up the report that fell due
        while hydro was down; a day without a single reading (a new installation) is skipped
        rather than announced to the duty desk as a province gone silent."""
        day = self.last_ended_day()
        async with connection(self._pool, "checking the daily report") as conn:
            if await stored_report(conn, day) is not None:
                return
        report = await self.build(day)
        if unless_empty and not any(s.readings for s in report.stations):
            log.info("daily report of %s not built at start-up: no readings in that day", day)
            return
        text = digest(report)
        async with connection(self._pool, f"storing the daily report of {day}") as conn:
            if not await store_report(conn, day, report.model_dump(mode="json")):
                return  # another process stored it first
            ids = (
                await queue_duty_notices(conn, None, self._roster.on_duty(self._clock()), text)
                if self._config.digest
                else []
            )
        log.info(
            "daily report of %s stored: %d stations, %d silent, %d alerts opened; digest outbox=%s",
            day,
            len(report.stations),
            len(report.silent),
            len(report.alerts_opened),
            ",".join(map(str, ids)) or "-",
        )
