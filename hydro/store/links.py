"""Personal confirmation links (叫应), the only module with SQL on ``confirmation_links``.

A code is 64 random bits (11 characters of ``secrets.token_urlsafe``): a guess succeeds once in
2^64 tries, and the API rate-limits tries. One code per alert and person, kept across the SMS of
that alert (a reminder or an escalation reuses it, and extends its life).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row, scalar_row

from hydro.models import Recipient, Role
from hydro.store.db import Connection, translate_errors

CODE_BYTES = 8


@dataclass(frozen=True, slots=True)
class Links:
    """Where personal confirmation links point (``api.public_url``), and how long they work
    after the last SMS that carried them (``alerting.link_ttl``)."""

    public_url: str
    ttl: dt.timedelta


async def link_url(
    conn: Connection, links: Links, alert_id: int, recipient: Recipient, now: dt.datetime
) -> str:
    """The person's link for the alert, its code issued (or its life extended) now."""
    code = await issue_link(conn, alert_id, recipient, now + links.ttl)
    return f"{links.public_url}/c/{code}"


@dataclass(frozen=True, slots=True)
class Link:
    code: str
    alert_id: int
    recipient: Recipient
    expires_at: dt.datetime


async def issue_link(
    conn: Connection, alert_id: int, recipient: Recipient, expires_at: dt.datetime
) -> str:
    """The person's code for the alert, new or the one they already have (valid until at
    least ``expires_at``), in the caller's transaction."""
    with translate_errors(f"issuing a confirmation link for alert {alert_id}"):
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute(
            "INSERT INTO confirmation_links (code, alert_id, role, person, phone, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (alert_id, phone) DO UPDATE SET expires_at ="
            " greatest(confirmation_links.expires_at, EXCLUDED.expires_at)"
            " RETURNING code",
            (
                secrets.token_urlsafe(CODE_BYTES),
                alert_id,
                recipient.role.value,
                recipient.name,
                recipient.phone,
                expires_at,
            ),
        )
        code: str | None = await cur.fetchone()
    assert code is not None
    return code


def _link(row: dict[str, Any]) -> Link:
    recipient = Recipient(Role(row["role"]), row["person"], row["phone"])
    return Link(row["code"], row["alert_id"], recipient, row["expires_at"])


async def find_link(conn: Connection, code: str) -> Link | None:
    """The link of ``code``, expired or not (the caller says which); None for no such code."""
    with translate_errors("reading a confirmation link"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT code, alert_id, role, person, phone, expires_at FROM confirmation_links"
            " WHERE code = %s",
            (code,),
        )
        row = await cur.fetchone()
    return None if row is None else _link(row)
