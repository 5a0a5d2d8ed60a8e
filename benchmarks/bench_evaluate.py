"""Evaluation cost per tick for 10k, 100k and 1M stations with 5-minute data; prints JSON.

Every station gets one new water level per tick (the worst case: all reports of a 5-minute
round arrive within one tick) and the threshold families of the default rule set. The goal is
under 100 ms for 1M stations and linear growth.

    python3 benchmarks/bench_evaluate.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from hydro.rules import load_rules
from hydro.rules.evaluate import FamilyState, NewReadings, ThresholdTable, evaluate_thresholds

RULES = load_rules(Path(__file__).resolve().parent.parent / "alert_rules")


def synthetic_table(stations: int, rng: np.random.Generator) -> ThresholdTable:
    """The default rules over a registry that is 30% rivers and 15% reservoirs, as arrays."""
    kind = rng.choice(3, size=stations, p=[0.30, 0.15, 0.55])  # river, reservoir, rain
    base = rng.uniform(200, 2000, stations)
    by_family: dict[str, list[object]] = {}
    for rule in RULES.level_rules:
        by_family.setdefault(rule.family, []).append(rule)
    families = tuple(sorted(by_family))
    rules = tuple(tuple(sorted(by_family[f], key=lambda r: r.rank)) for f in families)  # type: ignore[attr-defined]
    levels = []
    for family_rules in rules:
        river = family_rules[0].kinds[0].value == "river"
        rows = np.array([base + 5 + 2 * rank for rank in range(len(family_rules))])
        rows[:, kind != (0 if river else 1)] = np.nan
        levels.append(rows)
    return ThresholdTable(
        families=families,
        rules=rules,  # type: ignore[arg-type]
        levels=tuple(levels),
        strict=tuple(np.array([r.condition == "above" for r in fr]) for fr in rules),
        seasonal=tuple(np.array([r.in_flood_season_only for r in fr]) for fr in rules),
        season_start=np.where(kind == 1, 501, -1),
        season_end=np.where(kind == 1, 930, -1),
    ), base


def measure(stations: int, ticks: int = 7) -> dict[str, float]:
    rng = np.random.default_rng(stations)
    table, base = synthetic_table(stations, rng)
    states = [FamilyState.empty(stations) for _ in table.families]
    timings = []
    transitions = 0
    for tick in range(ticks):
        # Levels wander around the warning level so alerts open, escalate and clear.
        value = base + 5 + rng.normal(0, 1.0, stations)
        readings = NewReadings(
            station=np.arange(stations),
            time=np.full(stations, 1_778_112_000 + 300 * tick),
            value=value,
            local_mmdd=np.full(stations, 707),
        )
        started = time.perf_counter()
        states, found = evaluate_thresholds(table, states, readings, margin=0.05, clear_after=2)
        timings.append(time.perf_counter() - started)
        transitions += len(found)
    return {
        "median_ms": round(statistics.median(timings) * 1000, 1),
        "max_ms": round(max(timings) * 1000, 1),
        "transitions_per_tick": transitions // ticks,
    }


def main() -> None:
    results = {f"{n:,}": measure(n) for n in (10_000, 100_000, 1_000_000)}
    print(json.dumps({"per_tick": results, "goal_ms_for_1M": 100}, indent=2))


if __name__ == "__main__":
    main()
