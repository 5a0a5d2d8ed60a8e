"""Alert rules: what operators write in ``alert_rules/``, and the text of the SMS they send."""

from hydro.rules.loader import RuleSet, check_rules, load_rules
from hydro.rules.messages import render
from hydro.rules.model import (
    LEVEL_NAMES,
    LadderPolicy,
    LevelRule,
    RainfallRule,
    RateOfRiseRule,
    Rule,
    Severity,
    SilenceRule,
)

__all__ = [
    "LEVEL_NAMES",
    "LadderPolicy",
    "LevelRule",
    "RainfallRule",
    "RateOfRiseRule",
    "Rule",
    "RuleSet",
    "Severity",
    "SilenceRule",
    "check_rules",
    "load_rules",
    "render",
]
