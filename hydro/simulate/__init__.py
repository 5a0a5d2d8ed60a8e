"""Simulated gateways: a storm model for the registry and a publisher that speaks the contract."""

from hydro.simulate.model import REPORT_INTERVAL, Outage, Step, StormModel, outage_at_peak
from hydro.simulate.plan import SimulationPlan, publish_plan, simulation_start
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
    "PayloadEncoder",
    "PublishProgress",
    "SimulationPlan",
    "Step",
    "StormModel",
    "gateways",
    "outage_at_peak",
    "publish_plan",
    "publish_storm",
    "simulation_start",
]
