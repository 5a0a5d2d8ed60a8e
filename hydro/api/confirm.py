"""``/c/{code}``: the page a personal SMS link opens (叫应), no sign-in, plain HTML, no script.

Opening the page (GET) confirms nothing: mail and messaging apps fetch links to preview them.
Only its 确认收到 button (a POST) records the confirmation, once: a second press shows the one
that stands. A code that was never issued is 404, an expired one 410, and neither changes
anything. Tries are limited per code and per client address (in this process), so codes cannot
be guessed at speed.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from hydro.api.auth import Context
from hydro.api.context import ApiContext
from hydro.models import Answer, Confirmation, mask_phone
from hydro.store.alerts import AlertRecord, find_alert
from hydro.store.confirmations import confirmations_of, record_confirmation
from hydro.store.db import connection
from hydro.store.links import Link, find_link
from hydro.texts import ROLE_NAMES, SEVERITY_NAMES

log = logging.getLogger(__name__)
router = APIRouter(tags=["confirmation links"], include_in_schema=False)

_CODE = re.compile(r"[A-Za-z0-9_-]{8,32}")
Code = Annotated[str, Path(max_length=64)]


class RateLimit:
    """At most ``per_minute`` tries per key in any minute; memory bounded by forgetting keys
    idle for a minute when many are held."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._tries: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        if len(self._tries) > 10_000:
            self._tries = {k: v for k, v in self._tries.items() if v and v[-1] > now - 60}
        tries = self._tries.setdefault(key, deque())
        while tries and tries[0] <= now - 60:
            tries.popleft()
        if len(tries) >= self._per_minute:
            return False
        tries.append(now)
        return True


def _page(status: int, title: str, body: str) -> HTMLResponse:
    text = (
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<meta name=robots content=noindex><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status, headers={"Cache-Control": "no-store"})


_NOT_FOUND = ("链接无效", "<p>这个确认链接不存在。请核对短信中的链接,或电话联系值班员。</p>")
_EXPIRED = ("链接已过期", "<p>这个确认链接已过期。如仍需确认,请电话联系值班员。</p>")
_TOO_MANY = ("请稍后再试", "<p>尝试次数过多,请一分钟后再试。</p>")


async def _checked(ctx: ApiContext, request: Request, code: str) -> Link | HTMLResponse:
    """The code's link, or the page that says why there is none."""
    limit: RateLimit = request.app.state.link_limit
    client = request.client.host if request.client else "-"
    if not (limit.allow(f"client:{client}") and limit.allow(f"code:{code}")):
        return _page(429, *_TOO_MANY)
    if not _CODE.fullmatch(code):
        return _page(404, *_NOT_FOUND)
    async with connection(ctx.pool, "reading a confirmation link") as conn:
        link = await find_link(conn, code)
    if link is None:
        return _page(404, *_NOT_FOUND)
    if link.expires_at <= dt.datetime.now(dt.UTC):
        return _page(410, *_EXPIRED)
    return link


def _about(ctx: ApiContext, alert: AlertRecord, link: Link) -> str:
    station = ctx.registry.get(alert.station)
    where = f"{station.prefecture}{station.county}{station.name}" if station else alert.station
    severity = SEVERITY_NAMES.get(alert.severity, alert.severity)
    rule = ctx.rule_names.get(alert.rule_id, alert.rule_id)
    to = link.recipient
    state = "仍在持续" if alert.state == "open" else "已解除"
    return (
        f"<p>{html.escape(where)}: {html.escape(severity)}预警 {html.escape(rule)}({state})</p>"
        f"<p>发给: {html.escape(ROLE_NAMES[to.role])} {html.escape(to.name)}</p>"
    )


def _confirmed(ctx: ApiContext, alert: AlertRecord, link: Link, standing: Confirmation) -> str:
    station = ctx.registry.get(alert.station)
    at = standing.confirmed_at.astimezone(station.tz if station else dt.UTC)
    return _about(ctx, alert, link) + f"<p>已于{at:%m月%d日%H:%M}确认收到, 谢谢。</p>"


@router.get("/c/{code}", response_class=HTMLResponse)
async def confirmation_page(ctx: Context, request: Request, code: Code) -> HTMLResponse:
    """Shows the alert and the 确认收到 button; records nothing."""
    found = await _checked(ctx, request, code)
    if isinstance(found, HTMLResponse):
        return found
    async with connection(ctx.pool, "reading a confirmation link's alert") as conn:
        alert = await find_alert(conn, found.alert_id)
        answers = (await confirmations_of(conn, [found.alert_id])).get(found.alert_id, [])
    assert alert is not None  # a link refers to its alert
    mine = [
        a for a in answers if a.recipient.phone == found.recipient.phone and a.answers(alert.rank)
    ]
    if mine:
        return _page(200, "已确认", _confirmed(ctx, alert, found, mine[0]))
    button = "<form method=post><button type=submit>确认收到</button></form>"
    return _page(200, "预警确认", _about(ctx, alert, found) + button)


@router.post("/c/{code}", response_class=HTMLResponse)
async def confirm(ctx: Context, request: Request, code: Code) -> HTMLResponse:
    """Records the person's confirmation (the first one stands; pressing again changes
    nothing)."""
    found = await _checked(ctx, request, code)
    if isinstance(found, HTMLResponse):
        return found
    now = dt.datetime.now(dt.UTC)
    answer = Confirmation(found.alert_id, found.recipient, Answer.LINK, now, found.recipient.name)
    async with connection(ctx.pool, "recording a confirmation by link") as conn:
        standing, new = await record_confirmation(conn, answer)
        alert = await find_alert(conn, found.alert_id)
    assert alert is not None
    if new:
        log.info(
            "alert=%d station=%s confirmed by link: %s %s",
            alert.id,
            alert.station,
            found.recipient.role,
            mask_phone(found.recipient.phone),
        )
    return _page(200, "已确认", _confirmed(ctx, alert, found, standing))
