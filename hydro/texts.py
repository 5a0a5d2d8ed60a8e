"""The words hydro itself puts in front of people, in one place that rules, notify, the API and
the store may all import: notices to the duty desk, the reminder prefix, the names of the roles.
Pure. (A rule's own message is its template, filled by ``hydro.rules.messages.render``.)
"""

from __future__ import annotations

from hydro.models import Notification, Role, mask_phone

# Put before a rule's message when an alert is still active after alerting.repeat_interval.
REMINDER_PREFIX = "【预警持续】"

# How people name the recipients: 三个责任人, and the duty officers.
ROLE_NAMES = {
    Role.ADMINISTRATIVE: "行政责任人",
    Role.TECHNICAL: "技术责任人",
    Role.PATROL: "巡查责任人",
    Role.DUTY: "值班员",
}


def delivery_failure_notice(notification: Notification, reason: str) -> str:
    """To the duty officers: a responsible person did not get an alert and must be called."""
    to = notification.recipient
    return (
        f"hydro短信发送失败: 测站{notification.station or '-'}的{to.role}责任人{to.name}"
        f"({mask_phone(to.phone)})未能收到预警短信,原因: {reason}。请电话通知。"
    )


def undelivered_notice(notification: Notification, status: str, error_code: str | None) -> str:
    """The provider accepted an alert SMS but the carrier could not deliver it."""
    reason = f"运营商回执{status}" + (f"(错误码{error_code})" if error_code else "")
    return delivery_failure_notice(notification, reason)
