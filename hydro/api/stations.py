"""``/api/v1/stations``: the registry with each station's status, latest reading and series."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response
from pydantic import TypeAdapter

from hydro.api.auth import Context, Operator, Viewer
from hydro.api.context import ApiContext
from hydro.api.schemas import (
    ManualReadingOut,
    Person,
    ReadingIn,
    Series,
    StationDetail,
    StationOut,
    StationState,
    StationStatus,
)
from hydro.api.views import (
    alert_out,
    aware,
    json_response,
    phone_for,
    revalidated_json_response,
    station_fields,
    station_statuses,
    storage_fields,
)
from hydro.errors import ReadingRefused
from hydro.models import StationKind
from hydro.store.alerts import open_alerts
from hydro.store.manual import ManualEntry, manual_readings
from hydro.store.series import Every, station_series
from hydro.store.stations_view import latest_readings, latest_times

router = APIRouter(prefix="/api/v1/stations", tags=["stations"])
# A station's series: columns of numbers, compressed fast (hydro.api.middleware.Compress).
SERIES_PATHS = re.compile(r"/api/v1/stations/[^/]+/readings")
_STATION_LIST = TypeAdapter(list[StationOut])
_SERIES = TypeAdapter(Series)
_STATES = TypeAdapter(list[StationState])

# The longest range one request may ask for, per resolution: enough for a flood season of hourly
# points, bounded so one request cannot make the database read years of raw readings.
_MAX_RANGE = {
    "raw": dt.timedelta(days=62),
    "5m": dt.timedelta(days=62),
    "1h": dt.timedelta(days=400),
    "1d": dt.timedelta(days=3660),
}


_IfNoneMatch = Annotated[
    str | None, Header(description="the ETag of a copy held: 304 if it is still current")
]


@router.get(
    "",
    response_model=list[StationOut],
    responses={304: {"description": "the copy whose ETag was sent is current"}},
)
async def list_stations(
    *,
    ctx: Context,
    _: Viewer,
    if_none_match: _IfNoneMatch = None,
    prefecture: str | None = None,
    county: str | None = None,
    kind: StationKind | None = None,
    status: Annotated[
        StationStatus | None, Query(description="silent matches every silent station")
    ] = None,
) -> Response:
    latest = {row.station: row for row in await latest_readings(ctx.pool)}
    stations = [
        s
        for s in ctx.registry.stations
        if (prefecture is None or s.prefecture == prefecture)
        and (county is None or s.county == county)
        and (kind is None or s.kind == kind)
    ]
    statuses = station_statuses(stations, await open_alerts(ctx.pool), latest, ctx.silence_families)
    storage = storage_fields(ctx.registry.storage, latest)
    rows = [
        station_fields(s, statuses[s.code], latest.get(s.code), storage.get(s.code))
        for s in stations
        if status is None
        or statuses[s.code][0] == status
        or (status == "silent" and statuses[s.code][1])
    ]
    return revalidated_json_response(
        _STATION_LIST, _STATION_LIST.validate_python(rows), if_none_match
    )


@router.get(
    "/status",
    response_model=list[StationState],
    responses={304: {"description": "the copy whose ETag was sent is current"}},
)
async def station_states(ctx: Context, _: Viewer, if_none_match: _IfNoneMatch = None) -> Response:
    """Every station's colour only: what the live map asks for every few seconds (for 7,000
    stations a twentieth of the full list)."""
    reported = await latest_times(ctx.pool)
    statuses = station_statuses(
        ctx.registry.stations, await open_alerts(ctx.pool), reported, ctx.silence_families
    )
    states = [
        {"code": code, "status": status, "silent": silent}
        for code, (status, silent) in statuses.items()
    ]
    return revalidated_json_response(_STATES, _STATES.validate_python(states), if_none_match)


@router.get("/{code}", response_model=StationDetail)
async def station_detail(ctx: Context, principal: Viewer, code: str) -> StationDetail:
    station = ctx.registry.get(code)
    if station is None:
        raise HTTPException(404, f"no station {code} in the registry")
    latest = {row.station: row for row in await latest_readings(ctx.pool, code)}
    active = [a for a in await open_alerts(ctx.pool) if a.station == code]
    status = station_statuses([station], active, latest, ctx.silence_families)[code]
    storage = storage_fields(ctx.registry.storage, latest)
    return StationDetail.model_validate(
        {
            **station_fields(station, status, latest.get(code), storage.get(code)),
            "gateway": station.gateway,
            "timezone": station.timezone,
            "persons": [
                Person(
                    role=p.role.value,
                    name=p.name,
                    phone=phone_for(p.phone, full=principal.sees_phones),
                )
                for p in station.persons
            ],
            "active_alerts": [alert_out(a, station, ctx.rule_names) for a in active],
        }
    )


@router.post(
    "/{code}/readings",
    status_code=201,
    response_model=ManualReadingOut,
    responses={
        403: {"description": "a viewer token"},
        404: {"description": "no such station"},
        422: {"description": "refused as ingest refuses a gateway's reading; nothing stored"},
    },
)
async def enter_reading(
    ctx: Context, principal: Operator, code: str, body: ReadingIn
) -> ManualReadingOut:
    """A reading a patrol person phoned in while the station's gateway is down: judged as a
    gateway's reading is (plausible bounds, ``ingest.max_future``/``max_past``, at least one
    value), stored and evaluated like one, recorded with the token's name and the note."""
    entry = ManualEntry(
        code, body.time, body.water_level, body.flow, body.rainfall, principal.name, body.note
    )
    try:
        reading = await ctx.enter_reading(entry)
    except ReadingRefused as exc:
        raise HTTPException(404 if exc.code == "unknown_station" else 422, exc.reason) from exc
    return ManualReadingOut(  # the reading as stored; a model ignores its battery_v
        **reading._asdict(), entered_by=principal.name, note=entry.note.strip(), entered_at=None
    )


# A range's start, ``from`` in the query (a Python keyword).
_From = Annotated[dt.datetime | None, Query(alias="from")]


@router.get("/{code}/readings/manual", response_model=list[ManualReadingOut])
async def station_manual_readings(
    *, ctx: Context, _: Viewer, code: str, from_: _From = None, to: dt.datetime | None = None
) -> list[ManualReadingOut]:
    """The readings operators typed in, by observation time, with who and why: the station's
    readings (``/readings``) hold their values among the gateway's. Defaults to the last 30
    days; times without an offset are read as UTC."""
    since, until = _station_window(ctx, code, from_, to, dt.timedelta(days=30))
    records = await manual_readings(ctx.pool, code, since, until)
    return [ManualReadingOut.model_validate(r, from_attributes=True) for r in records]


@router.get("/{code}/readings", response_model=Series)
async def station_readings(
    *,
    ctx: Context,
    _: Viewer,
    code: str,
    from_: _From = None,
    to: dt.datetime | None = None,
    every: Annotated[
        Every, Query(description="raw, 5m, 1h or 1d (hydrological day, from 08:00 local)")
    ] = "raw",
) -> Response:
    """Defaults to the last 24 hours. Times without an offset are read as UTC."""
    since, until = _station_window(ctx, code, from_, to, dt.timedelta(days=1))
    if since >= until:
        raise HTTPException(422, "from must be before to")
    if until - since > _MAX_RANGE[every]:
        raise HTTPException(422, f"at most {_MAX_RANGE[every].days} days at every={every}")
    columns = await station_series(
        ctx.pool, code, since, until, every, limit=ctx.max_series_points + 1
    )
    if len(columns.time) > ctx.max_series_points:
        raise HTTPException(
            422,
            f"more than {ctx.max_series_points} points from {since.isoformat()} to"
            f" {until.isoformat()} at every={every}; one response holds at most"
            f" {ctx.max_series_points} points (api.max_series_points): ask for a shorter range"
            " or a coarser every",
        )
    return json_response(_SERIES, Series(station=code, every=every, **columns._asdict()))


def _station_window(
    ctx: ApiContext,
    code: str,
    from_: dt.datetime | None,
    to: dt.datetime | None,
    default: dt.timedelta,
) -> tuple[dt.datetime, dt.datetime]:
    """404 for a station not in the registry, else the range asked: up to now and ``default``
    long unless given, times without an offset read as UTC."""
    if ctx.registry.get(code) is None:
        raise HTTPException(404, f"no station {code} in the registry")
    until = aware(to) or dt.datetime.now(dt.UTC)
    return aware(from_) or until - default, until
