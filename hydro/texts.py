"""The words hydro itself puts in front of people, in one place that rules, notify, the API and
the store may all import: notices to the duty desk, the reminder prefix, the names of the roles.
Pure. (A rule's own message is its template, filled by ``hydro.rules.messages.render``.)
"""

from __future__ import annotations

from dataclasses import dataclass

from hydro.models import Channel, Notification, Role, mask_phone

# Put before a rule's message when an alert is still active after alerting.repeat_interval.
REMINDER_PREFIX = "【预警持续】"

# The four-colour warning scale as people read it.
SEVERITY_NAMES = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}

# How people name the recipients: 三个责任人, and the duty officers.
ROLE_NAMES = {
    Role.ADMINISTRATIVE: "行政责任人",
    Role.TECHNICAL: "技术责任人",
    Role.PATROL: "巡查责任人",
    Role.DUTY: "值班员",
    Role.CONTACT: "联系人",
    Role.LEADER: "带班领导",
    Role.COUNTY: "县防汛负责人",
    Role.PREFECTURE: "市州防汛负责人",
}


def delivery_failure_notice(notification: Notification, reason: str) -> str:
    """To the duty officers: somebody did not get what hydro sent them and must be phoned. Says
    who by their role's name, the station where there is one, and whether it was an alert's."""
    to = notification.recipient
    voice = notification.channel is Channel.VOICE
    failed, what = ("电话呼叫失败", "电话") if voice else ("短信发送失败", "短信")
    about = "预警" if notification.alert_id is not None else ""
    where = f"测站{notification.station}的" if notification.station else ""
    return (
        f"hydro{failed}: {where}{ROLE_NAMES[to.role]}{to.name}({mask_phone(to.phone)})"
        f"未能收到{about}{what},原因: {reason}。请电话通知。"
    )


def undelivered_notice(notification: Notification, status: str, error_code: str | None) -> str:
    """The provider accepted an SMS but the carrier could not deliver it."""
    reason = f"运营商回执{status}" + (f"(错误码{error_code})" if error_code else "")
    return delivery_failure_notice(notification, reason)


# GSM 03.38: the default alphabet, one septet each, and its extension table, two septets each
# (an escape and the character). Any other character sends the whole message as UCS-2.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class SmsLength:
    """What a text costs as SMS: its encoding, its length in that encoding's units (septets for
    GSM-7, UTF-16 code units for UCS-2) and the number of segments a phone receives."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int
    segments: int


def sms_length(text: str) -> SmsLength:
    """Counts as carriers do: 160 septets or 70 UCS-2 units fit one SMS; a longer text is sent
    in segments of 153 or 67, the rest of each taken by the header that joins them. Chinese
    text is always UCS-2, where a character outside the BMP (an emoji) takes two units."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        units = sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    segments = 0 if units == 0 else 1 if units <= single else -(-units // part)
    return SmsLength(encoding, units, segments)


# 叫应: how a personal confirmation link ends an SMS, and what the ladder says beyond the rule's
# own message.
MAX_SEGMENTS = 2  # what an alert SMS with its link is kept within
_LINK_MARK = " 确认"  # short: the longest default red message and a link fit two SMS
ESCALATION_PREFIX = "【无人叫应】"


def with_link(text: str, url: str) -> str:
    """The SMS with the person's confirmation link at its end."""
    return f"{text}{_LINK_MARK}{url}"


def without_link(text: str) -> str:
    """What a call speaks of an SMS: its text without the link."""
    return text.split(_LINK_MARK, 1)[0]


def escalation_sms(message: str, url: str | None = None) -> str:
    """To a county's 防汛负责人 or the duty desk: the alert nobody at the station answered, and
    their own link. Kept within two SMS by cutting the message clause by clause from its end
    (the instructions to the station's persons; who, where and how bad come first)."""
    text = without_link(message)
    while True:
        sms = ESCALATION_PREFIX + text + ("" if url is None else _LINK_MARK + url)
        if sms_length(sms).segments <= MAX_SEGMENTS or "," not in text:
            return sms
        text = text.rsplit(",", 1)[0]
