"""Turning stored rows and registry entries into API shapes. Pure: no I/O."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Container, Iterable, Mapping
from typing import TypeVar

from fastapi import HTTPException, Response
from pydantic import TypeAdapter

from hydro.api.schemas import (
    AlertOut,
    ConfirmationOut,
    Latest,
    Levels,
    NotificationOut,
    StationStatus,
)
from hydro.models import Confirmation, Station, mask_phone
from hydro.rules.model import Severity
from hydro.stations import StorageTable
from hydro.store.alerts import AlertRecord
from hydro.store.outbox import OutboxRecord
from hydro.store.stations_view import LatestReading


def station_statuses(
    stations: Iterable[Station],
    open_alerts: Iterable[AlertRecord],
    reported: Container[str],
    silence_families: frozenset[str],
) -> dict[str, tuple[StationStatus, bool]]:
    """(status, silent) per station: the colour of its most severe open alert other than a
    silence one; else ``silent`` if it has an open silence alert; else ``no_data`` if it never
    reported; else ``normal``. ``silent`` is kept separately, since a gauge often goes quiet at
    the peak of an alert the map must go on showing."""
    worst: dict[str, int] = {}
    silent: set[str] = set()
    for alert in open_alerts:
        if alert.family in silence_families:
            silent.add(alert.station)
        else:
            rank = Severity(alert.severity).rank
            worst[alert.station] = max(worst.get(alert.station, -1), rank)
    colours = list(Severity)
    statuses: dict[str, tuple[StationStatus, bool]] = {}
    for station in stations:
        code = station.code
        status: StationStatus
        if code in worst:
            status = colours[worst[code]].value
        elif code in silent:
            status = "silent"
        elif code not in reported:
            status = "no_data"
        else:
            status = "normal"
        statuses[code] = (status, code in silent)
    return statuses


def station_fields(
    station: Station,
    status: tuple[StationStatus, bool],
    latest: LatestReading | None,
    storage: dict[str, object] | None = None,
) -> dict[str, object]:
    """A :class:`StationOut` as a plain dict: pydantic-core validates a list of 7,000 of these
    in one call several times faster than 7,000 model constructors run."""
    return {
        **_registry_fields(station),
        "status": status[0],
        "silent": status[1],
        "latest": None
        if latest is None
        else {name: getattr(latest, name) for name in _LATEST_FIELDS},
        "storage": storage,
    }


def storage_fields(
    curves: StorageTable, latest: Mapping[str, LatestReading]
) -> dict[str, dict[str, object]]:
    """A :class:`StorageOut` as a plain dict per reservoir with a curve, at its latest level:
    one interpolation for all of them."""
    read = curves.read(
        {
            code: row.water_level
            for code, row in latest.items()
            if row.water_level is not None and code in curves.index
        }
    )
    fields: dict[str, dict[str, object]] = {}
    for code in curves.codes:
        size, normal = curves.size(code)
        now = read.get(code)
        fields[code] = {
            "size": size,
            "normal_storage": normal,
            "level": None if now is None else now.level,
            "storage": None if now is None else now.storage,
            "percent_normal": None if now is None else now.percent_normal,
            "outside": None if now is None else now.outside,
        }
    return fields


@functools.cache
def _registry_fields(station: Station) -> dict[str, object]:
    """What the registry says of a station, computed once per station (callers copy it)."""
    return {
        **station.identity(),
        "river": station.river,
        "lat": station.lat,
        "lon": station.lon,
        "levels": {name: getattr(station, name) for name in _LEVEL_FIELDS},
    }


_LEVEL_FIELDS = tuple(Levels.model_fields)
_LATEST_FIELDS = tuple(Latest.model_fields)


def alert_out(
    alert: AlertRecord, station: Station | None, rule_names: Mapping[str, str]
) -> AlertOut:
    return AlertOut.model_validate(
        {
            **dataclasses.asdict(alert),
            "station_name": station.name if station else None,
            "prefecture": station.prefecture if station else None,
            "county": station.county if station else None,
            "rule_name": rule_names.get(alert.rule_id),
        }
    )


T = TypeVar("T")
_EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """Query times without an offset are read as UTC: an API has no local time of its own.
    Times outside 1900-2200 are refused (422) before any arithmetic can overflow on them."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if not _EARLIEST <= moment < _LATEST:
        raise HTTPException(422, f"{moment.isoformat()} is outside 1900-2200")
    return moment


def json_response(adapter: TypeAdapter[T], value: T) -> Response:
    """Serialised by pydantic-core in one pass: FastAPI's own route would validate the value
    again and encode it in Python, ten times slower for the 7,000 stations of a province."""
    return Response(adapter.dump_json(value), media_type="application/json")


def revalidated_json_response(
    adapter: TypeAdapter[T], value: T, if_none_match: str | None
) -> Response:
    """Like :func:`json_response`, with an ETag of the body: a client that holds it gets 304 and
    no body. The browser stores the answer but asks again every time (``no-cache``)."""
    body = adapter.dump_json(value)
    # Weak: the gzip middleware may send it compressed, the same content in other bytes.
    tag = f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if if_none_match is not None and _matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _matches(if_none_match: str, tag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): ``*`` or any listed tag, W/ or not."""
    offered = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in offered or tag.removeprefix("W/") in offered


def phone_for(phone: str, *, full: bool) -> str:
    return phone if full else mask_phone(phone)


def notification_out(record: OutboxRecord, *, full_phone: bool) -> NotificationOut:
    """The outcome fields under their own names, the notification's under the API's."""
    n, to = record.notification, record.notification.recipient
    outcome = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return NotificationOut.model_validate(
        outcome
        | {
            "id": n.outbox_id,
            "role": to.role.value,
            "person": to.name,
            "phone": phone_for(to.phone, full=full_phone),
            "body": n.text,
            "channel": n.channel.value,
        }
    )


def confirmation_out(c: Confirmation, *, full_phone: bool) -> ConfirmationOut:
    to = c.recipient
    return ConfirmationOut(
        role=to.role.value,
        person=to.name,
        phone=phone_for(to.phone, full=full_phone),
        answer=c.answer.value,
        confirmed_at=c.confirmed_at,
        recorded_by=c.recorded_by,
        outbox_id=c.outbox_id,
        rank=c.rank,
        note=c.note,
    )


def encode_cursor(opened_at: dt.datetime, alert_id: int) -> str:
    """Opaque to clients: the (opened_at, id) of the last row of a page."""
    text = f"{opened_at.isoformat()}|{alert_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    """Raises ValueError for anything :func:`encode_cursor` did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, number = text.split("|")
        opened_at = dt.datetime.fromisoformat(when)
        alert_id = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a cursor from this API") from exc
    if opened_at.tzinfo is None or not 0 < alert_id < 2**63:
        raise ValueError("not a cursor from this API")
    return opened_at, alert_id
