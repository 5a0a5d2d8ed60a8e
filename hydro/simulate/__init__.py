"""Simulated gateways: a storm model for the registry and a publisher that speaks the contract."""

from hydro.simulate.model import REPORT_INTERVAL, Step, StormModel
from hydro.simulate.publisher import PublishProgress, publish_storm, step_messages

__all__ = [
    "REPORT_INTERVAL",
    "PublishProgress",
    "Step",
    "StormModel",
    "publish_storm",
    "step_messages",
]
