"""The SL 651-2014 element table: identifier, ASCII code and data definition of each element.

An element in a HEX/BCD body is ``identifier, definition byte, value``: the definition byte's
high five bits are the value's length in bytes and its low three bits the number of decimals, so
an element hydro does not know can still be skipped by its length. The table below is what the
standard defines for the elements hydro stores and for the ones an RTU commonly sends besides,
used to encode (the simulator, tests) and to name elements in the ASCII encoding, where values
are text after a code such as ``Z`` or ``PT``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Field(StrEnum):
    """What hydro makes of an element; ``None`` in the table: skipped and counted."""

    WATER_LEVEL = "water_level"
    FLOW = "flow"
    CURRENT_RAIN = "current_rain"  # 20: rain of the current period (since the previous report)
    HOUR_RAIN = "hour_rain"  # 1A: rain of the last hour
    ACCUMULATED_RAIN = "accumulated_rain"  # 26: a running counter, differenced per station
    BATTERY_V = "battery_v"
    RAIN_SERIES = "rain_series"  # F4: twelve 5-minute amounts ending at the observation time
    LEVEL_SERIES = "level_series"  # F5: twelve 5-minute relative levels ending there


@dataclass(frozen=True, slots=True)
class Element:
    identifier: int
    code: str  # the ASCII encoding's identifier
    name: str
    length: int  # bytes of the BCD value (HEX series: bytes of the whole series)
    decimals: int
    field: Field | None = None

    @property
    def definition(self) -> int:
        return (self.length << 3) | self.decimals


OBSERVATION_TIME = 0xF0  # F0: the observation time that the elements after it belong to
STATION_ADDRESS = 0xF1  # F1: the station address and category, at the start of a report
SERIES_STEPS = 12  # F4/F5 carry one value per 5 minutes of the hour
RAIN_SERIES_INVALID = 0xFF
LEVEL_SERIES_INVALID = 0xFFFF

ELEMENTS: tuple[Element, ...] = (
    Element(0x02, "TA", "瞬时气温", 3, 1),
    Element(0x03, "TW", "瞬时水温", 3, 1),
    Element(0x1A, "P1", "1小时时段降水量", 3, 1, Field.HOUR_RAIN),
    Element(0x1F, "PD", "日降水量", 3, 1),
    Element(0x20, "PJ", "当前降水量", 3, 1, Field.CURRENT_RAIN),
    Element(0x22, "P5", "5分钟时段降水量", 3, 1),
    Element(0x26, "PT", "降水量累计值", 3, 1, Field.ACCUMULATED_RAIN),
    Element(0x27, "Q", "瞬时流量", 5, 3, Field.FLOW),
    Element(0x38, "VT", "电源电压", 2, 2, Field.BATTERY_V),
    Element(0x39, "Z", "瞬时河道水位", 4, 3, Field.WATER_LEVEL),
    Element(0x3A, "ZB", "库(闸、站)下水位", 4, 3),
    Element(0x3B, "ZU", "库(闸、站)上水位", 4, 3, Field.WATER_LEVEL),
    Element(0x45, "ZT", "遥测站状态及报警信息", 4, 0),
    Element(0xF4, "DRP", "1小时内每5分钟时段雨量", 12, 0, Field.RAIN_SERIES),
    Element(0xF5, "DRZ1", "1小时内5分钟间隔相对水位1", 24, 0, Field.LEVEL_SERIES),
)

BY_IDENTIFIER: Mapping[int, Element] = MappingProxyType({e.identifier: e for e in ELEMENTS})
BY_CODE: Mapping[str, Element] = MappingProxyType({e.code: e for e in ELEMENTS})
SERIES = frozenset({0xF4, 0xF5})  # values are HEX (binary), not BCD
