"""Alerting's periodic jobs on APScheduler: one run of a job at a time, skipped runs and outages
logged by the job's name, and a stop that lets running work finish."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hydro.errors import HydroError

log = logging.getLogger("hydro")  # the jobs' lines, as they were when app.py held them


class ScheduledJobs:
    """Alerting's periodic jobs, and the tasks that run beside them (the dispatcher). Stopping
    lets a running tick or send finish (up to a grace period), so a shutdown does not leave SMS
    half-sent for a standby or the next start to repeat. A run skipped because the previous one
    is still going is logged as a warning naming the job."""

    def __init__(self, grace: dt.timedelta = dt.timedelta(seconds=10)) -> None:
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._running: set[asyncio.Task[None]] = set()
        self._loops: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._grace = grace

    def every(self, interval: dt.timedelta, job: Callable[[], Awaitable[None]]) -> None:
        self._add(
            job, "interval", seconds=interval.total_seconds(), next_run_time=dt.datetime.now(dt.UTC)
        )

    def daily(self, at: dt.time, timezone: str, job: Callable[[], Awaitable[None]]) -> None:
        """Every day at ``at`` in ``timezone``."""
        self._add(job, "cron", hour=at.hour, minute=at.minute, timezone=timezone)

    def once(self, job: Callable[[], Awaitable[None]]) -> None:
        """Right after start."""
        self._add(job, "date", run_date=dt.datetime.now(dt.UTC))

    def beside(self, run: Callable[[asyncio.Event], Coroutine[object, object, None]]) -> None:
        """Runs ``run(stopping)`` on a task of its own from start to stop: nothing waits for it."""
        self._loops.add(asyncio.create_task(run(self._stopping)))

    def _add(self, job: Callable[[], Awaitable[None]], trigger: str, **when: object) -> None:
        self._scheduler.add_job(
            self._tracked(job),
            trigger,
            name=job.__name__,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            **when,
        )

    def _tracked(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def tracked() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            except HydroError as exc:
                if not exc.retryable:
                    raise
                # The database or broker is away: the next run tries again, no traceback needed.
                log.warning("%s: %s; trying again at the next run", job.__name__, exc)
            finally:
                self._running.discard(task)

        return tracked

    def _skipped(self, event: JobEvent) -> None:
        job = self._scheduler.get_job(event.job_id)
        log.warning(
            "job %s: a run was skipped, %s",
            job.name if job else event.job_id,
            "the previous one is still going"
            if event.code == EVENT_JOB_MAX_INSTANCES
            else "it could not start in time",
        )

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        # APScheduler's shutdown cancels running coroutine jobs: let them finish first.
        self._scheduler.pause()
        self._stopping.set()
        running = self._running | self._loops
        if running:
            await asyncio.wait(running, timeout=self._grace.total_seconds())
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._scheduler.shutdown(wait=False)
