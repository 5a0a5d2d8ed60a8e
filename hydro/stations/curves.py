"""Stage-storage curves (水位-库容曲线): how much water a reservoir holds at a level.

A curve is read from the registry's ``*storage_curves.csv`` files as pairs of level (metres) and
storage (万m³, 10⁴ m³) and checked like the station rows: both strictly increasing, for a known
reservoir, covering its characteristic levels, since a storage read off a curve that does not
reach the level is a guess the daily report would print as a figure. Between its points a curve
is linear; outside it nothing is extrapolated: the level is reported as below or above it.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from hydro.errors import Problem
from hydro.loading import column_aliases
from hydro.models import Station, StationKind

CURVE_FILE_SUFFIX = "storage_curves.csv"
CURVE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "code": ("测站编码", "站码", "测站编号"),
    "level": ("水位",),
    "storage": ("库容",),
}
_ALIASES = column_aliases(CURVE_COLUMNS)
# The levels a curve must reach, when the station sets them.
COVERED_LEVELS = ("flood_limit_level", "normal_level", "design_flood_level")

# SL 252-2017 (水利水电工程等级划分及洪水标准), table 3.0.1: a reservoir's size by its total
# capacity (总库容, the static storage below its highest level), in 万m³, largest class first.
SIZE_CLASSES = (
    (100_000.0, "大(1)型"),  # ≥ 10 亿m³
    (10_000.0, "大(2)型"),  # ≥ 1 亿m³
    (1_000.0, "中型"),  # ≥ 0.1 亿m³
    (100.0, "小(1)型"),  # ≥ 0.01 亿m³
    (0.0, "小(2)型"),
)
MEDIUM_CAPACITY = 1_000.0  # 中型以上: medium and larger


def size_class(capacity: float) -> str:
    return next(name for floor, name in SIZE_CLASSES if capacity >= floor)


@dataclass(frozen=True, slots=True)
class StorageCurve:
    """One reservoir's curve: levels (m) and storages (万m³), both strictly increasing."""

    code: str
    levels: tuple[float, ...]
    storages: tuple[float, ...]


BELOW, INSIDE, ABOVE = -1, 0, 1  # where a level lies against its curve
_SIDES = {BELOW: "below", ABOVE: "above"}


@dataclass(frozen=True, slots=True)
class StorageReading:
    """A reservoir's storage at a level: None when the level lies outside its curve
    (``outside`` says on which side), never extrapolated."""

    level: float
    storage: float | None  # 万m³
    percent_normal: float | None
    outside: str | None  # "below" or "above"


@dataclass(frozen=True)
class StorageTable:
    """Every reservoir's curve laid end to end on one axis, so one ``np.interp`` serves all.

    Reservoir ``i``'s levels are shifted by ``offset[i]`` (its lowest level subtracted, ``i``
    times a gap wider than any curve added): the shifted curves follow each other in increasing
    order with a gap between them, and a level within a curve lands between that curve's points
    and nowhere else. A level on a point is shifted exactly as that point was, so it reads the
    point's storage exactly.
    """

    codes: tuple[str, ...]
    index: Mapping[str, int]
    low: npt.NDArray[np.float64]  # each curve's lowest level
    high: npt.NDArray[np.float64]  # each curve's highest level
    offset: npt.NDArray[np.float64]
    positions: npt.NDArray[np.float64]  # all curves' shifted levels, increasing
    storages: npt.NDArray[np.float64]
    normal: npt.NDArray[np.float64]  # storage at the normal level (正常蓄水位相应库容)
    # Total capacity for the size class: storage at the design flood level, or at the top of the
    # curve without one (SL 252 measures it at the check flood level, which the registry lacks).
    capacity: npt.NDArray[np.float64]

    @classmethod
    def of(cls, curves: Iterable[StorageCurve], stations: Mapping[str, Station]) -> StorageTable:
        """``curves`` validated (:func:`read_curves`), of reservoirs in ``stations``."""
        ordered = tuple(curves)
        low = np.array([c.levels[0] for c in ordered], dtype=np.float64)
        high = np.array([c.levels[-1] for c in ordered], dtype=np.float64)
        gap = float((high - low).max(initial=0.0)) + 1.0
        offset = np.arange(len(ordered)) * gap - low
        positions = np.concatenate(
            [np.array(c.levels) + offset[i] for i, c in enumerate(ordered)] or [np.zeros(0)]
        )
        storages = np.concatenate([np.array(c.storages) for c in ordered] or [np.zeros(0)])
        table = cls(
            codes=tuple(c.code for c in ordered),
            index=MappingProxyType({c.code: i for i, c in enumerate(ordered)}),
            low=low,
            high=high,
            offset=offset,
            positions=positions,
            storages=storages,
            normal=np.zeros(len(ordered)),
            capacity=np.zeros(len(ordered)),
        )
        reservoirs = [stations[c.code] for c in ordered]
        normal, _ = table.interpolate(_levels(reservoirs, "normal_level", high))
        capacity, _ = table.interpolate(_levels(reservoirs, "design_flood_level", high))
        return dataclasses.replace(table, normal=normal, capacity=capacity)

    def __len__(self) -> int:
        return len(self.codes)

    def interpolate(
        self, levels: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]:
        """Storage at ``levels`` (one per reservoir, in ``codes`` order; NaN: no level), and
        where each level lies (BELOW, INSIDE, ABOVE). Storage is NaN without a level and for a
        level outside its curve."""
        side = np.where(levels < self.low, BELOW, np.where(levels > self.high, ABOVE, INSIDE))
        inside = ~np.isnan(levels) & (side == INSIDE)
        storage = np.full(len(self.codes), np.nan)
        if inside.any():
            storage[inside] = np.interp(
                levels[inside] + self.offset[inside], self.positions, self.storages
            )
        return storage, side.astype(np.int8)

    def read(self, levels: Mapping[str, float]) -> dict[str, StorageReading]:
        """The storage of each reservoir with a curve at its level in ``levels`` (code ->
        metres); those without a level are left out."""
        storage, sides = self.interpolate(self.levels_of(levels))
        read = {}
        for code, volume, side, normal in zip(
            self.codes, storage.tolist(), sides.tolist(), self.normal.tolist(), strict=True
        ):
            if code not in levels:
                continue
            known = not math.isnan(volume)
            read[code] = StorageReading(
                levels[code],
                round(volume, 2) if known else None,
                round(100 * volume / normal, 1) if known and normal > 0 else None,
                _SIDES.get(side),
            )
        return read

    def size(self, code: str) -> tuple[str, float]:
        """The reservoir's size class and its normal storage (万m³)."""
        i = self.index[code]
        return size_class(float(self.capacity[i])), round(float(self.normal[i]), 2)

    def levels_of(self, found: Mapping[str, float]) -> npt.NDArray[np.float64]:
        """``found`` (code -> level) as the array :meth:`interpolate` takes; NaN where missing."""
        return np.array([found.get(code, np.nan) for code in self.codes], dtype=np.float64)


def _levels(
    reservoirs: Sequence[Station], name: str, default: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    values = [getattr(s, name) for s in reservoirs]
    return np.array(
        [d if v is None else v for v, d in zip(values, default.tolist(), strict=True)],
        dtype=np.float64,
    )


def curve_files(path: Path) -> list[Path]:
    """The curve files of a registry: ``*storage_curves.csv`` in its folder, or beside a single
    registry file ``X.csv`` the file ``X_storage_curves.csv``."""
    if path.is_dir():
        return sorted(path.glob(f"*{CURVE_FILE_SUFFIX}"))
    beside = path.with_name(f"{path.stem}_{CURVE_FILE_SUFFIX}")
    return [beside] if beside.is_file() else []


@dataclass
class _Points:
    file: Path
    first_line: int
    rows: list[tuple[int, float, float]]  # line, level, storage


def read_curves(
    files: Sequence[Path], stations: Mapping[str, Station], problems: list[Problem]
) -> list[StorageCurve]:
    """The valid curves of ``files``; every problem, with its file and line, goes to
    ``problems``."""
    points: dict[str, _Points] = {}
    spoiled: set[str] = set()  # a curve with a bad row is refused whole, not read without it
    for file in files:
        for line, code, level, storage in _read_rows(file, problems):
            if level is None or storage is None:
                spoiled.add(code)
                continue
            held = points.get(code)
            if held is None:
                points[code] = _Points(file, line, [(line, level, storage)])
            elif held.file != file:
                problems.append(
                    Problem(
                        str(file),
                        f"station {code}: its curve is already given in"
                        f" {held.file}:{held.first_line}",
                        line,
                    )
                )
            else:
                held.rows.append((line, level, storage))
    curves = []
    for code, held in points.items():
        found = [
            Problem(str(held.file), message, line)
            for line, message in _curve_problems(code, held.rows, stations.get(code))
        ]
        problems.extend(found)
        if not found and code not in spoiled:
            curves.append(
                StorageCurve(
                    code,
                    tuple(level for _, level, _ in held.rows),
                    tuple(storage for _, _, storage in held.rows),
                )
            )
    return curves


def _read_rows(
    file: Path, problems: list[Problem]
) -> Iterable[tuple[int, str, float | None, float | None]]:
    """Every row with a code; level and storage None when the row is bad."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(file), f"cannot read as UTF-8: {exc}"))
        return
    columns: list[str | None] | None = None
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        values = next(csv.reader([raw]))
        if columns is None:
            columns = [_ALIASES.get(v.strip()) for v in values]
            unknown = [v.strip() for v, c in zip(values, columns, strict=True) if c is None]
            missing = [c for c in CURVE_COLUMNS if c not in columns]
            if unknown or missing:
                problems.append(
                    Problem(
                        str(file),
                        "a curve file's columns are code, level, storage"
                        f" (测站编码, 水位, 库容); unknown: {', '.join(unknown) or '-'},"
                        f" missing: {', '.join(missing) or '-'}",
                        line,
                    )
                )
                return
            continue
        row = {c: v.strip() for c, v in zip(columns, values, strict=False) if c}
        code = row.get("code", "")
        if not code:
            problems.append(Problem(str(file), "empty station code", line))
            continue
        level = _number(row.get("level", ""))
        storage = _number(row.get("storage", ""))
        if level is None or storage is None or storage < 0:
            problems.append(
                Problem(
                    str(file),
                    f"station {code}: level {row.get('level', '')!r} and storage"
                    f" {row.get('storage', '')!r} must be numbers, storage not negative",
                    line,
                )
            )
            level = storage = None
        yield line, code, level, storage


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _curve_problems(
    code: str, rows: list[tuple[int, float, float]], station: Station | None
) -> Iterable[tuple[int, str]]:
    first = rows[0][0]
    label = f"station {code}"
    if station is None:
        yield first, f"{label}: a curve for a station not in the registry"
        return
    if station.kind is not StationKind.RESERVOIR:
        yield first, f"{label}: a curve for a {station.kind.value} station, not a reservoir"
        return
    if len(rows) < 2:
        yield first, f"{label}: a curve needs at least two points"
        return
    monotonic = True
    for (_, level0, storage0), (line, level, storage) in itertools.pairwise(rows):
        if level <= level0 or storage <= storage0:
            monotonic = False
            yield (
                line,
                f"{label}: curve not strictly increasing: level {level} storage {storage}"
                f" after level {level0} storage {storage0}",
            )
    if not monotonic:
        return
    low, high = rows[0][1], rows[-1][1]
    for name in COVERED_LEVELS:
        value = getattr(station, name)
        if value is not None and not low <= value <= high:
            yield first, f"{label}: the curve ({low}-{high} m) does not reach {name} {value}"
