"""The station registry: every bad row found with its line, the sample and the generator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hydro.cli import main
from hydro.models import STATION_ROLES, Role, StationKind
from hydro.stations import (
    check_registry,
    generate_stations,
    load_registry,
    registry_warnings,
    write_stations_csv,
)
from tests.support import REPO

HEADER = (
    "code,name,kind,prefecture,county,river,lat,lon,gateway,timezone,warning_level,"
    "guaranteed_level,flood_limit_level,flood_season_start,flood_season_end,normal_level,"
    "design_flood_level,admin_name,admin_phone,technical_name,technical_phone,patrol_name,"
    "patrol_phone"
)
PERSONS = "甲,13800000001,乙,+8613900000002,丙,15800000003"
GOOD_RIVER = (
    f"60000001,禾丰水文站,river,贵阳市,开阳县,鱼梁河,27.01,106.88,gw-1,,908.5,910,,,,,,{PERSONS}"
)


def problems_in(tmp_path: Path, *rows: str, header: str = HEADER) -> list[str]:
    path = tmp_path / "stations.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    _, problems = check_registry(path, "Asia/Shanghai")
    return [str(p).removeprefix(f"{path}:") for p in problems]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (GOOD_RIVER.replace(",river,", ",lake,"), "2: station 60000001: unknown kind 'lake'"),
        (
            GOOD_RIVER.replace("908.5,910", "911,910"),
            "2: station 60000001: warning_level 911.0 is above guaranteed_level 910.0",
        ),
        (
            GOOD_RIVER.replace("908.5,910", ",910"),
            "2: station 60000001: a river station needs warning_level",
        ),
        (GOOD_RIVER.replace("908.5,910", "abc,910"), "2: station 60000001: warning_level 'abc'"),
        (
            GOOD_RIVER.replace("27.01,106.88", "106.88,27.01"),
            "2: station 60000001: lat 106.88 is outside -90..90 (lat and lon swapped?)",
        ),
        (GOOD_RIVER.replace("27.01,106.88", "27.01,190"), "2: station 60000001: lon 190.0"),
        (
            GOOD_RIVER.replace("甲,13800000001", ","),
            "2: station 60000001: missing administrative responsible person",
        ),
        (
            GOOD_RIVER.replace("15800000003", "12345"),
            "2: station 60000001: patrol_phone '12345' is not a valid phone number",
        ),
        (
            GOOD_RIVER.replace("gw-1,,", "gw-1,Mars/Base,"),
            "2: station 60000001: unknown time zone 'Mars/Base'",
        ),
        (GOOD_RIVER.replace("60000001,", ",", 1), "2: empty station code"),
        (
            f"60000002,麦冲水库,reservoir,黔东南州,台江县,,26.6,108.3,,,,,772,05-01,09-30,771.5,773,{PERSONS}",
            "2: station 60000002: flood_limit_level 772.0 is above normal_level 771.5",
        ),
        (
            f"60000002,麦冲水库,reservoir,黔东南州,台江县,,26.6,108.3,,,,,770,,,771.5,773,{PERSONS}",
            "2: station 60000002: flood_limit_level needs flood_season_start and flood_season_end",
        ),
        (
            f"60000002,麦冲水库,reservoir,黔东南州,台江县,,26.6,108.3,,,,,770,02-30,09-30,771.5,773,{PERSONS}",
            "2: station 60000002: flood_season_start '02-30' is not a date like 05-01",
        ),
        (
            f"60000002,麦冲水库,reservoir,黔东南州,台江县,,26.6,108.3,,,,,,,,,773,{PERSONS}",
            "2: station 60000002: a reservoir needs normal_level",
        ),
    ],
)
def test_each_bad_row_is_reported_with_its_line(tmp_path: Path, row: str, expected: str) -> None:
    problems = problems_in(tmp_path, GOOD_RIVER.replace("60000001", "60000009"), row)
    assert any(p.startswith(expected.replace("2:", "3:", 1)) for p in problems), problems


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ("0", "report_interval '0' is not a whole number of minutes between 1 and 1440"),
        ("-5", "report_interval '-5' is not a whole number of minutes between 1 and 1440"),
        ("7.5", "report_interval '7.5' is not a whole number of minutes between 1 and 1440"),
        ("1441", "report_interval '1441' is not a whole number of minutes between 1 and 1440"),
        ("hourly", "report_interval 'hourly' is not a whole number of minutes between 1 and 1440"),
    ],
)
def test_a_reporting_interval_is_whole_minutes_up_to_a_day(
    tmp_path: Path, interval: str, expected: str
) -> None:
    problems = problems_in(tmp_path, f"{GOOD_RIVER},{interval}", header=HEADER + ",report_interval")
    assert problems == [f"2: station 60000001: {expected}"]


def test_a_reporting_interval_defaults_to_five_minutes(tmp_path: Path) -> None:
    path = tmp_path / "stations.csv"
    rows = [f"{GOOD_RIVER},60", f"{GOOD_RIVER.replace('60000001', '60000002')},"]
    path.write_text("\n".join([HEADER + ",报送间隔", *rows]) + "\n", encoding="utf-8")
    hourly, default = load_registry(path, "Asia/Shanghai").stations
    assert (hourly.report_interval, default.report_interval) == (
        dt.timedelta(hours=1),
        dt.timedelta(minutes=5),
    )


def test_duplicates_and_unknown_columns(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, GOOD_RIVER, GOOD_RIVER, header=HEADER + ",colour")
    assert problems == [
        "1: unknown column 'colour'",
        f"3: duplicate station code 60000001 (first at {tmp_path / 'stations.csv'}:2)",
    ]


def test_missing_required_columns_stop_the_file(tmp_path: Path) -> None:
    assert problems_in(tmp_path, "1,A", header="code,name") == [
        "1: missing column(s): kind, prefecture, county, lat, lon"
    ]


def test_chinese_headers_and_an_excel_bom_are_understood(tmp_path: Path) -> None:
    header = (
        "测站编码,站名,类型,市州,区县,河流,纬度,经度,网关,时区,警戒水位,保证水位,汛限水位,汛期开始,"
        "汛期结束,正常蓄水位,设计洪水位,行政责任人,行政责任人电话,技术责任人,技术责任人电话,"
        "巡查责任人,巡查责任人电话"
    )
    row = f"60000001,禾丰水文站,河道,贵阳市,开阳县,鱼梁河,27.01,106.88,,,908.5,910,,,,,,{PERSONS}"
    path = tmp_path / "registry.csv"
    path.write_text("\ufeff" + header + "\n" + row + "\n", encoding="utf-8")
    [station] = load_registry(path, "Asia/Shanghai").stations
    assert (station.kind, station.warning_level, station.timezone) == (
        StationKind.RIVER,
        908.5,
        "Asia/Shanghai",
    )
    assert [p.phone for p in station.persons] == [
        "+8613800000001",
        "+8613900000002",
        "+8615800000003",
    ]


def test_a_folder_of_files_is_one_registry(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(HEADER + "\n" + GOOD_RIVER + "\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text(HEADER + "\n" + GOOD_RIVER + "\n", encoding="utf-8")
    registry, problems = check_registry(tmp_path, "Asia/Shanghai")
    assert len(registry) == 1
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'b.csv'}:2: duplicate station code 60000001 (first at {tmp_path / 'a.csv'}:2)"
    ]


def test_the_sample_guizhou_registry_is_valid_and_has_the_reference_stations() -> None:
    registry = load_registry(REPO / "stations", "Asia/Shanghai")
    assert len({s.prefecture for s in registry.stations}) == 9
    maichong = next(s for s in registry.stations if s.name == "麦冲水库")
    assert (maichong.prefecture, maichong.county, maichong.normal_level) == (
        "黔东南州",
        "台江县",
        771.5,
    )
    assert maichong.kind is StationKind.RESERVOIR
    hefeng = next(s for s in registry.stations if s.name == "禾丰水文站")
    assert (hefeng.prefecture, hefeng.county, hefeng.river) == ("贵阳市", "开阳县", "鱼梁河")
    assert hefeng.warning_level is not None
    assert hefeng.warning_level > 906.63  # its recent level was normal
    for station in registry.stations:
        assert {p.role for p in station.persons} == set(STATION_ROLES)


def test_every_sample_county_and_prefecture_has_a_flood_contact() -> None:
    registry = load_registry(REPO / "stations", "Asia/Shanghai")
    assert registry_warnings(REPO / "stations", registry) == []
    maichong = next(s for s in registry.stations if s.name == "麦冲水库")
    [county] = registry.flood_contacts(maichong, Role.COUNTY)
    [prefecture] = registry.flood_contacts(maichong, Role.PREFECTURE)
    assert (county.role, prefecture.role) == (Role.COUNTY, Role.PREFECTURE)
    assert county.phone.startswith("+86")


CONTACTS_HEADER = "# invented\nprefecture,county,role,name,phone\n"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("贵阳市,开阳县,mayor,甲,13800000001", "4: contact: unknown role 'mayor'"),
        ("贵阳市,,county,甲,13800000001", "4: contact: a county contact needs its county"),
        ("贵阳市,开阳县,county,甲,12345", "4: contact: phone '12345' is not a valid phone"),
        ("贵阳市,开阳县,prefecture,甲,13800000001", "4: contact: a prefecture contact has no"),
    ],
)
def test_flood_contact_problems_name_file_and_line(
    tmp_path: Path, rows: str, expected: str
) -> None:
    (tmp_path / "a.csv").write_text(HEADER + "\n" + GOOD_RIVER + "\n", encoding="utf-8")
    contacts = tmp_path / "flood_contacts.csv"
    contacts.write_text(CONTACTS_HEADER + "\n" + rows + "\n", encoding="utf-8")
    _, problems = check_registry(tmp_path, "Asia/Shanghai")
    assert any(str(p).removeprefix(f"{contacts}:").startswith(expected) for p in problems), problems


def test_a_county_without_a_contact_is_a_warning_not_a_problem(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(HEADER + "\n" + GOOD_RIVER + "\n", encoding="utf-8")
    (tmp_path / "flood_contacts.csv").write_text(
        CONTACTS_HEADER + "贵阳市,,prefecture,甲,13800000001\n", encoding="utf-8"
    )
    registry = load_registry(tmp_path, "Asia/Shanghai")  # the contacts file is no station file
    assert len(registry) == 1
    [warning] = registry_warnings(tmp_path, registry)
    assert warning.warning
    assert "no 防汛负责人 for 1 place(s) with stations: 贵阳市开阳县" in str(warning)
    assert registry.flood_contacts(registry.stations[0], Role.COUNTY) == ()


def test_a_generated_reference_size_registry_round_trips(tmp_path: Path) -> None:
    stations = generate_stations(6951, seed=4)
    assert stations == generate_stations(6951, seed=4)
    assert len({s.code for s in stations}) == 6951
    write_stations_csv(stations, tmp_path / "big.csv")
    assert load_registry(tmp_path / "big.csv", "Asia/Shanghai").stations == tuple(stations)


def test_stations_generate_command_writes_a_loadable_file(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.csv"
    assert (
        main(["stations", "generate", "--count", "120", "--seed", "9", "--output", str(out)]) == 0
    )
    assert len(load_registry(out, "Asia/Shanghai")) == 120


def test_hydro_check_shows_a_missing_contact_as_a_warning_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stations").mkdir()
    (tmp_path / "stations" / "a.csv").write_text(HEADER + "\n" + GOOD_RIVER + "\n", "utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"registry: {{stations: {tmp_path / 'stations'}}}\n"
        f"alerting: {{rules: {REPO / 'alert_rules'}}}\n",
        encoding="utf-8",
    )
    assert main(["--config", str(config), "check"]) == 0
    captured = capsys.readouterr()
    assert "warning: no 防汛负责人 for 2 place(s) with stations: 贵阳市开阳县" in captured.err
    assert "valid (1 warning(s))" in captured.out
