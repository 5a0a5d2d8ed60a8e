"""The daily report job and the report operators ask for: figures in, stored report out.

The job stores the report of the day that just ended and queues its SMS digest in the same
transaction, once: a second ``hydro run`` (a standby) finds it stored and sends nothing. Asked
for later, a stored report is shown as it was built, with what late data changed since.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

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


@dataclass(frozen=True, slots=True)
class DailyReports:
    """``zone`` is the registry's default time zone, in which a day begins and ends; the
    digest goes to whoever ``roster`` has on duty by ``clock`` when it is queued."""

    config: ReportConfig
    registry: Registry
    rules: RuleSet
    pool: psycopg_pool.AsyncConnectionPool
    _: KW_ONLY
    zone: str
    roster: DutyRoster
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def last_ended_day(self) -> dt.date:
        return last_ended_day(self.clock(), self.zone, self.config.daily_at)

    async def report(self, day: dt.date) -> tuple[DailyReport, bool]:
        """The stored report of ``day`` with its corrections, or (not stored) one built now."""
        fresh = await self.build(day)
        async with connection(self.pool, f"reading the daily report of {day}") as conn:
            stored = await stored_report(conn, day)
        if stored is None:
            return fresh, False
        return with_corrections(DailyReport.model_validate(stored), fresh), True

    async def build(self, day: dt.date) -> DailyReport:
        start, end = day_bounds(day, self.zone)
        async with connection(self.pool, f"reading the figures of {day}") as conn:
            figures = await day_figures(
                conn,
                start,
                end,
                hours_looked_back(self.rules),
                medium_and_larger(self.registry.storage),
            )
        return build_daily(
            day,
            self.zone,
            self.registry.stations,
            self.rules,
            figures,
            wettest=self.config.wettest,
            built_at=self.clock(),
            curves=self.registry.storage,
        )

    async def publish_due(self, *, unless_empty: bool = False) -> None:
        """Builds and stores the report of the day that just ended, and queues its digest.

        Run at start-up as well (``unless_empty``), this catches up the report that fell due
        while hydro was down; a day without a single reading (a new installation) is skipped
        rather than announced to the duty desk as a province gone silent."""
        day = self.last_ended_day()
        async with connection(self.pool, "checking the daily report") as conn:
            if await stored_report(conn, day) is not None:
                return
        report = await self.build(day)
        if unless_empty and not any(s.readings for s in report.stations):
            log.info("daily report of %s not built at start-up: no readings in that day", day)
            return
        text = digest(report)
        async with connection(self.pool, f"storing the daily report of {day}") as conn:
            if not await store_report(conn, day, report.model_dump(mode="json")):
                return  # another process stored it first
            ids = (
                await queue_duty_notices(conn, None, self.roster.on_duty(self.clock()), text)
                if self.config.digest
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
