"""Alerting's periodic jobs on APScheduler: one run of a job at a time, skipped runs and outages
logged by the job's name, and a stop that lets running work finish."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
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

    def every(
        self, interval: dt.timedelta, job: Callable[[], Awaitable[None]]
    ) -> Callable[[], None]:
        """Runs ``job`` every ``interval``; returns a ``wake`` that runs it now as well. Runs
        never overlap and requests fold: any number of wake-ups or ticks during a run make
        exactly one more run right after it."""
        coalesced = _Coalesced(self._tracked(job))
        self._schedule(
            coalesced.run,
            job.__name__,
            "interval",
            seconds=interval.total_seconds(),
            next_run_time=dt.datetime.now(dt.UTC),
        )

        def wake() -> None:
            if self._stopping.is_set() or not coalesced.claim():
                return
            task = asyncio.create_task(coalesced.rounds())
            self._running.add(task)
            task.add_done_callback(functools.partial(self._woken_run_done, job.__name__))

        return wake

    def _woken_run_done(self, name: str, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("job %s: a run woken early failed", name, exc_info=exc)

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
        self._schedule(self._tracked(job), job.__name__, trigger, **when)

    def _schedule(
        self, run: Callable[[], Awaitable[None]], name: str, trigger: str, **when: object
    ) -> None:
        self._scheduler.add_job(
            run,
            trigger,
            name=name,
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


class _Coalesced:
    """One run of ``job`` at a time; whatever asks for a run during one gets one more after it."""

    def __init__(self, job: Callable[[], Awaitable[None]]) -> None:
        self._job = job
        self._busy = False
        self._again = False

    def claim(self) -> bool:
        """True when the caller is to start :meth:`rounds`; False when a run is under way (it
        will run once more)."""
        if self._busy:
            self._again = True
            return False
        self._busy = True
        return True

    async def run(self) -> None:
        """The scheduler's tick."""
        if self.claim():
            await self.rounds()

    async def rounds(self) -> None:
        try:
            self._again = True
            while self._again:
                self._again = False
                await self._job()
        finally:
            self._busy = False
