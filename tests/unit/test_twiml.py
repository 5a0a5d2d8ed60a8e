"""What a call says: TwiML built by twilio's builder, alert text escaped, never markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hydro.twiml import MANDARIN, Speech, ask_again, call_script, goodbye, thanks

URL = "https://hydro.example.org/api/v1/twilio/gather?outbox=7&try=1"


def test_a_station_named_with_markup_is_spoken_not_parsed() -> None:
    text = '测站<&>"水库"</Say><Hangup/>水位超警'
    twiml = call_script(text, URL, MANDARIN)
    assert "<Hangup/>水位" not in twiml
    assert "测站&lt;&amp;&gt;" in twiml
    script = ET.fromstring(twiml)
    gathers = script.findall("Gather")
    assert [next(s.text for s in g.iter("Say")) for g in gathers] == [text, text]
    assert [child.tag for child in script] == ["Gather", "Gather", "Say", "Hangup"]
    assert {g.attrib["action"] for g in gathers} == {URL}


def test_the_voice_is_named_only_when_configured() -> None:
    plain = ET.fromstring(thanks(MANDARIN)).find("Say")
    assert plain is not None
    assert plain.attrib == {"language": "cmn-CN"}
    assert plain.text == "已确认,谢谢。"
    zhiyu = ET.fromstring(goodbye(Speech("cmn-CN", "Polly.Zhiyu"))).find("Say")
    assert zhiyu is not None
    assert zhiyu.attrib == {"language": "cmn-CN", "voice": "Polly.Zhiyu"}


def test_asked_again_once_then_goodbye() -> None:
    again = ET.fromstring(ask_again(URL, MANDARIN))
    assert [child.tag for child in again] == ["Gather", "Say", "Hangup"]
    gather = again.find("Gather")
    assert gather is not None
    assert gather.attrib["numDigits"] == "1"
    assert [s.text for s in gather.iter("Say")] == ["您按的不是1。", "请按1确认收到。"]
