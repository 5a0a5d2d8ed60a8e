"""Twilio's voice webhooks (叫应): the key a called person pressed, and how the call ended.

Both are signed as the SMS status webhook is (:func:`hydro.api.operations.signed_form`). The
key-press URL names the call's outbox row (the provider put it there, Twilio signed it), so a
key pressed before hydro has recorded the call's SID still finds its call. Pressing 1 confirms
the call's alert for its person; the first answer of a person stands, so a replayed press
changes nothing. :func:`press_key` and :func:`report_call_status` are also what the console
provider's simulated people go through (``hydro demo``).
"""

from __future__ import annotations

import datetime as dt
import logging
from enum import StrEnum
from typing import Annotated

import psycopg_pool
from fastapi import APIRouter, HTTPException, Query, Request, Response

from hydro.api.auth import Context
from hydro.api.operations import STATUS_CALLBACK, UNSIGNED, TwilioSignature, signed_form, signed_url
from hydro.models import Answer, Confirmation, mask_phone
from hydro.store.confirmations import record_confirmation
from hydro.store.db import connection
from hydro.store.outbox import record_call_status, voice_call
from hydro.twiml import ask_again, gather_url, goodbye, thanks

log = logging.getLogger(__name__)
router = APIRouter()

TWILIO_GATHER_PATH = "/api/v1/twilio/gather"
TWILIO_CALL_STATUS_PATH = "/api/v1/twilio/call-status"
_TWIML = "application/xml"


class KeyPress(StrEnum):
    """What a key press did."""

    CONFIRMED = "confirmed"  # 1: the person's confirmation of the alert, recorded now
    ALREADY = "already"  # 1, but the person had confirmed this alert before: nothing changed
    NOT_1 = "not_1"  # another key: nothing recorded
    NO_CALL = "no_call"  # no call of an alert is queued under that id: nothing recorded


async def press_key(
    pool: psycopg_pool.AsyncConnectionPool, outbox_id: int, digits: str, at: dt.datetime
) -> KeyPress:
    """Records ``digits`` pressed in the call queued as ``outbox_id``."""
    async with connection(pool, f"recording a key press in outbox={outbox_id}") as conn:
        call = await voice_call(conn, outbox_id)
        if call is None or call.alert_id is None:
            log.warning("outbox=%d: key %r pressed, but no call of an alert", outbox_id, digits)
            return KeyPress.NO_CALL
        to = call.recipient
        named = (
            f"alert={call.alert_id} station={call.station} outbox={outbox_id}"
            f" {to.role} {mask_phone(to.phone)}"
        )
        if digits != "1":
            log.info("%s pressed %r, not 1: asked again", named, digits)
            return KeyPress.NOT_1
        answer = Confirmation(call.alert_id, to, Answer.KEYPRESS, at, to.name, outbox_id)
        standing, new = await record_confirmation(conn, answer)
    if new:
        log.info("%s CONFIRMED by key press", named)
        return KeyPress.CONFIRMED
    log.info("%s pressed 1 again; confirmed already at %s", named, standing.confirmed_at)
    return KeyPress.ALREADY


async def report_call_status(
    pool: psycopg_pool.AsyncConnectionPool, call_sid: str, status: str, error_code: str | None
) -> None:
    """Keeps a call's status and records a final one on its call's row."""
    async with connection(pool, f"recording the status of call {call_sid}") as conn:
        outbox_id = await record_call_status(conn, call_sid, status, error_code)
    error = f" (error {error_code})" if error_code else ""
    if outbox_id is None:
        log.info(
            "call %s: %s%s kept; no placed call awaits an outcome under that SID",
            call_sid,
            status,
            error,
        )
    else:
        log.info("outbox=%d call %s ended %s%s", outbox_id, call_sid, status, error)


@router.post(
    TWILIO_GATHER_PATH,
    tags=["webhooks"],
    response_class=Response,
    responses={
        200: {"description": "TwiML: thanks, or asked again", "content": {_TWIML: {}}},
        **UNSIGNED,
    },
)
async def twilio_gather(
    ctx: Context,
    request: Request,
    outbox: Annotated[int, Query(description="the call's outbox id", ge=1, lt=2**63)],
    attempt: Annotated[int, Query(alias="try", ge=1, le=2)] = 1,
    x_twilio_signature: TwilioSignature = None,
) -> Response:
    """The key a called person pressed (Twilio's <Gather> action): 1 confirms the alert."""
    form = await signed_form(ctx, request, x_twilio_signature)
    pressed = await press_key(ctx.pool, outbox, form.get("Digits", ""), dt.datetime.now(dt.UTC))
    if pressed in {KeyPress.CONFIRMED, KeyPress.ALREADY}:
        twiml = thanks(ctx.speech)
    elif pressed is KeyPress.NOT_1 and attempt == 1:
        again = gather_url(signed_url(ctx, request).split("?")[0], outbox, 2)
        twiml = ask_again(again, ctx.speech)
    else:
        twiml = goodbye(ctx.speech)
    return Response(twiml, media_type=_TWIML)


@router.post(TWILIO_CALL_STATUS_PATH, **STATUS_CALLBACK)
async def twilio_call_status(
    ctx: Context, request: Request, x_twilio_signature: TwilioSignature = None
) -> Response:
    """Twilio's call status callback: completed, busy, no-answer, failed or canceled. Kept like
    an SMS receipt; a status for a call hydro did not place changes nothing."""
    form = await signed_form(ctx, request, x_twilio_signature)
    sid, status = form.get("CallSid"), form.get("CallStatus")
    if not sid or not status:
        raise HTTPException(422, "CallSid and CallStatus are required")
    await report_call_status(ctx.pool, sid, status, form.get("ErrorCode") or None)
    return Response(status_code=204)
