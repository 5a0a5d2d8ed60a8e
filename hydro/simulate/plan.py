"""What a simulation run publishes: how many steps of which storm, from when, how fast."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hydro.models import Station
from hydro.simulate.model import (
    REPORT_INTERVAL,
    Outage,
    Overtop,
    StormModel,
    outage_at_peak,
    overtop_in_storm,
)
from hydro.stations import Registry

log = logging.getLogger("hydro")  # the run's lines, as they were when app.py held them


@dataclass(frozen=True)
class SimulationPlan:
    steps: int
    speed: float
    storm: float
    batch: int
    seed: int
    stations: int | None  # the first N of the registry; None for all
    start: dt.datetime | None  # None: in real time from now, else replayed up to now
    silent_gauge: bool = False  # the gauge rising furthest goes silent at its peak for 2 h
    overtop: bool = False  # the reservoir filling furthest passes its 设计洪水位 (red)
    done: int = 0  # steps already published by an earlier run of the same plan
    protocol: str = "mqtt"  # mqtt: gateways publish JSON; sl651: RTUs send frames to sl651.port
    sl651_gateway: str | None = None  # with mqtt: this gateway's stations are RTUs (hydro demo)


def simulation_start(plan: SimulationPlan) -> dt.datetime:
    if plan.start is not None:
        return plan.start
    if 0 < plan.speed <= 1:  # real time: a live feed from now on, as gateways would send
        return _latest_report_time()
    return _latest_report_time() - (plan.steps - 1) * REPORT_INTERVAL


@dataclass(frozen=True)
class PlannedStorm:
    """The stations a plan covers and their weather, from the plan's first unpublished step."""

    stations: Sequence[Station]
    start: dt.datetime
    outage: Outage | None
    seed: int
    storm: float
    steps: int
    done: int
    overtop: Overtop | None = None

    def weather(self) -> StormModel:
        """A fresh copy of the deterministic model: two senders sharing one storm each get one."""
        model = StormModel(
            self.stations,
            start=self.start,
            steps=self.steps,
            storm=self.storm,
            seed=self.seed,
            outage=self.outage,
            overtop=self.overtop,
        )
        for _ in range(self.done):  # the same weather up to where the earlier run stopped
            model.step()
        return model


def plan_storm(registry: Registry, plan: SimulationPlan) -> PlannedStorm:
    """The plan's stations, start and outage, logged as the run's first lines."""
    stations = registry.stations[: plan.stations] if plan.stations else registry.stations
    start = simulation_start(plan)
    overtop = (
        overtop_in_storm(stations, start=start, steps=plan.steps, storm=plan.storm, seed=plan.seed)
        if plan.overtop
        else None
    )
    outage = (
        outage_at_peak(
            stations,
            start=start,
            steps=plan.steps,
            storm=plan.storm,
            seed=plan.seed,
            overtop=overtop,
        )
        if plan.silent_gauge
        else None
    )
    log.info(
        "simulating %d stations, steps %d-%d of %d from %s, storm %.2f, speed %gx",
        len(stations),
        plan.done + 1,
        plan.steps,
        plan.steps,
        start.isoformat(),
        plan.storm,
        plan.speed,
    )
    if outage is not None:
        log.info(
            "station=%s will go silent at its peak, %s, for %d reports",
            stations[outage.index].code,
            (start + outage.first * REPORT_INTERVAL).isoformat(),
            outage.last - outage.first,
        )
    if overtop is not None:
        log.info(
            "station=%s: its spillway gate jams, it passes its design flood level (x%.1f inflow)",
            stations[overtop.index].code,
            overtop.gain,
        )
    return PlannedStorm(
        stations,
        start,
        outage,
        plan.seed,
        plan.storm,
        steps=plan.steps,
        done=plan.done,
        overtop=overtop,
    )


def _latest_report_time() -> dt.datetime:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return now - dt.timedelta(minutes=now.minute % 5)
