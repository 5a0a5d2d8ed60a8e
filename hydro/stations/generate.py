"""Synthetic registries of any size for Guizhou, for benchmarks and demos.

Deterministic for a seed; every row passes the registry's own validation, so a generated file is
also a realistic fixture for it.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from hydro.models import STATION_ROLES, FloodSeason, Recipient, Role, Station, StationKind
from hydro.stations.curves import StorageCurve

# (prefecture, (lat, lon) centre, elevation range of its gauges in metres, counties, rivers)
PREFECTURES: tuple[
    tuple[str, tuple[float, float], tuple[int, int], tuple[str, ...], tuple[str, ...]], ...
] = (
    (
        "贵阳市",
        (26.65, 106.63),
        (850, 1250),
        (
            "南明区",
            "云岩区",
            "花溪区",
            "乌当区",
            "白云区",
            "观山湖区",
            "开阳县",
            "息烽县",
            "修文县",
            "清镇市",
        ),
        ("南明河", "鱼梁河", "猫跳河", "清水河", "鸭池河"),
    ),
    (
        "遵义市",
        (27.70, 106.93),
        (250, 950),
        (
            "红花岗区",
            "汇川区",
            "播州区",
            "桐梓县",
            "绥阳县",
            "正安县",
            "道真县",
            "务川县",
            "凤冈县",
            "湄潭县",
            "余庆县",
            "习水县",
            "赤水市",
            "仁怀市",
        ),
        ("乌江", "湘江", "芙蓉江", "赤水河", "綦江", "洪渡河"),
    ),
    (
        "六盘水市",
        (26.59, 104.83),
        (1150, 1900),
        ("钟山区", "六枝特区", "水城区", "盘州市"),
        ("北盘江", "三岔河", "拖长江"),
    ),
    (
        "安顺市",
        (26.25, 105.95),
        (950, 1400),
        ("西秀区", "平坝区", "普定县", "镇宁县", "关岭县", "紫云县"),
        ("三岔河", "打帮河", "王二河"),
    ),
    (
        "毕节市",
        (27.30, 105.29),
        (1100, 2100),
        ("七星关区", "大方县", "黔西市", "金沙县", "织金县", "纳雍县", "威宁县", "赫章县"),
        ("六冲河", "赤水河", "乌江", "白甫河"),
    ),
    (
        "铜仁市",
        (27.72, 109.19),
        (230, 650),
        (
            "碧江区",
            "万山区",
            "江口县",
            "玉屏县",
            "石阡县",
            "思南县",
            "印江县",
            "德江县",
            "沿河县",
            "松桃县",
        ),
        ("锦江", "乌江", "松桃河", "龙川河"),
    ),
    (
        "黔东南州",
        (26.58, 107.98),
        (280, 950),
        (
            "凯里市",
            "黄平县",
            "施秉县",
            "三穗县",
            "镇远县",
            "岑巩县",
            "天柱县",
            "锦屏县",
            "剑河县",
            "台江县",
            "黎平县",
            "榕江县",
            "从江县",
            "雷山县",
            "麻江县",
            "丹寨县",
        ),
        ("清水江", "都柳江", "舞阳河", "巴拉河", "翁密河"),
    ),
    (
        "黔南州",
        (26.26, 107.52),
        (350, 1050),
        (
            "都匀市",
            "福泉市",
            "荔波县",
            "贵定县",
            "瓮安县",
            "独山县",
            "平塘县",
            "罗甸县",
            "长顺县",
            "龙里县",
            "惠水县",
            "三都县",
        ),
        ("剑江", "樟江", "蒙江", "涟江", "红水河"),
    ),
    (
        "黔西南州",
        (25.09, 104.90),
        (400, 1350),
        ("兴义市", "兴仁市", "普安县", "晴隆县", "贞丰县", "望谟县", "册亨县", "安龙县"),
        ("南盘江", "北盘江", "马岭河", "红水河"),
    ),
)
_PLACE_FIRST = "大小上下新老石龙马凤白黄青红金银平安长高沙桥坝塘岩河溪湾口坪寨"
_PLACE_SECOND = "冲坝口寨坪场桥溪湾田关堡沟坡塘湖山洞哨营屯街"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余杜龙吴"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国红梅志强文斌玉兰海燕德福"
_MOBILE_PREFIXES = (
    "134",
    "135",
    "136",
    "138",
    "139",
    "150",
    "151",
    "158",
    "182",
    "187",
    "188",
    "130",
    "131",
    "132",
    "155",
    "186",
    "133",
    "153",
    "180",
    "189",
)
_KIND_WEIGHTS = ((StationKind.RAIN, 0.55), (StationKind.RIVER, 0.30), (StationKind.RESERVOIR, 0.15))
STATIONS_PER_GATEWAY = 50

HEADER = (
    "code",
    "name",
    "kind",
    "prefecture",
    "county",
    "river",
    "lat",
    "lon",
    "gateway",
    "timezone",
    "warning_level",
    "guaranteed_level",
    "flood_limit_level",
    "flood_season_start",
    "flood_season_end",
    "normal_level",
    "design_flood_level",
    "admin_name",
    "admin_phone",
    "technical_name",
    "technical_phone",
    "patrol_name",
    "patrol_phone",
)


def generate_stations(count: int, *, seed: int = 0) -> list[Station]:
    """``count`` stations spread over the nine prefectures, grouped into gateways by prefecture."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in _KIND_WEIGHTS]
    weights = [weight for _, weight in _KIND_WEIGHTS]
    stations: list[Station] = []
    for index in range(count):
        prefecture_index = index % len(PREFECTURES)
        prefecture, (lat0, lon0), (low, high), counties, rivers = PREFECTURES[prefecture_index]
        kind = rng.choices(kinds, weights)[0]
        sequence = index // len(PREFECTURES)
        gateway = f"gw-{prefecture_index + 1}-{sequence // STATIONS_PER_GATEWAY + 1:03d}"
        place = rng.choice(_PLACE_FIRST) + rng.choice(_PLACE_SECOND)
        elevation = rng.uniform(low, high)
        stations.append(
            Station(
                code=f"6{prefecture_index + 1}{sequence:06d}",
                name=place + {"river": "水文站", "reservoir": "水库", "rain": "雨量站"}[kind.value],
                kind=kind,
                prefecture=prefecture,
                county=rng.choice(counties),
                river=rng.choice(rivers),
                lat=round(lat0 + rng.uniform(-0.45, 0.45), 5),
                lon=round(lon0 + rng.uniform(-0.55, 0.55), 5),
                gateway=gateway,
                timezone="Asia/Shanghai",
                persons=tuple(_person(rng, role) for role in STATION_ROLES),
                **_levels(rng, kind, elevation),
            )
        )
    return stations


def _levels(rng: random.Random, kind: StationKind, elevation: float) -> dict[str, Any]:
    if kind is StationKind.RIVER:
        warning = round(elevation + rng.uniform(3.0, 8.0), 2)
        return {
            "warning_level": warning,
            "guaranteed_level": round(warning + rng.uniform(1.0, 3.0), 2),
        }
    if kind is StationKind.RESERVOIR:
        normal = round(elevation + rng.uniform(20.0, 60.0), 2)
        return {
            "normal_level": normal,
            "flood_limit_level": round(normal - rng.uniform(0.5, 3.0), 2),
            "design_flood_level": round(normal + rng.uniform(1.0, 4.0), 2),
            "flood_season": FloodSeason((5, 1), (9, 30)),
        }
    return {}


def _person(rng: random.Random, role: Role) -> Recipient:
    name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2))))
    phone = "+86" + rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    return Recipient(role, name, phone)


def write_stations_csv(stations: Iterable[Station], out: Path | IO[str]) -> int:
    """Writes the documented English header; returns the number of rows."""
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8", newline="") as handle:
            return write_stations_csv(stations, handle)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    rows = 0
    for station in stations:
        writer.writerow(_row(station))
        rows += 1
    return rows


def _row(station: Station) -> list[str]:
    season = station.flood_season
    persons = {p.role: p for p in station.persons}

    def level(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    def person(role: Role) -> list[str]:
        held = persons.get(role)
        return ["", ""] if held is None else [held.name, held.phone]

    return [
        station.code,
        station.name,
        station.kind.value,
        station.prefecture,
        station.county,
        station.river,
        f"{station.lat}",
        f"{station.lon}",
        station.gateway or "",
        station.timezone,
        level(station.warning_level),
        level(station.guaranteed_level),
        level(station.flood_limit_level),
        f"{season.start[0]:02d}-{season.start[1]:02d}" if season else "",
        f"{season.end[0]:02d}-{season.end[1]:02d}" if season else "",
        level(station.normal_level),
        level(station.design_flood_level),
        *person(Role.ADMINISTRATIVE),
        *person(Role.TECHNICAL),
        *person(Role.PATROL),
    ]


CURVES_NOTE = (
    "# Synthetic stage-storage curves (水位-库容曲线), generated by hydro.stations.generate:"
    " storage = a * depth^b above an assumed river bed, not surveyed data."
)


def generate_curves(stations: Iterable[Station], *, seed: int = 0) -> list[StorageCurve]:
    """A plausible curve for every reservoir with a normal level: storage grows as a power of
    the depth (b from 2.0 to 2.8: a valley widening upwards), the normal storage drawn
    log-uniformly from 100 to 50,000 万m³ (small to large), points every metre from the bed to
    some metres above the highest characteristic level."""
    curves = []
    for station in stations:
        normal = station.normal_level
        if station.kind is not StationKind.RESERVOIR or normal is None:
            continue
        rng = random.Random(f"{seed}:{station.code}")
        depth = rng.uniform(15.0, 60.0)
        power = rng.uniform(2.0, 2.8)
        normal_storage = 10 ** rng.uniform(2.0, math.log10(50_000.0))
        scale = normal_storage / depth**power
        bed = normal - depth
        top = max(normal, station.design_flood_level or normal) + rng.uniform(1.0, 5.0)
        levels: list[float] = []
        storages: list[float] = []
        for step in range(1, math.ceil(top - bed) + 1):
            level = round(min(bed + step, top), 2)
            storage = round(scale * (level - bed) ** power, 2)
            if storage > (storages[-1] if storages else 0.0) and (not levels or level > levels[-1]):
                levels.append(level)
                storages.append(storage)
        floor = min(v for v in (station.flood_limit_level, normal) if v is not None)
        if levels[0] > floor:  # a very small reservoir: its first whole metre holds nothing
            continue
        curves.append(StorageCurve(station.code, tuple(levels), tuple(storages)))
    return curves


def write_curves_csv(curves: Iterable[StorageCurve], out: Path | IO[str]) -> int:
    """Writes ``CURVES_NOTE`` and the documented header; returns the number of curves."""
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8", newline="") as handle:
            return write_curves_csv(curves, handle)
    out.write(CURVES_NOTE + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("code", "level", "storage"))
    count = 0
    for curve in curves:
        writer.writerows(
            (curve.code, f"{level:.2f}", f"{storage:.2f}")
            for level, storage in zip(curve.levels, curve.storages, strict=True)
        )
        count += 1
    return count
