"""Health, readiness, Prometheus metrics, the province summary and the Twilio status webhook."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from twilio.request_validator import RequestValidator

from hydro.api.auth import Context, Viewer
from hydro.api.context import ApiContext
from hydro.api.schemas import Readiness, SilentStation, Summary
from hydro.api.views import station_statuses
from hydro.errors import HydroError
from hydro.store.alerts import open_alerts
from hydro.store.db import connection
from hydro.store.outbox import DutyNotices, record_receipt
from hydro.store.stations_view import latest_times
from hydro.store.status import delivery_counts
from hydro.texts import undelivered_notice

log = logging.getLogger(__name__)
router = APIRouter()

TWILIO_STATUS_PATH = "/api/v1/twilio/status"
_READY_TIMEOUT = 3.0


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """The process answers; says nothing about the database or broker (see /readyz)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "database or broker unreachable"}},
)
async def readyz(ctx: Context) -> JSONResponse:
    database, broker = await asyncio.gather(_database_problem(ctx), ctx.broker_reachable())
    body = Readiness(database=database or "ok", broker=broker or "ok")
    return JSONResponse(body.model_dump(), status_code=503 if database or broker else 200)


async def _database_problem(ctx: ApiContext) -> str | None:
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            async with connection(ctx.pool, "checking readiness") as conn:
                await conn.execute("SELECT 1")
    except (HydroError, TimeoutError) as exc:
        return f"unreachable: {exc or 'no answer in time'}"
    return None


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(ctx: Context) -> Response:
    """This process's counters, and what the database holds (the same from every process)."""
    scrape = CollectorRegistry()
    by_state = Gauge("hydro_alerts", "Alerts by state (open, cleared)", ["state"], registry=scrape)
    open_by = Gauge("hydro_alerts_open", "Open alerts by severity", ["severity"], registry=scrape)
    sms = Gauge("hydro_sms", "SMS in the outbox by status", ["status"], registry=scrape)
    calls = Gauge("hydro_calls", "Voice calls in the outbox by status", ["status"], registry=scrape)
    backlog = Gauge("hydro_evaluation_backlog", "Stored batches not yet evaluated", registry=scrape)
    silent = Gauge("hydro_stations_silent", "Stations with an open silence alert", registry=scrape)
    unconfirmed = Gauge(
        "hydro_alerts_unconfirmed",
        "Open alerts whose 叫应 ladder started and nobody has confirmed or acknowledged",
        registry=scrape,
    )
    alerts = await open_alerts(ctx.pool)
    counts = await delivery_counts(ctx.pool)
    for severity, n in collections.Counter(
        a.severity for a in alerts if a.family not in ctx.silence_families
    ).items():
        open_by.labels(severity).set(n)
    for state, n in counts.alerts_by_state.items():
        by_state.labels(state).set(n)
    for status, n in counts.sms_by_status.items():
        sms.labels(status).set(n)
    for status, n in counts.calls_by_status.items():
        calls.labels(status).set(n)
    backlog.set(counts.journal_backlog)
    unconfirmed.set(counts.unconfirmed_alerts)
    silent.set(len({a.station for a in alerts if a.family in ctx.silence_families}))
    return Response(
        generate_latest(REGISTRY) + generate_latest(scrape), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/api/v1/me", tags=["summary"])
async def me(principal: Viewer) -> dict[str, str]:
    """Who the token belongs to and its role: the web page shows the ack button to operators."""
    return {"name": principal.name, "role": principal.role}


@router.get("/api/v1/summary", tags=["summary"], response_model=Summary)
async def summary(ctx: Context, _: Viewer) -> Summary:
    """The province at a glance: open alerts by prefecture and severity, silent stations, SMS."""
    alerts = await open_alerts(ctx.pool)
    latest = await latest_times(ctx.pool)
    counts = await delivery_counts(ctx.pool)
    statuses = station_statuses(ctx.registry.stations, alerts, latest, ctx.silence_families)
    by_prefecture: dict[str, dict[str, int]] = {}
    by_severity: collections.Counter[str] = collections.Counter()
    for alert in alerts:
        station = ctx.registry.get(alert.station)
        if alert.family in ctx.silence_families:
            continue
        prefecture = station.prefecture if station else "?"
        by_prefecture.setdefault(prefecture, collections.Counter())[alert.severity] += 1
        by_severity[alert.severity] += 1
    silent = [
        SilentStation(
            code=s.code,
            name=s.name,
            prefecture=s.prefecture,
            last_time=latest.get(s.code),
        )
        for s in ctx.registry.stations
        if statuses[s.code][1]
    ]
    return Summary(
        generated_at=dt.datetime.now(dt.UTC),
        stations=len(ctx.registry),
        stations_reporting_5m=counts.stations_reporting_5m,
        ingest_rate_per_s=counts.readings_5m / 300,
        last_received_at=counts.last_received_at,
        open_alerts=counts.open_alerts,
        unconfirmed_alerts=counts.unconfirmed_alerts,
        by_prefecture={p: dict(c) for p, c in sorted(by_prefecture.items())},
        by_severity=dict(by_severity),
        silent=silent,
        no_data=sum(1 for status, _ in statuses.values() if status == "no_data"),
        outbox_backlog=sum(
            by_status.get(status, 0)
            for by_status in (counts.sms_by_status, counts.calls_by_status)
            for status in ("queued", "sending")
        ),
        sms_by_status=counts.sms_by_status,
        calls_by_status=counts.calls_by_status,
        journal_backlog=counts.journal_backlog,
    )


_REPORT_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}


@router.get(
    "/api/v1/reports/daily",
    tags=["summary"],
    response_class=Response,
    responses={
        200: {
            "description": "the report; X-Hydro-Report-Stored says whether it is the stored one",
            "content": {media: {} for media in _REPORT_TYPES.values()},
        }
    },
)
async def daily_report(
    ctx: Context,
    _: Viewer,
    date: Annotated[
        dt.date | None,
        Query(description="the day, by the date of its opening 08:00 (default: the last ended)"),
    ] = None,
    format: Literal["json", "html", "csv", "text"] = "json",
) -> Response:
    """The report of a hydrological day (08:00 to 08:00): as stored when it was built, with the
    corrections late data brought since; a day not stored yet is built from the data as it is."""
    if date is not None and not dt.date(1900, 1, 1) <= date < dt.date(2200, 1, 1):
        raise HTTPException(422, f"{date} is outside 1900-2200")
    text, stored, day = await ctx.daily_report(date, format)
    return Response(
        text,
        media_type=_REPORT_TYPES[format],
        headers={"X-Hydro-Report-Stored": str(stored).lower(), "X-Hydro-Report-Day": str(day)},
    )


# The header each Twilio webhook passes to signed_form.
TwilioSignature = Annotated[str | None, Header()]
UNSIGNED: dict[int | str, dict[str, Any]] = {
    403: {"description": "missing or invalid X-Twilio-Signature"}
}
# Twilio's status callbacks (an SMS's, a call's): nothing to answer but 204.
STATUS_CALLBACK: dict[str, Any] = {"tags": ["webhooks"], "status_code": 204, "responses": UNSIGNED}


@router.post(TWILIO_STATUS_PATH, **STATUS_CALLBACK)
async def twilio_status(
    ctx: Context, request: Request, x_twilio_signature: TwilioSignature = None
) -> Response:
    """Twilio's message status callback: delivered, undelivered or failed with an error code."""
    params = await signed_form(ctx, request, x_twilio_signature)
    sid, status = params.get("MessageSid"), params.get("MessageStatus")
    if not sid or not status:
        raise HTTPException(422, "MessageSid and MessageStatus are required")
    error_code = params.get("ErrorCode") or None
    notices = DutyNotices(ctx.roster, undelivered_notice)
    async with connection(ctx.pool, f"recording the receipt for {sid}") as conn:
        await record_receipt(conn, sid, status, error_code, notices)
    log.info("receipt %s: %s%s", sid, status, f" (error {error_code})" if error_code else "")
    return Response(status_code=204)


async def signed_form(ctx: ApiContext, request: Request, signature: str | None) -> dict[str, str]:
    """The form fields of a Twilio webhook, once its signature is checked: Twilio signs with the
    account's auth token over the URL and the fields; anything unsigned or signed wrongly is
    refused (403) before it is read further."""
    body = (await request.body()).decode("utf-8", "replace")
    params = dict(parse_qsl(body, keep_blank_values=True))
    if (
        ctx.twilio_auth_token is None
        or signature is None
        or not RequestValidator(ctx.twilio_auth_token).validate(
            signed_url(ctx, request), params, signature
        )
    ):
        raise HTTPException(403, "not signed by Twilio")
    return params


def signed_url(ctx: ApiContext, request: Request) -> str:
    """What Twilio signed: the public address when configured (a proxy in front changes what
    this server sees), else the URL as received."""
    if ctx.public_url is None:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{ctx.public_url}{request.url.path}{query}"
