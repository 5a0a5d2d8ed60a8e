"""``/api/v1/alerts``: history with filters, pages and CSV; one alert with every SMS; ack."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response

from hydro.api.auth import Context, Operator, Viewer
from hydro.api.context import ApiContext
from hydro.api.schemas import (
    AlertDetail,
    AlertOut,
    AlertPage,
    ConfirmationOut,
    ConfirmIn,
    EventOut,
    LadderStepOut,
)
from hydro.api.views import (
    alert_out,
    aware,
    confirmation_out,
    decode_cursor,
    encode_cursor,
    notification_out,
)
from hydro.desk.confirm import confirm_person
from hydro.rules.model import Severity
from hydro.store.alerts import (
    AlertFilter,
    AlertRecord,
    acknowledge,
    alert_detail,
    list_alerts,
)
from hydro.store.ladder import ladder_detail, wake_up

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_CSV_PAGE = 2000


@router.get(
    "",
    response_model=AlertPage,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "a page, or CSV of up to api.max_csv_rows alerts",
            "headers": {
                "X-Hydro-Next-Cursor": {
                    "description": "CSV only: more alerts match; pass it as cursor for the rest",
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def list_alert_history(
    *,
    ctx: Context,
    _: Viewer,
    station: str | None = None,
    prefecture: str | None = None,
    county: str | None = None,
    severity: Severity | None = None,
    state: Literal["open", "cleared"] | None = None,
    from_: Annotated[
        dt.datetime | None, Query(alias="from", description="opened at or after")
    ] = None,
    to: Annotated[dt.datetime | None, Query(description="opened before")] = None,
    unconfirmed: Annotated[
        bool,
        Query(description="only 未叫应: open, ladder started, nobody confirmed, nobody acked"),
    ] = False,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    format: Literal["json", "csv"] = "json",
) -> AlertPage | Response:
    """Newest first. ``format=csv`` returns up to ``api.max_csv_rows`` matching alerts, not one
    page; when more match, ``X-Hydro-Next-Cursor`` is the cursor of the rest."""
    stations = None
    if prefecture is not None or county is not None:
        stations = tuple(
            s.code
            for s in ctx.registry.stations
            if (prefecture is None or s.prefecture == prefecture)
            and (county is None or s.county == county)
        )
    try:
        before = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    query = AlertFilter(
        station=station,
        stations=stations,
        since=aware(from_),
        until=aware(to),
        severity=severity.value if severity else None,
        state=state,
        before=before,
        unconfirmed=unconfirmed,
        limit=limit,
    )
    if format == "csv":
        text, last = await _csv(ctx, query)
        headers = {"Content-Disposition": 'attachment; filename="alerts.csv"'}
        if last is not None:
            headers["X-Hydro-Next-Cursor"] = encode_cursor(last.opened_at, last.id)
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
    rows = await list_alerts(ctx.pool, query)
    items = [alert_out(a, ctx.registry.get(a.station), ctx.rule_names) for a in rows]
    last = rows[-1] if len(rows) == limit else None
    return AlertPage(
        items=items, next_cursor=encode_cursor(last.opened_at, last.id) if last else None
    )


async def _csv(ctx: ApiContext, query: AlertFilter) -> tuple[str, AlertRecord | None]:
    """The first ``api.max_csv_rows`` matching alerts as CSV, and the last of them when more
    follow: one response's memory is bounded, and nothing is cut off without saying so."""
    fields = list(AlertOut.model_fields)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # Excel opens UTF-8 Chinese text correctly only with a BOM
    writer.writerow(fields)
    written, last = 0, None
    wanted = ctx.max_csv_rows + 1  # one more than fits tells whether more follow
    query = dataclasses.replace(query, limit=min(_CSV_PAGE, wanted))
    while True:
        rows = await list_alerts(ctx.pool, query)
        for alert in rows:
            if written == ctx.max_csv_rows:
                return buffer.getvalue(), last
            out = alert_out(alert, ctx.registry.get(alert.station), ctx.rule_names)
            writer.writerow(["" if v is None else v for v in out.model_dump(mode="json").values()])
            written, last = written + 1, alert
        if len(rows) < query.limit:
            return buffer.getvalue(), None
        query = dataclasses.replace(
            query,
            before=(rows[-1].opened_at, rows[-1].id),
            limit=min(_CSV_PAGE, wanted - written),
        )


@router.get("/{alert_id}", response_model=AlertDetail)
async def get_alert(ctx: Context, principal: Viewer, alert_id: AlertId) -> AlertDetail:
    found = await alert_detail(ctx.pool, alert_id)
    if found is None:
        raise HTTPException(404, f"no alert {alert_id}")
    alert, events, outbox = found
    steps, answers = await ladder_detail(ctx.pool, alert_id)
    woke = wake_up(alert.opened_at, answers)
    return AlertDetail(
        alert=alert_out(alert, ctx.registry.get(alert.station), ctx.rule_names),
        events=[EventOut.model_validate(e, from_attributes=True) for e in events],
        notifications=[notification_out(o, full_phone=principal.sees_phones) for o in outbox],
        ladder=[
            LadderStepOut(
                key=s.key, reason=s.reason, taken_at=s.taken_at, notifications=s.outbox_ids
            )
            for s in steps
        ],
        confirmations=[confirmation_out(c, full_phone=principal.sees_phones) for c in answers],
        wake_up_seconds=None if woke is None else woke.total_seconds(),
    )


@router.post(
    "/{alert_id}/confirmations",
    response_model=ConfirmationOut,
    status_code=201,
    responses={200: {"description": "the person had confirmed already: the standing answer"}},
)
async def confirm_for_person(
    ctx: Context, principal: Operator, alert_id: AlertId, body: ConfirmIn, response: Response
) -> ConfirmationOut:
    """叫应 on a person's behalf (电话已联系): recorded as answered by ``operator`` under the
    token holder's name and the note. A person's first answer stands."""
    if body.role is None and body.phone is None:
        raise HTTPException(422, "give the person's role or phone")
    now = dt.datetime.now(dt.UTC)
    duty = ctx.roster.on_duty(now)
    found = await confirm_person(
        ctx.pool,
        ctx.registry,
        duty,
        alert_id,
        role=body.role,
        phone=body.phone,
        by=principal.name,
        note=body.note,
        now=now,
    )
    if found is None:
        raise HTTPException(404, f"no alert {alert_id}")
    if isinstance(found, str):
        raise HTTPException(422, found)
    standing, new = found
    if not new:
        response.status_code = 200
    return confirmation_out(standing, full_phone=principal.sees_phones)


@router.post("/{alert_id}/ack", response_model=AlertOut)
async def acknowledge_alert(ctx: Context, principal: Operator, alert_id: AlertId) -> AlertOut:
    """Recorded once, under the token holder's name: a second ack keeps the first."""
    alert = await acknowledge(ctx.pool, alert_id, principal.name)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return alert_out(alert, ctx.registry.get(alert.station), ctx.rule_names)
