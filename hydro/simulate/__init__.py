"""Simulated gateways: a storm model for the registry and a publisher that speaks the contract."""

from hydro.simulate.model import (
    REPORT_INTERVAL,
    Outage,
    Overtop,
    Step,
    StepSource,
    StormModel,
    Subset,
    outage_at_peak,
    overtop_in_storm,
)
from hydro.simulate.plan import PlannedStorm, SimulationPlan, plan_storm, simulation_start
from hydro.simulate.publisher import (
    SIMULATED_GATEWAY_SIZE,
    Message,
    PayloadEncoder,
    PublishProgress,
    gateways,
    publish_storm,
)

__all__ = [
    "REPORT_INTERVAL",
    "SIMULATED_GATEWAY_SIZE",
    "Message",
    "Outage",
    "Overtop",
    "PayloadEncoder",
    "PlannedStorm",
    "PublishProgress",
    "SimulationPlan",
    "Step",
    "StepSource",
    "StormModel",
    "Subset",
    "gateways",
    "outage_at_peak",
    "overtop_in_storm",
    "plan_storm",
    "publish_storm",
    "simulation_start",
]
