"""Stage-storage curves: every bad row found with its file and line, interpolation at and
between points, levels outside a curve reported as such, the size classes of SL 252."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hydro.cli import main
from hydro.models import StationKind
from hydro.stations import (
    Registry,
    StorageCurve,
    check_registry,
    generate_curves,
    generate_stations,
    load_registry,
    size_class,
    write_curves_csv,
    write_stations_csv,
)
from hydro.stations.curves import ABOVE, BELOW, INSIDE, StorageReading
from tests.support import REPO
from tests.unit.test_stations import GOOD_RIVER, HEADER, PERSONS

# 汛限 770.5, 正常 771.5, 设计洪水 773.2
RESERVOIR = (
    f"67901001,麦冲水库,reservoir,黔东南州,台江县,翁密河,26.62,108.35,,,,,770.50,05-01,09-30,"
    f"771.50,773.20,{PERSONS}"
)
CURVE = ["67901001,760,100", "67901001,770,1000", "67901001,772,1300", "67901001,774,1700"]


def curve_problems(tmp_path: Path, *rows: str, header: str = "code,level,storage") -> list[str]:
    (tmp_path / "stations.csv").write_text(
        "\n".join([HEADER, RESERVOIR, GOOD_RIVER]) + "\n", encoding="utf-8"
    )
    curves = tmp_path / "storage_curves.csv"
    curves.write_text("\n".join(["# a comment", header, *rows]) + "\n", encoding="utf-8")
    _, problems = check_registry(tmp_path, "Asia/Shanghai")
    return [str(p).removeprefix(f"{curves}:") for p in problems]


def test_a_good_curve_is_loaded_beside_the_stations(tmp_path: Path) -> None:
    assert curve_problems(tmp_path, *CURVE) == []
    registry = load_registry(tmp_path, "Asia/Shanghai")
    assert registry.storage.codes == ("67901001",)
    assert registry.storage.normal.tolist() == [1225.0]  # 771.5 m: 3/4 of the way from 770 to 772
    assert registry.storage.capacity.tolist() == pytest.approx(
        [1540.0]
    )  # at the design flood level 773.2


def test_chinese_headers_are_read(tmp_path: Path) -> None:
    assert curve_problems(tmp_path, *CURVE, header="测站编码,水位,库容") == []


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [CURVE[0], CURVE[2], CURVE[1], CURVE[3]],
            "5: station 67901001: curve not strictly increasing: level 770.0 storage 1000.0"
            " after level 772.0 storage 1300.0",
        ),
        (
            [CURVE[0], "67901001,770,100", *CURVE[2:]],
            "4: station 67901001: curve not strictly increasing: level 770.0 storage 100.0",
        ),
        (
            [CURVE[0], "67901001,760,120", *CURVE[1:]],
            "4: station 67901001: curve not strictly increasing: level 760.0",
        ),
        (
            CURVE[:3],
            "3: station 67901001: the curve (760.0-772.0 m) does not reach"
            " design_flood_level 773.2",
        ),
        (
            ["67901001,771,1100", *CURVE[2:]],
            "3: station 67901001: the curve (771.0-774.0 m) does not reach flood_limit_level",
        ),
        (["67901001,760,100"], "3: station 67901001: a curve needs at least two points"),
        (
            ["60000001,900,1", "60000001,920,2"],
            "3: station 60000001: a curve for a river station, not a reservoir",
        ),
        (
            ["99999999,900,1", "99999999,920,2"],
            "3: station 99999999: a curve for a station not in the registry",
        ),
        ([*CURVE, "67901001,abc,2000"], "7: station 67901001: level 'abc' and storage '2000'"),
        ([*CURVE, "67901001,780,-1"], "7: station 67901001: level '780' and storage '-1'"),
        ([",780,1"], "3: empty station code"),
    ],
)
def test_a_bad_curve_is_refused_with_its_line(
    tmp_path: Path, rows: list[str], expected: str
) -> None:
    found = curve_problems(tmp_path, *rows)
    assert any(p.startswith(expected) for p in found), found
    assert "67901001" not in load_registry_or_none(tmp_path)


def load_registry_or_none(path: Path) -> tuple[str, ...]:
    registry, _ = check_registry(path, "Asia/Shanghai")
    return registry.storage.codes


def test_a_curve_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    [problem] = curve_problems(tmp_path, "67901001,760", header="code,level")
    assert problem.startswith("2: a curve file's columns are code, level, storage")
    assert "missing: storage" in problem


def test_a_curve_given_in_two_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "more_storage_curves.csv").write_text(
        "code,level,storage\n" + "\n".join(CURVE) + "\n", encoding="utf-8"
    )
    found = curve_problems(tmp_path, *CURVE)
    assert any("its curve is already given in" in p for p in found), found


def test_the_sample_registry_has_curves_for_its_reservoirs() -> None:
    registry = load_registry(REPO / "stations", "Asia/Shanghai")
    reservoirs = {s.code for s in registry.stations if s.kind.value == "reservoir"}
    assert set(registry.storage.codes) == reservoirs
    assert (REPO / "stations" / "storage_curves.csv").read_text().startswith("# Synthetic")


def test_generated_curves_round_trip_and_pass_the_checks(tmp_path: Path) -> None:
    stations = generate_stations(2000, seed=4)
    curves = generate_curves(stations, seed=4)
    assert curves == generate_curves(stations, seed=4)
    reservoirs = [s for s in stations if s.kind.value == "reservoir"]
    assert len(curves) == len(reservoirs)
    write_stations_csv(stations, tmp_path / "big.csv")
    write_curves_csv(curves, tmp_path / "big_storage_curves.csv")
    registry = load_registry(tmp_path / "big.csv", "Asia/Shanghai")
    assert registry.storage.codes == tuple(c.code for c in curves)
    sizes = {size_class(c) for c in registry.storage.capacity.tolist()}
    assert {"中型", "大(2)型"} <= sizes  # medium and larger ones, as the report needs


def test_stations_generate_command_writes_curves_beside_the_registry(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.csv"
    assert main(["stations", "generate", "--count", "60", "--output", str(out)]) == 0
    assert (tmp_path / "synthetic_storage_curves.csv").is_file()
    assert len(load_registry(out, "Asia/Shanghai").storage) > 0


def table() -> Registry:
    """Two reservoirs at normal levels 100 m and 200 m."""
    a, b = (
        dataclasses.replace(s, code=code, normal_level=normal, flood_limit_level=None,
                            design_flood_level=None)
        for s, code, normal in zip(generate_stations(40, seed=1)[:2], "AB", (100.0, 200.0),
                                   strict=True)
    )  # fmt: skip
    a = dataclasses.replace(a, kind=StationKind.RESERVOIR)
    b = dataclasses.replace(b, kind=StationKind.RESERVOIR)
    return Registry.of(
        [a, b],
        curves=[
            StorageCurve("A", (90.0, 100.0, 110.0), (10.0, 500.0, 2000.0)),
            StorageCurve("B", (195.0, 205.0), (1.0, 3.0)),
        ],
    )


@pytest.mark.parametrize(
    ("level_a", "level_b", "storage", "side"),
    [
        (100.0, 200.0, [500.0, 2.0], [INSIDE, INSIDE]),  # on a point; halfway
        (90.0, 205.0, [10.0, 3.0], [INSIDE, INSIDE]),  # the ends
        (105.0, 197.5, [1250.0, 1.5], [INSIDE, INSIDE]),
        (89.99, 205.01, [None, None], [BELOW, ABOVE]),  # not extrapolated
        (None, 200.0, [None, 2.0], [INSIDE, INSIDE]),  # no level at 08:00
    ],
)
def test_interpolation_on_a_point_between_points_below_above_and_missing(
    level_a: float | None, level_b: float | None, storage: list[float | None], side: list[int]
) -> None:
    registry = table()
    found = {code: v for code, v in (("A", level_a), ("B", level_b)) if v is not None}
    got, sides = registry.storage.interpolate(registry.storage.levels_of(found))
    assert [None if np.isnan(v) else round(v, 9) for v in got.tolist()] == storage
    assert sides.tolist() == side


def test_normal_storage_and_capacity_are_read_off_the_curve() -> None:
    storage = table().storage
    assert storage.normal.tolist() == [500.0, 2.0]
    assert storage.capacity.tolist() == [2000.0, 3.0]  # no design flood level: the top


@pytest.mark.parametrize(
    ("capacity", "name"),
    [
        (99.9, "小(2)型"),
        (100.0, "小(1)型"),
        (999.9, "小(1)型"),
        (1000.0, "中型"),
        (9999.0, "中型"),
        (10000.0, "大(2)型"),
        (100000.0, "大(1)型"),
    ],
)
def test_size_classes_of_sl_252(capacity: float, name: str) -> None:
    assert size_class(capacity) == name


def test_an_empty_table_interpolates_nothing() -> None:
    storage, sides = Registry.of([]).storage.interpolate(np.zeros(0))
    assert storage.shape == sides.shape == (0,)


def test_read_gives_storage_and_percent_of_normal_for_the_levels_given_only() -> None:
    read = table().storage.read({"A": 105.0, "B": 205.5})
    assert read == {
        "A": StorageReading(105.0, 1250.0, 250.0, None),  # normal storage 500
        "B": StorageReading(205.5, None, None, "above"),  # not extrapolated
    }
    assert table().storage.read({}) == {}
