"""The figures of a hydrological day, and the daily reports as they were built.

The day's figures come from the continuous aggregates ``readings_daily`` and ``readings_hourly``
where TimescaleDB keeps them. On plain PostgreSQL the daily columns are computed from the readings
of the day's time range (the plain views would group the whole table before filtering), and the
hourly rain is read from ``rainfall_hourly``, which triggers keep as readings are written. Both
give the same numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from hydro.models import Channel
from hydro.store.db import Connection, translate_errors
from hydro.store.ladder import LadderOpened, ladders_opened
from hydro.store.outbox import counts_by_status
from hydro.store.schema import StorageMode, storage_mode


@dataclass(frozen=True, slots=True)
class StationDay:
    """One station's readings within the day; rainfall None without a rain report."""

    station: str
    readings: int
    rainfall: float | None
    rainfall_reports: int
    level_min: float | None
    level_max: float | None


@dataclass(frozen=True, slots=True)
class DayAlert:
    id: int
    station: str
    family: str
    rule_id: str
    severity: str
    state: str
    opened_at: dt.datetime
    peak_value: float | None


@dataclass(frozen=True)
class HourlyRain:
    """Clock-hour rainfall sums, a row per station that reported rain: column ``i`` is the hour
    that began ``i`` hours after ``since``. ``reported`` tells an hour without a rain report
    from a dry one (both hold 0 mm)."""

    since: dt.datetime
    stations: tuple[str, ...]
    mm: npt.NDArray[np.float64]
    reported: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class LevelAt:
    """A station's latest level at or before an instant, and when it was read."""

    time: dt.datetime
    level: float


# How far before an 08:00 a reservoir's latest level may lie and still give its storage then.
STORAGE_LEVEL_MAX_AGE = dt.timedelta(days=1)


@dataclass(frozen=True)
class DayFigures:
    """Everything a daily report is built from, for the day [start, end)."""

    start: dt.datetime
    end: dt.datetime
    stations: list[StationDay]
    level_at_end: dict[str, float]  # the latest level in the hour up to the closing 08:00
    rain: HourlyRain  # from as far before the day as the longest rainfall window reaches
    alerts: list[DayAlert]  # opened within the day, or still open when the report was built
    outbox: dict[Channel, dict[str, int]]  # SMS and calls queued within the day, by status
    # The reservoirs asked for: latest level at or before the opening and the closing 08:00,
    # within STORAGE_LEVEL_MAX_AGE.
    levels_at_start: dict[str, LevelAt] = field(default_factory=dict)
    levels_at_end: dict[str, LevelAt] = field(default_factory=dict)
    ladders: list[LadderOpened] = field(default_factory=list)  # 叫应 of the alerts opened


_DAILY_TIMESCALE = """
SELECT station, readings, rainfall_sum AS rainfall, rainfall_reports,
       water_level_min AS level_min, water_level_max AS level_max
FROM readings_daily WHERE day_start = %(start)s
"""
_DAILY_PLAIN = """
SELECT station, count(*) AS readings, sum(rainfall) AS rainfall,
       count(rainfall) AS rainfall_reports, min(water_level) AS level_min,
       max(water_level) AS level_max
FROM readings WHERE time >= %(start)s AND time < %(end)s GROUP BY station
"""
_HOURLY_TIMESCALE = """
SELECT station, bucket, rainfall_sum FROM readings_hourly
WHERE bucket >= %(since)s AND bucket < %(end)s AND rainfall_sum IS NOT NULL
"""
# Kept by triggers on readings as they are written (migration 0015); a whole UTC hour, like
# the continuous aggregate's bucket.
_HOURLY_PLAIN = """
SELECT station, hour AS bucket, mm::float8 AS rainfall_sum FROM rainfall_hourly
WHERE hour >= %(since)s AND hour < %(end)s AND reports > 0
"""
# For this transaction only, on plain PostgreSQL: gathering each station's hours into arrays
# takes 12.5 MB for 3,876 rain stations over 35 hours, which spilled to disk with the default
# 4 MB; and a plan over a day of readings can pass the JIT threshold, where compiling saves
# nothing on one scan.
_PLAIN_SETTINGS = ("SET LOCAL work_mem = '32MB'", "SET LOCAL jit = off")
# A row per station: the offset of each hour with a rain report from %(since)s, and its sum.
_RAIN_HOURS = """
WITH hourly AS ({hourly})
SELECT station, array_agg((extract(epoch FROM bucket - %(since)s) / 3600)::int4),
       array_agg(rainfall_sum) FROM hourly GROUP BY station
"""


_LEVEL_AT_END = """
SELECT DISTINCT ON (station) station, water_level FROM readings
WHERE time > %(end)s - interval '1 hour' AND time <= %(end)s AND water_level IS NOT NULL
ORDER BY station, time DESC
"""
# A probe of the primary key (station, time) per reservoir and 08:00, newest first: a few
# thousand index lookups instead of a scan of the day's readings, in one round trip for both.
_LEVELS_AT = """
SELECT a.at, c.station, r.time, r.water_level AS level
FROM unnest(%(codes)s::text[]) AS c(station)
CROSS JOIN unnest(%(ats)s::timestamptz[]) AS a(at)
CROSS JOIN LATERAL (
    SELECT time, water_level FROM readings
    WHERE station = c.station AND time <= a.at AND time > a.at - %(max_age)s
      AND water_level IS NOT NULL
    ORDER BY time DESC LIMIT 1
) AS r
"""
_ALERTS = """
SELECT id, station, family, rule_id, severity, state, opened_at, peak_value FROM alerts
WHERE (opened_at >= %(start)s AND opened_at < %(end)s) OR state = 'open' ORDER BY opened_at, id
"""


async def day_figures(
    conn: Connection,
    start: dt.datetime,
    end: dt.datetime,
    hours_before: int,
    reservoirs: Sequence[str] = (),
) -> DayFigures:
    """The figures of the day [start, end), with the hourly rain from ``hours_before`` the day
    (from the whole hour, in UTC, at or before it), and the levels of ``reservoirs`` at both
    08:00s. Run inside a transaction: on plain PostgreSQL it sets ``_PLAIN_SETTINGS`` for the
    rest of it."""
    params: dict[str, Any] = {"start": start, "end": end}
    since = start.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours_before)
    with translate_errors("reading the figures of a hydrological day"):
        timescale = await storage_mode(conn) is StorageMode.TIMESCALEDB
        if not timescale:
            for setting in _PLAIN_SETTINGS:
                await conn.execute(setting)
        cur = conn.cursor(row_factory=class_row(StationDay))
        await cur.execute(_DAILY_TIMESCALE if timescale else _DAILY_PLAIN, params)
        stations = await cur.fetchall()
        query = sql.SQL(_RAIN_HOURS).format(
            hourly=sql.SQL(_HOURLY_TIMESCALE if timescale else _HOURLY_PLAIN)
        )
        rain_cur = conn.cursor(binary=True)
        await rain_cur.execute(query, {**params, "since": since})
        rain = _hourly_rain(since, end, await rain_cur.fetchall())
        level_cur = conn.cursor(row_factory=dict_row)
        await level_cur.execute(_LEVEL_AT_END, params)
        level_at_end = {row["station"]: row["water_level"] for row in await level_cur.fetchall()}
        alerts_cur = conn.cursor(row_factory=class_row(DayAlert))
        await alerts_cur.execute(_ALERTS, params)
        alerts = await alerts_cur.fetchall()
        levels_at_start, levels_at_end = await _levels_at(conn, reservoirs, start, end)
    outbox = await counts_by_status(conn, since=start, until=end)
    ladders = await ladders_opened(conn, start, end)
    return DayFigures(
        start,
        end,
        stations,
        level_at_end,
        rain,
        alerts,
        outbox,
        levels_at_start,
        levels_at_end,
        ladders,
    )


async def _levels_at(
    conn: Connection, codes: Sequence[str], start: dt.datetime, end: dt.datetime
) -> tuple[dict[str, LevelAt], dict[str, LevelAt]]:
    """The levels of ``codes`` at ``start`` and at ``end``."""
    levels: dict[dt.datetime, dict[str, LevelAt]] = {start: {}, end: {}}
    if codes:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            _LEVELS_AT,
            {"codes": list(codes), "ats": [start, end], "max_age": STORAGE_LEVEL_MAX_AGE},
        )
        for row in await cur.fetchall():
            levels[row["at"]][row["station"]] = LevelAt(row["time"], row["level"])
    return levels[start], levels[end]


def _hourly_rain(
    since: dt.datetime, end: dt.datetime, rows: Sequence[tuple[Any, ...]]
) -> HourlyRain:
    columns = -(-(end - since) // dt.timedelta(hours=1))
    mm = np.zeros((len(rows), columns))
    reported = np.zeros((len(rows), columns), dtype=np.bool_)
    for row, (_, hours, sums) in enumerate(rows):
        mm[row, hours] = sums
        reported[row, hours] = True
    return HourlyRain(since, tuple(str(r[0]) for r in rows), mm, reported)


async def stored_report(conn: Connection, day: dt.date) -> dict[str, Any] | None:
    with translate_errors(f"reading the daily report of {day}"):
        cur = await conn.execute("SELECT report FROM daily_reports WHERE day = %s", (day,))
        row = await cur.fetchone()
    if row is None:
        return None
    report = row[0]
    return report if isinstance(report, dict) else dict(json.loads(str(report)))


async def store_report(conn: Connection, day: dt.date, report: dict[str, Any]) -> bool:
    """Stores the day's report unless one is stored already; True when this one was."""
    with translate_errors(f"storing the daily report of {day}"):
        cur = await conn.execute(
            "INSERT INTO daily_reports (day, report) VALUES (%s, %s)"
            " ON CONFLICT (day) DO NOTHING RETURNING day",
            (day, Jsonb(report)),
        )
        return await cur.fetchone() is not None
