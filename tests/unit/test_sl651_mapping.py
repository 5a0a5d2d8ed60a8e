"""Pure pieces around the SL 651 receiver: station addresses and the rejects topic in ingest."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from hydro.errors import RegistryError
from hydro.gateway.sl651.server import address_map, default_address
from hydro.ingest.rejects import judge_gateway_reject
from hydro.models import RejectionCode
from hydro.stations import check_registry
from tests.support import station
from tests.unit.test_stations import GOOD_RIVER, HEADER

RECEIVED = dt.datetime(2026, 5, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("code", "address"),
    [("61901002", "0061901002"), ("1234567890", "1234567890"), ("ABC", None), ("123", None)],
)
def test_the_default_address_is_00_and_the_8_digit_code(code: str, address: str | None) -> None:
    assert default_address(code) == address


def test_a_registry_address_wins_and_a_shared_one_stops_the_receiver() -> None:
    mapped = dataclasses.replace(station("A-7"), sl651_address="4400000007")
    assert address_map([station("61901002"), mapped]) == {
        "0061901002": "61901002",
        "4400000007": "A-7",
    }
    clash = dataclasses.replace(station("B-8"), sl651_address="0061901002")
    with pytest.raises(RegistryError, match="share SL 651 address 0061901002"):
        address_map([station("61901002"), clash])


def test_the_registry_reads_and_checks_the_address_column(tmp_path: Path) -> None:
    path = tmp_path / "stations.csv"
    rows = [GOOD_RIVER + ",4400000007", GOOD_RIVER.replace("60000001", "60000002") + ",12ab"]
    path.write_text("\n".join([HEADER + ",遥测站地址", *rows]) + "\n", encoding="utf-8")
    registry, problems = check_registry(path, "Asia/Shanghai")
    assert [s.sl651_address for s in registry.stations] == ["4400000007"]
    assert [p.message for p in problems] == [
        "station 60000002: sl651_address '12ab' is not ten digits"
    ]


def test_a_gateway_reject_is_quarantined_with_its_reason_and_frame() -> None:
    payload = {"reason": "sl651 bad_crc: CRC 0000", "raw_hex": "7E7E01", "peer": "10.0.0.9:4001"}
    verdict = judge_gateway_reject(
        "hydro/sl651/rejects", json.dumps(payload).encode(), RECEIVED, "hydro"
    )
    assert verdict is not None
    (rejection,) = verdict.rejections
    assert rejection.code is RejectionCode.GATEWAY_REFUSED
    assert rejection.reason == "sl651 bad_crc: CRC 0000 (from 10.0.0.9:4001)"
    assert (rejection.payload, rejection.gateway, rejection.station) == (b"7E7E01", "sl651", None)
    assert not verdict.readings


def test_an_unreadable_reject_report_is_kept_as_it_came() -> None:
    verdict = judge_gateway_reject("hydro/sl651/rejects", b"\xff{", RECEIVED, "hydro")
    assert verdict is not None
    assert verdict.rejections[0].payload == b"\xff{"
    assert "unreadable" in verdict.rejections[0].reason


@pytest.mark.parametrize(
    "topic", ["hydro/sl651/readings", "other/sl651/rejects", "hydro//rejects", "hydro/rejects"]
)
def test_other_topics_are_not_rejects(topic: str) -> None:
    assert judge_gateway_reject(topic, b"{}", RECEIVED, "hydro") is None


def test_hydro_check_names_stations_that_share_an_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hydro.cli import main

    rows = [GOOD_RIVER + ",", GOOD_RIVER.replace("60000001", "60000002") + ",0060000001"]
    (tmp_path / "stations.csv").write_text(
        "\n".join([HEADER + ",遥测站地址", *rows]) + "\n", encoding="utf-8"
    )
    config = tmp_path / "config.yaml"
    config.write_text("registry:\n  stations: stations.csv\n", encoding="utf-8")
    assert main(["--config", str(config), "check"]) == 1
    assert "stations 60000001 and 60000002 share SL 651 address 0060000001" in (
        capsys.readouterr().err
    )
