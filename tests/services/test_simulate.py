"""The simulator: weather that crosses levels only when asked, payloads that follow the gateway
contract, and a round trip through a real Mosquitto."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence

import aiomqtt
import numpy as np
import pytest

from hydro.config import IngestConfig, MqttConfig
from hydro.ingest.validate import ValidationRules, judge_message
from hydro.local import LocalMosquitto
from hydro.models import FloodSeason, Station, StationKind
from hydro.simulate import (
    SIMULATED_GATEWAY_SIZE,
    PayloadEncoder,
    Step,
    StormModel,
    gateways,
    outage_at_peak,
    overtop_in_storm,
    publish_storm,
)

START = dt.datetime(2026, 6, 20, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # in season
DAY = 288  # 5-minute reports
PREFECTURES = {"贵阳市": (26.65, 106.63), "遵义市": (27.72, 106.93), "黔东南州": (26.58, 107.98)}
KINDS = [StationKind.RIVER] * 10 + [StationKind.RESERVOIR] * 4 + [StationKind.RAIN] * 16


def make_station(
    code: str,
    kind: StationKind,
    *,
    prefecture: str = "黔东南州",
    lat: float = 26.6,
    lon: float = 108.0,
    gateway: str | None = "gw-1",
    timezone: str = "Asia/Shanghai",
    level: float = 800.0,
) -> Station:
    river, reservoir = kind is StationKind.RIVER, kind is StationKind.RESERVOIR
    return Station(
        code=code,
        name=f"测站{code}",
        kind=kind,
        prefecture=prefecture,
        county="某县",
        river="清水江",
        lat=lat,
        lon=lon,
        gateway=gateway,
        timezone=timezone,
        warning_level=level if river else None,
        guaranteed_level=level + 2.0 if river else None,
        flood_limit_level=level - 1.0 if reservoir else None,
        flood_season=FloodSeason((5, 1), (9, 30)) if reservoir else None,
        normal_level=level if reservoir else None,
        design_flood_level=level + 2.5 if reservoir else None,
    )


def province(seed: int = 3) -> list[Station]:
    """Thirty stations around each of three prefecture seats, one gateway per prefecture."""
    rng = np.random.default_rng(seed)
    stations = []
    for p, (name, (lat, lon)) in enumerate(PREFECTURES.items(), start=1):
        for i, kind in enumerate(KINDS):
            stations.append(
                make_station(
                    f"6{p}{i:06d}",
                    kind,
                    prefecture=name,
                    lat=lat + rng.normal(0, 0.25),
                    lon=lon + rng.normal(0, 0.25),
                    gateway=f"gw-{p}-001",
                    level=float(rng.uniform(600, 1200)),
                )
            )
    return stations


STATIONS = province()
RIVER, RESERVOIR, RAIN = (np.array([s.kind is kind for s in STATIONS]) for kind in StationKind)


def levels(name: str) -> np.ndarray:
    return np.array([getattr(s, name) for s in STATIONS], dtype=float)  # None -> NaN


def run(storm: float, *, steps: int = DAY, seed: int = 5) -> list[Step]:
    model = StormModel(STATIONS, start=START, steps=steps, storm=storm, seed=seed)
    return [model.step() for _ in range(steps)]


def peaks(steps: Sequence[Step]) -> np.ndarray:
    return np.asarray(np.array([s.water_level for s in steps]).max(axis=0))  # NaN: no level


def test_same_seed_same_weather_another_seed_another() -> None:
    first, second, other = run(0.7, steps=30), run(0.7, steps=30), run(0.7, steps=30, seed=6)
    for a, b in zip(first, second, strict=True):
        for name in ("water_level", "flow", "rainfall", "battery_v"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(first[-1].water_level, other[-1].water_level, equal_nan=True)


def test_each_kind_reports_its_variables_rounded_as_gauges_send_them() -> None:
    steps = run(1.0, steps=100)
    for index, step in enumerate(steps):
        assert step.time == START + index * dt.timedelta(minutes=5)
        assert step.time.utcoffset() == dt.timedelta(0)
        for name, kinds, decimals in (
            ("water_level", RIVER | RESERVOIR, 2),
            ("flow", RIVER, 1),
            ("rainfall", RAIN, 1),
            ("battery_v", RIVER | RESERVOIR | RAIN, 2),
        ):
            values = getattr(step, name)
            assert values.shape == (len(STATIONS),)
            assert np.isfinite(values[kinds]).all(), name
            assert np.isnan(values[~kinds]).all(), name
            np.testing.assert_array_equal(values[kinds], np.round(values[kinds], decimals))
        assert (step.rainfall[RAIN] >= 0).all()
        assert (step.flow[RIVER] > 0).all()
        assert ((step.battery_v > 11.5) & (step.battery_v < 14.5)).all()


@pytest.mark.parametrize("seed", range(5))
def test_calm_weather_crosses_no_level_even_in_three_days(seed: int) -> None:
    steps = run(0.0, steps=3 * DAY, seed=seed)
    peak = peaks(steps)
    assert (peak[RIVER] < levels("warning_level")[RIVER]).all()
    # In the flood season a reservoir is kept under its 汛限水位, below the 正常蓄水位.
    assert (peak[RESERVOIR] < levels("flood_limit_level")[RESERVOIR]).all()
    assert (peak[RESERVOIR] < levels("normal_level")[RESERVOIR]).all()
    assert np.nansum([s.rainfall for s in steps]) > 0  # calm, not dry: showers come and go


@pytest.mark.parametrize("seed", range(5))
def test_a_storm_crosses_warning_levels_then_recedes(seed: int) -> None:
    steps = run(1.0, steps=2 * DAY, seed=seed)
    peak = peaks(steps)
    over = RIVER & (peak >= levels("warning_level"))
    assert over.any()
    assert over.sum() < RIVER.sum()  # a storm over part of the province, not a flood everywhere
    assert (steps[-1].water_level[over] < peak[over] - 0.5).all()
    rain = np.array([s.rainfall[RAIN] for s in steps])
    assert rain.max() >= 2.0  # mm in 5 minutes: heavy rain (24 mm/h) somewhere


def test_a_stronger_storm_raises_more_rivers_higher() -> None:
    crossed = []
    for storm in (0.3, 0.6, 1.0, 1.5):
        peak = peaks(run(storm))
        crossed.append(np.sum(peak[RIVER] >= levels("warning_level")[RIVER]))
    assert crossed == sorted(crossed)
    assert crossed[-1] > crossed[0]


def test_the_gauge_that_rises_furthest_goes_silent_at_its_peak_and_comes_back() -> None:
    outage = outage_at_peak(STATIONS, start=START, steps=DAY, storm=1.0, seed=5)
    assert outage is not None
    station = STATIONS[outage.index]
    reference = station.warning_level if station.kind is StationKind.RIVER else station.normal_level
    assert reference is not None
    steps = run(1.0)  # the same weather, without the outage
    level = np.array([s.water_level[outage.index] for s in steps])
    assert outage.first == int(level.argmax())  # silent from its peak...
    assert level.max() > reference  # ...which crossed its level
    assert outage.last - outage.first == 24  # two hours of 5-minute reports
    model = StormModel(STATIONS, start=START, steps=DAY, storm=1.0, seed=5, outage=outage)
    encoder = PayloadEncoder(STATIONS, topic_prefix="hydro", batch=100)
    for index in range(DAY):
        sent = b"".join(m.payload for m in encoder.encode(model.step()))
        silent = outage.first <= index < outage.last
        assert (f'"{station.code}"'.encode() in sent) is not silent, index
    assert outage_at_peak(STATIONS, start=START, steps=DAY, storm=0.0, seed=5) is None  # calm


def test_a_jammed_reservoir_passes_its_design_flood_level_and_the_others_do_not_change() -> None:
    """hydro demo's red warning: the reservoir filling furthest, its spillway gate jammed."""
    free = peaks(run(1.0))
    assert not np.any(free[RESERVOIR] >= levels("design_flood_level")[RESERVOIR])  # none alone
    overtop = overtop_in_storm(STATIONS, start=START, steps=DAY, storm=1.0, seed=5)
    assert overtop is not None
    assert STATIONS[overtop.index].kind is StationKind.RESERVOIR
    model = StormModel(STATIONS, start=START, steps=DAY, storm=1.0, seed=5, overtop=overtop)
    jammed = peaks([model.step() for _ in range(DAY)])
    design = STATIONS[overtop.index].design_flood_level
    assert design is not None
    assert design < jammed[overtop.index] < design + 0.5
    others = np.arange(len(STATIONS)) != overtop.index
    np.testing.assert_array_equal(jammed[others], free[others])  # the same weather elsewhere


def test_the_model_refuses_what_it_cannot_simulate() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        StormModel(STATIONS, start=START.replace(tzinfo=None), steps=1, storm=0)
    with pytest.raises(ValueError, match="storm"):
        StormModel(STATIONS, start=START, steps=1, storm=-0.1)
    with pytest.raises(ValueError, match="at least one station"):
        StormModel([], start=START, steps=1, storm=0)


def test_stations_keep_their_gateway_and_the_others_share_simulated_ones() -> None:
    own = make_station("1", StationKind.RIVER, gateway="gw-7-001")
    loose = [make_station(str(i), StationKind.RAIN, gateway=None) for i in range(2, 123)]
    names = gateways([loose[0], own, *loose[1:]])
    assert names[1] == "gw-7-001"
    shared = names[:1] + names[2:]
    assert sorted(set(shared)) == ["sim-0001", "sim-0002", "sim-0003"]
    assert shared.count("sim-0001") == SIMULATED_GATEWAY_SIZE
    assert shared.count("sim-0003") == 121 - 2 * SIMULATED_GATEWAY_SIZE


def contract_check(topic: str, payload: bytes, by_code: dict[str, Station], step: Step) -> None:
    """One message as the gateway contract describes it, reading by reading."""
    fields = {
        StationKind.RIVER: {"water_level", "flow", "battery_v"},
        StationKind.RESERVOIR: {"water_level", "battery_v"},
        StationKind.RAIN: {"rainfall", "battery_v"},
    }
    _, gateway, suffix = topic.split("/")
    assert suffix == "readings"
    document = json.loads(payload.decode("utf-8"))
    assert list(document) == ["readings"]
    for reading in document["readings"]:
        station = by_code[reading["station"]]
        assert station.gateway in (gateway, None)
        assert set(reading) == {"station", "time"} | fields[station.kind]
        time = dt.datetime.fromisoformat(reading["time"])
        assert time == step.time
        assert time.utcoffset() == step.time.astimezone(station.tz).utcoffset()
        for name in fields[station.kind]:
            assert isinstance(reading[name], float)


def test_payloads_follow_the_gateway_contract_and_hydro_accepts_them() -> None:
    stations = [
        *STATIONS,
        make_station("90000001", StationKind.RIVER, gateway=None, timezone="Asia/Urumqi"),
        make_station("90000002", StationKind.RAIN, gateway=None),
    ]
    by_code = {s.code: s for s in stations}
    step = StormModel(stations, start=START, steps=10, storm=1.0).step()
    messages = PayloadEncoder(stations, topic_prefix="hydro", batch=7).encode(step)
    rules = ValidationRules.from_config(IngestConfig(), "hydro")
    seen: list[str] = []
    for topic, payload, count in messages:
        contract_check(topic, payload, by_code, step)
        readings = json.loads(payload)["readings"]
        assert 1 <= len(readings) == count <= 7
        verdict = judge_message(topic, payload, step.time, stations=by_code, rules=rules)
        assert verdict.rejections == []
        assert len(verdict.readings) == count
        seen.extend(r["station"] for r in readings)
    assert sorted(seen) == sorted(by_code)  # every station once per step
    urumqi = next(m for m in messages if b"90000001" in m.payload)
    assert urumqi.topic == "hydro/sim-0001/readings"
    assert b'"time":"2026-06-20T06:00:00+06:00"' in urumqi.payload


def test_a_message_carries_one_gateways_readings_up_to_the_batch() -> None:
    encoder = PayloadEncoder(STATIONS, topic_prefix="t", batch=100)
    messages = encoder.encode(StormModel(STATIONS, start=START, steps=1, storm=0).step())
    # 30 stations per gateway fit in one message each.
    assert [m.topic for m in messages] == [f"t/gw-{p}-001/readings" for p in (1, 2, 3)]
    assert [m.readings for m in messages] == [30, 30, 30]


def test_a_round_trip_through_mosquitto_delivers_every_reading(
    local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    config = MqttConfig(port=local_mosquitto.port, topic_prefix=mqtt_topic_prefix)
    by_code = {s.code: s for s in STATIONS}
    steps = 3
    model = StormModel(STATIONS, start=START, steps=steps, storm=1.0, seed=2)
    expected = StormModel(STATIONS, start=START, steps=steps, storm=1.0, seed=2)
    sent = {(step := expected.step()).time: step for _ in range(steps)}

    async def scenario() -> tuple[int, list[tuple[str, bytes]]]:
        received: list[tuple[str, bytes]] = []
        async with aiomqtt.Client("127.0.0.1", local_mosquitto.port) as subscriber:
            await subscriber.subscribe(config.subscription, qos=1)
            progress = await publish_storm(config, STATIONS, model, steps=steps, speed=0, batch=12)
            readings = 0
            async with asyncio.timeout(10):
                async for message in subscriber.messages:
                    assert isinstance(message.payload, bytes)
                    assert message.qos == 1
                    received.append((message.topic.value, message.payload))
                    readings += len(json.loads(message.payload)["readings"])
                    if readings == progress.readings:
                        break
        return progress.readings, received

    published, received = asyncio.run(scenario())
    assert published == steps * len(STATIONS)
    arrived: dict[tuple[str, str], dict[str, object]] = {}
    for topic, payload in received:
        time = dt.datetime.fromisoformat(json.loads(payload)["readings"][0]["time"])
        contract_check(topic, payload, by_code, sent[time])
        for reading in json.loads(payload)["readings"]:
            arrived[reading["station"], reading["time"]] = reading
    assert len(arrived) == published
    index = {s.code: i for i, s in enumerate(STATIONS)}
    for (code, when), reading in arrived.items():
        step = sent[dt.datetime.fromisoformat(when)]
        if "water_level" in reading:
            assert reading["water_level"] == step.water_level[index[code]]
