"""Simulated SL 651 RTUs: what real stations send, to drive the receiver in the demo, the tests
and the benchmark. Each RTU keeps one TCP connection, sends a report and waits for its answer,
as a real RTU does before it clears its buffer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from collections.abc import Sequence

from hydro.gateway.sl651.frame import Frame, Refused, Splitter, Value, encode_report
from hydro.models import Station, StationKind

TIMED = 0x32
HOURLY = 0x34
_CATEGORY = {StationKind.RIVER: "H", StationKind.RESERVOIR: "K", StationKind.RAIN: "P"}
_LEVEL = {StationKind.RIVER: 0x39, StationKind.RESERVOIR: 0x3B}


def timed_report(
    station: Station,
    address: str,
    *,
    serial: int,
    time: dt.datetime,
    water_level: float,
    flow: float,
    rainfall: float,
    battery_v: float,
    password: str = "0000",
) -> bytes:
    """A timed report (32) of one observation; NaN is "not measured" and left out. Rainfall
    goes as 20 (the current period's rain, since the previous report)."""
    values: list[tuple[int, float]] = []
    level_element = _LEVEL.get(station.kind)
    if level_element is not None and not math.isnan(water_level):
        values.append((level_element, water_level))
    for identifier, value in ((0x27, flow), (0x20, rainfall), (0x38, battery_v)):
        if not math.isnan(value):
            values.append((identifier, value))
    return _report(station, address, TIMED, serial, time, values, password)


def hourly_report(
    station: Station,
    address: str,
    *,
    serial: int,
    time: dt.datetime,
    levels: Sequence[float],
    rains: Sequence[float],
    battery_v: float,
    password: str = "0000",
) -> bytes:
    """An hourly report (34): twelve 5-minute rain amounts (F4) and levels (F5, relative to
    the hour's lowest, with the instantaneous level at ``time``), the last one at ``time``."""
    values: list[tuple[int, float | list[float | None]]] = [(0xF4, list(rains))]
    level_element = _LEVEL.get(station.kind)
    if level_element is not None:
        base = min(levels)
        values += [(0xF5, [round(v - base, 2) for v in levels]), (level_element, levels[-1])]
    values.append((0x38, battery_v))
    return _report(station, address, HOURLY, serial, time, values, password)


def _report(  # noqa: PLR0917 - the fields of one report, in the order a frame holds them
    station: Station,
    address: str,
    function: int,
    serial: int,
    time: dt.datetime,
    values: Sequence[tuple[int, Value]],
    password: str,
) -> bytes:
    return encode_report(
        address=address,
        function=function,
        serial=serial % 0x10000,
        sent_at=time,
        observations=[(time, values)],
        category=_CATEGORY[station.kind],
        password=password,
    )


class Rtu:
    """One RTU's connection to the centre."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._splitter = Splitter(down=True)
        self._answers: list[Frame | Refused] = []

    @classmethod
    async def connect(cls, host: str, port: int) -> Rtu:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, frame: bytes, *, answer: bool = True) -> Frame | None:
        """Sends ``frame`` and, unless told not to, waits for the centre's answer."""
        self._writer.write(frame)
        await self._writer.drain()
        return await self.answer() if answer else None

    async def answer(self) -> Frame:
        while not self._answers:
            data = await self._reader.read(4096)
            if not data:
                raise ConnectionError("the centre closed the connection without an answer")
            self._answers += self._splitter.feed(data)
        item = self._answers.pop(0)
        if isinstance(item, Refused):
            raise ConnectionError(f"unreadable answer from the centre: {item.reason}")
        return item

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
