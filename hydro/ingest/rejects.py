"""Refusals a gateway reports itself: input it could not turn into readings, for the quarantine.

A gateway that converts another protocol (``hydro gateway sl651``) refuses some input before
anything reaches MQTT: a frame with a bad CRC has no station or time to judge. It publishes each
refusal to ``<prefix>/<gateway>/rejects`` as ``{"reason": ..., "raw_hex": ..., "peer": ...,
"station": ...}``; this stage keeps it in the quarantine with code ``gateway_refused``, the
gateway's reason, and the raw bytes as hex text for payload (readable in ``hydro quarantine
list``, nothing lost).
"""

from __future__ import annotations

import datetime as dt
import json

from hydro.ingest.validate import Verdict, gateway_of
from hydro.models import Rejection, RejectionCode


def judge_gateway_reject(
    topic: str, payload: bytes, received_at: dt.datetime, topic_prefix: str
) -> Verdict | None:
    """The quarantine entry for a message on a rejects topic; None for any other topic."""
    if not topic.endswith("/rejects"):
        return None
    gateway = gateway_of(topic.removesuffix("rejects") + "readings", topic_prefix)
    if gateway is None:
        return None
    reason, raw, station = "the gateway's reject report is unreadable", payload, None
    try:
        report = json.loads(payload)
        if isinstance(report, dict) and isinstance(report.get("reason"), str):
            raw = str(report.get("raw_hex", "")).encode()
            reason = f"{report['reason']} (from {report.get('peer') or 'an unknown peer'})"
            code = report.get("station")
            station = code if isinstance(code, str) and code else None
    except (ValueError, RecursionError):  # not JSON: kept as it came
        pass
    rejection = Rejection(
        topic=topic,
        gateway=gateway,
        payload=raw,
        code=RejectionCode.GATEWAY_REFUSED,
        reason=reason,
        received_at=received_at,
        station=station,
    )
    return Verdict(gateway=gateway, rejections=[rejection])
