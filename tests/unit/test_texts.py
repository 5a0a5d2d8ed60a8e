"""Texts people read: SMS length as carriers count it (encoding, units and segments), and what
the duty officers are told when a message did not reach somebody."""

from __future__ import annotations

import pytest

from hydro.models import Channel, Notification, Recipient, Role
from hydro.texts import SmsLength, delivery_failure_notice, sms_length

MAICHONG = (
    "黔东南州台江县麦冲水库5月7日8时0分水位达到771.54米,超正常水位0.04米,"
    "请及时复核并提醒相关责任人戒备,注意防范"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsLength("GSM-7", 0, 0)),
        ("a" * 160, SmsLength("GSM-7", 160, 1)),
        ("a" * 161, SmsLength("GSM-7", 161, 2)),
        ("a" * 306, SmsLength("GSM-7", 306, 2)),
        ("a" * 307, SmsLength("GSM-7", 307, 3)),
        ("€" * 80, SmsLength("GSM-7", 160, 1)),  # the extension table costs two septets
        ("€" * 81, SmsLength("GSM-7", 162, 2)),
        ("水" * 70, SmsLength("UCS-2", 70, 1)),
        ("水" * 71, SmsLength("UCS-2", 71, 2)),
        ("水" * 134, SmsLength("UCS-2", 134, 2)),
        ("水" * 135, SmsLength("UCS-2", 135, 3)),
        ("a" * 69 + "水", SmsLength("UCS-2", 70, 1)),  # one Chinese character: all UCS-2
        ("🌊" * 35, SmsLength("UCS-2", 70, 1)),  # outside the BMP: two units each
        ("🌊" * 36, SmsLength("UCS-2", 72, 2)),
    ],
)
def test_sms_length(text: str, expected: SmsLength) -> None:
    assert sms_length(text) == expected


def test_the_reference_alert_is_one_segment() -> None:
    assert sms_length(MAICHONG) == SmsLength("UCS-2", 62, 1)


PATROL = Recipient(Role.PATROL, "王五", "+8613800000003")
CONTACT = Recipient(Role.CONTACT, "赵六", "+8613800000004")


@pytest.mark.parametrize(
    ("notification", "expected"),
    [
        (
            Notification(PATROL, "...", station="67901001", alert_id=7),
            "hydro短信发送失败: 测站67901001的巡查责任人王五(**********0003)未能收到预警短信,"
            "原因: HTTP 400。请电话通知。",
        ),
        (
            Notification(PATROL, "...", Channel.VOICE, station="67901001", alert_id=7),
            "hydro电话呼叫失败: 测站67901001的巡查责任人王五(**********0003)未能收到预警电话,"
            "原因: HTTP 400。请电话通知。",
        ),
        # a message from the duty desk, about no alert and no one station
        (
            Notification(CONTACT, "..."),
            "hydro短信发送失败: 联系人赵六(**********0004)未能收到短信,"
            "原因: HTTP 400。请电话通知。",
        ),
    ],
)
def test_the_duty_officers_are_told_who_missed_what(
    notification: Notification, expected: str
) -> None:
    assert delivery_failure_notice(notification, "HTTP 400") == expected
