"""``/api/v1/sms``: the duty desk's manual SMS, previewed then sent (operator role)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from hydro.api.auth import Context, Operator, Principal
from hydro.api.schemas import SmsMessageOut, SmsPreviewOut, SmsRequestIn, SmsSentOut
from hydro.api.views import phone_for
from hydro.desk.manual import Draft, request_of
from hydro.errors import ConfirmationNeeded, SmsRefused

router = APIRouter(prefix="/api/v1/sms", tags=["sms"])

_REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "the request cannot be sent as asked; the detail says why"}
}


@router.post("/preview", response_model=SmsPreviewOut, responses=_REFUSED)
async def preview(
    ctx: Context,
    principal: Operator,
    body: SmsRequestIn,
    messages: Annotated[
        int, Query(ge=0, le=100_000, description="how many of the messages to list")
    ] = 200,
) -> SmsPreviewOut:
    """Exactly what a send would queue: each person's text, characters and SMS segments (the
    first ``messages`` of them listed; counts and the longest cover all), and the ``confirm`` a
    send to more than sms.confirm_above people must echo."""
    try:
        draft = await ctx.manual_sms.preview(request_of(body))
    except SmsRefused as exc:
        raise HTTPException(422, str(exc)) from exc
    return _preview_out(draft, principal, ctx.manual_sms.confirm_above, messages)


@router.post(
    "/send",
    response_model=SmsSentOut,
    status_code=201,
    responses={
        **_REFUSED,
        409: {"description": "more than sms.confirm_above recipients: echo the preview's confirm"},
    },
)
async def send(ctx: Context, principal: Operator, body: SmsRequestIn) -> SmsSentOut | JSONResponse:
    """Queues every message in one transaction, written by the token's holder."""
    try:
        sent = await ctx.manual_sms.send(
            request_of(body), written_by=principal.name, reason=body.reason, confirm=body.confirm
        )
    except ConfirmationNeeded as exc:
        return JSONResponse(
            {"detail": str(exc), "recipients": exc.recipients, "confirm": exc.confirm},
            status_code=409,
        )
    except SmsRefused as exc:
        raise HTTPException(422, str(exc)) from exc
    return SmsSentOut(
        send_id=sent.send_id,
        recipients=sent.preview.recipients,
        segments=sent.preview.segments,
        alert_id=sent.alert_id,
    )


def _preview_out(
    draft: Draft, principal: Principal, confirm_above: int, listed: int
) -> SmsPreviewOut:
    p = draft.preview
    return SmsPreviewOut(
        audience=str(p.audience),
        recipients=p.recipients,
        segments=p.segments,
        max_characters=max(m.characters for m in p.messages),
        max_segments=max(m.length.segments for m in p.messages),
        needs_confirmation=p.recipients > confirm_above,
        confirm=p.confirm,
        alert_id=draft.alert_id,
        messages=[
            SmsMessageOut(
                role=m.recipient.role.value,
                person=m.recipient.name,
                phone=phone_for(m.recipient.phone, full=principal.sees_phones),
                stations=list(m.stations),
                text=m.text,
                characters=m.characters,
                encoding=m.length.encoding,
                segments=m.length.segments,
            )
            for m in p.messages[:listed]
        ],
    )
