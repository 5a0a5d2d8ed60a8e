"""Rainfall accumulations for every station at once, and the rainfall rules' lifecycle. Pure.

Gauges report the rain fallen since their previous report, every five minutes. A report closes
the 5-minute *slot* ending at or after its time (a report at 14:00 carries 13:55-14:00), so the
rain of the 3 hours before 14:00 is the sum of the 36 slots ending at 14:00, the 14:00 report
included. A slot with no report is *unknown*, not dry: every accumulation carries the number of
slots it is missing, and a rule fires on the rain that is known (it can only be more).

Rain is kept in hundredths of a millimetre as integers, so that 50.0 mm made of a hundred 0.5 mm
tips is exactly 50.0 and a threshold's boundary means what it says.

:class:`RainRing` holds each station's recent slots in memory. A report for a slot that already
holds one (a corrected value, or two reports within five minutes) is not added: the caller
reloads that station's slots from the stored readings, which are the truth, so nothing counts
twice and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hydro.models import Station
from hydro.rules.evaluate import (
    HOLDS_ALL,
    BoolArray,
    FamilyState,
    FloatArray,
    IntArray,
    NewReadings,
    Transitions,
    advance,
    by_family_and_rank,
    collect,
    found_columns,
    in_station_order,
    reading_rounds,
)
from hydro.rules.loader import RuleSet
from hydro.rules.model import RainfallRule

SLOT_SECONDS = 300
UNKNOWN = -1  # a slot without a report; rain itself is never negative


def slot_of(times: IntArray) -> IntArray:
    """The slot each Unix time closes: ceil(time / 5 min)."""
    return -(-times // SLOT_SECONDS)


def hundredths(mm: FloatArray) -> npt.NDArray[np.int32]:
    return np.rint(mm * 100).astype(np.int32)


@dataclass(frozen=True)
class Accumulations:
    """Rain over each window ending at each query point: ``total[w, q]`` in hundredths of a mm
    over the known slots, ``missing[w, q]`` the slots without a report."""

    windows: tuple[int, ...]  # in slots, ascending
    total: npt.NDArray[np.int64]
    missing: npt.NDArray[np.int64]

    def mm(self, window: int) -> FloatArray:
        mm: FloatArray = self.total[self.windows.index(window)] / 100.0
        return mm


class RainRing:
    """The last ``span`` slots of every station: a ring of rows, one per slot, one column per
    station, so that summing a window over all stations reads contiguous memory."""

    def __init__(self, stations: int, span: int) -> None:
        self.span = span
        self.head = 0  # the newest slot held; slots (head - span, head] are in the ring
        self._cells = np.full((span, stations), UNKNOWN, dtype=np.int32)

    @property
    def stations(self) -> int:
        return int(self._cells.shape[1])

    def advance(self, head: int) -> None:
        """Moves the ring forward to ``head`` (never back); the slots it passes are unknown."""
        if head <= self.head:
            return
        if head - self.head >= self.span:
            self._cells.fill(UNKNOWN)
        else:
            self._cells[np.arange(self.head + 1, head + 1) % self.span] = UNKNOWN
        self.head = head

    def holds(self, slot: IntArray) -> BoolArray:
        return (slot > self.head - self.span) & (slot <= self.head)

    def put(self, station: IntArray, slot: IntArray, rain: npt.NDArray[np.int32]) -> BoolArray:
        """Stores new reports in empty slots; returns, per report, whether it was *not* stored:
        its slot already holds a report (or another one of this batch), or lies outside the
        ring. The caller reloads those stations with :meth:`replace`."""
        refused = ~self.holds(slot)
        inside = np.flatnonzero(~refused)
        rows, cols = slot[inside] % self.span, station[inside]
        cell = rows.astype(np.int64) * self.stations + cols
        order = np.argsort(cell, kind="stable")
        repeated = cell[order][1:] == cell[order][:-1]
        shared = np.zeros(inside.size, dtype=bool)
        shared[order[1:][repeated]] = shared[order[:-1][repeated]] = True
        taken = (self._cells[rows, cols] != UNKNOWN) | shared
        refused[inside[taken]] = True
        keep = ~taken
        self._cells[rows[keep], cols[keep]] = rain[inside[keep]]
        return refused

    def replace(
        self, stations: IntArray, station: IntArray, slot: IntArray, rain: npt.NDArray[np.int32]
    ) -> None:
        """Every slot of ``stations`` from the stored readings: (station, slot, rain) with one
        entry per slot, already summed; slots outside the ring are ignored."""
        self._cells[:, stations] = UNKNOWN
        inside = self.holds(slot)
        self._cells[slot[inside] % self.span, station[inside]] = rain[inside]

    def accumulations(
        self, station: IntArray, slot: IntArray, windows: Sequence[int]
    ) -> Accumulations:
        """The rain over each window (in slots) ending at each (station, slot)."""
        ordered = tuple(sorted(windows))
        total = np.zeros((len(ordered), station.size), dtype=np.int64)
        missing = np.zeros_like(total)
        ends, group = np.unique(slot, return_inverse=True)
        for g, end in enumerate(ends.tolist()):
            at = np.flatnonzero(group == g)
            # Many stations ending together: sum whole rows, then pick; few: pick, then sum.
            columns = station[at]
            if at.size * 8 >= self.stations:
                t, m = self._window_sums(end, ordered, None)
                t, m = t[:, columns], m[:, columns]
            else:
                t, m = self._window_sums(end, ordered, columns)
            total[:, at], missing[:, at] = t, m
        return Accumulations(ordered, total, missing)

    def _window_sums(
        self, end: int, windows: tuple[int, ...], columns: IntArray | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        width = self.stations if columns is None else columns.size
        total = np.zeros((len(windows), width), dtype=np.int64)
        missing = np.zeros_like(total)
        running_total = np.zeros(width, dtype=np.int64)
        running_missing = np.zeros(width, dtype=np.int64)
        done = 0
        oldest = self.head - self.span + 1
        for w, window in enumerate(windows):
            # Windows nest: each one adds the slots between the previous one's start and its own.
            first, last = end - window + 1, end - done
            unheld = max(0, min(last, oldest - 1) - first + 1)
            running_missing += unheld
            for rows in self._row_slices(max(first, oldest), last):
                block = self._cells[rows] if columns is None else self._cells[rows, columns]
                # int32 sums and byte counts: a day of 100k stations in a few milliseconds.
                unknown = np.add.reduce((block == UNKNOWN).view(np.uint8), axis=0, dtype=np.int16)
                running_total += np.add.reduce(block, axis=0, dtype=np.int32)
                running_total += unknown  # each unknown slot added UNKNOWN, -1
                running_missing += unknown
            total[w], missing[w] = running_total, running_missing
            done = window
        return total, missing

    def _row_slices(self, first: int, last: int) -> list[slice]:
        """The ring rows of slots first..last, as at most two contiguous slices."""
        count = last - first + 1
        if count <= 0:
            return []
        if count >= self.span:
            return [slice(None)]
        start, stop = first % self.span, last % self.span + 1
        if start < stop:
            return [slice(start, stop)]
        return [slice(start, self.span), slice(0, stop)]


@dataclass(frozen=True)
class RainfallTable:
    """The rainfall rules resolved against the registry, one family per alert (暴雨 blue to
    red escalating; 短时强降雨 alone); built once per registry and rule set."""

    families: tuple[str, ...]
    rules: tuple[tuple[RainfallRule, ...], ...]  # per family, by rank
    windows: tuple[int, ...]  # every window any rule uses, in slots, ascending
    applies: tuple[BoolArray, ...]  # per family: [rank, station]

    @classmethod
    def build(cls, rules: RuleSet, stations: Sequence[Station]) -> RainfallTable:
        families, ordered = by_family_and_rank(rules.rainfall_rules)
        return cls(
            families=families,
            rules=ordered,
            windows=tuple(sorted({r.slots for fr in ordered for r in fr})),
            applies=tuple(
                np.array([[s.kind in r.kinds for s in stations] for r in fr]).reshape(
                    len(fr), len(stations)
                )
                for fr in ordered
            ),
        )

    @property
    def longest(self) -> int:
        return max(self.windows, default=0)


def evaluate_rainfall(
    table: RainfallTable,
    states: Sequence[FamilyState],
    readings: NewReadings,
    ring: RainRing,
    *,
    clear_after: int,
) -> tuple[list[FamilyState], Transitions]:
    """Each new report's windows against the rules, in observation-time order per station,
    with the threshold lifecycle: a family's alert opens at the highest rank reached, escalates,
    and clears after ``clear_after`` consecutive reports with every window below its threshold
    minus the rule's ``clear_margin``. ``readings.value`` is unused: the ring already holds the
    reports, and the windows are read from it. ``missing`` in the result is per transition."""
    station, time, _, _ = in_station_order(readings)
    rounds = reading_rounds(station)
    acc = ring.accumulations(station, slot_of(time), table.windows)
    new_states: list[FamilyState] = []
    found: list[tuple[npt.NDArray[Any], ...]] = []
    for f, family_rules in enumerate(table.rules):
        reached = np.zeros(station.size, dtype=np.int8)
        low = np.ones(station.size, dtype=bool)
        windows = [table.windows.index(rule.slots) for rule in family_rules]
        for r, (rule, w) in enumerate(zip(family_rules, windows, strict=True)):
            applies = table.applies[f][r][station]
            threshold = round(rule.threshold * 100)
            reached[applies & (acc.total[w] >= threshold)] = r + 1  # ranks ascend
            low &= ~applies | (acc.total[w] < threshold - round(rule.clear_margin * 100))
        holds = np.where(low, 0, HOLDS_ALL).astype(np.int8)  # rain signals clear, never step down
        state, hits = advance(states[f], station, reached, holds, rounds, clear_after=clear_after)
        new_states.append(state)
        for change, index, rank in hits:
            rows = np.asarray(windows)[rank.astype(np.int64) - 1]  # each rank's own window
            total, missing = acc.total[rows, index] / 100.0, acc.missing[rows, index]
            found.append(
                found_columns(
                    f, change, index, rank, station=station, time=time, value=total, missing=missing
                )
            )
    return new_states, collect(found)
