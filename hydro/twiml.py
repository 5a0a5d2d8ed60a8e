"""What a voice call says (叫应), as TwiML: the alert in Mandarin and a request to press 1.

Pure. Alert text goes into the XML only through twilio's builder, which escapes it: a station
named ``<&>`` is spoken, never read as markup. The provider places a call with
:func:`call_script`; the key-press webhook answers with :func:`ask_again`, :func:`thanks` or
:func:`goodbye`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

PRESS_1 = "请按1确认收到。"  # asked after the alert
THANKS = "已确认,谢谢。"
NOT_1 = "您按的不是1。"
NO_ANSWER = "未收到确认,再见。"
GATHER_SECONDS = 8  # how long a Gather waits for the key after it has finished speaking


@dataclass(frozen=True, slots=True)
class Speech:
    """How Twilio speaks: ``language`` as its <Say> takes it, ``voice`` None for the account's
    default voice of that language."""

    language: str = "cmn-CN"
    voice: str | None = None


MANDARIN = Speech()  # the account's default Mandarin voice


def gather_url(webhook: str, outbox_id: int | None, attempt: int) -> str:
    """Where a Gather posts the key: the key-press webhook (no query) with the call's outbox row,
    which a key pressed before the call's SID is recorded still finds, and which chance it is."""
    return f"{webhook}?{urlencode({'outbox': outbox_id, 'try': attempt})}"


def call_script(text: str, gather_url: str, speech: Speech) -> str:
    """The alert and the request to press 1, said twice if nothing is pressed; then goodbye.
    A key press is posted to ``gather_url``."""
    response = VoiceResponse()
    for _ in range(2):
        response.append(_gather(gather_url, speech, text, PRESS_1))
    _say(response, speech, NO_ANSWER)
    response.hangup()
    return str(response)


def ask_again(gather_url: str, speech: Speech) -> str:
    """After a key other than 1: one more chance, then goodbye."""
    response = VoiceResponse()
    response.append(_gather(gather_url, speech, NOT_1, PRESS_1))
    _say(response, speech, NO_ANSWER)
    response.hangup()
    return str(response)


def thanks(speech: Speech) -> str:
    return _said(speech, THANKS)


def goodbye(speech: Speech) -> str:
    return _said(speech, NO_ANSWER)


def _said(speech: Speech, text: str) -> str:
    response = VoiceResponse()
    _say(response, speech, text)
    response.hangup()
    return str(response)


def _gather(url: str, speech: Speech, *texts: str) -> Gather:
    gather = Gather(num_digits=1, action=url, method="POST", timeout=GATHER_SECONDS)
    for text in texts:
        _say(gather, speech, text)
    return gather


def _say(verb: VoiceResponse | Gather, speech: Speech, text: str) -> None:
    # twilio's builder leaves out an attribute given as None: no voice named (None or ""), the
    # account's default one.
    verb.say(text, language=speech.language, voice=speech.voice or None)
