"""A local HTTP server that speaks Twilio's Messages and Calls APIs, for the real ``twilio`` client.

It answers POST /2010-04-01/Accounts/{sid}/Messages.json and .../Calls.json as Twilio does (201
with a message or call resource, or an error body with status, code and message), after checking
HTTP basic auth. Tests script the answers and read what was asked. It can be slow
(``answer_after``), hold every answer until told (``pause``), or stop answering altogether
(``stop_answering``): a provider that takes a request and hangs. For a call, tests play the
person and the network as Twilio would: press keys at the Gather action of the call's TwiML
(:meth:`FakeTwilio.press`) and report how the call ended (:meth:`FakeTwilio.report_call`), both
signed with the auth token as Twilio signs its webhooks.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"


@dataclass
class Received:
    to: str
    sender: str
    body: str
    at: float  # time.time() when the request arrived
    status_callback: str | None = None
    sid: str | None = None  # set when the message was accepted


@dataclass
class PlacedCall(Received):
    """A call: its ``body`` is the TwiML script, its ``sid`` set when the call was accepted."""

    status_events: list[str] = field(default_factory=list)

    @property
    def twiml(self) -> str:
        return self.body

    def gather_url(self, twiml: str | None = None) -> str:
        """Where the first <Gather> of ``twiml`` (default: the call's own) posts the keys."""
        gather = ET.fromstring(twiml or self.twiml).find(".//Gather")
        assert gather is not None, "no <Gather> in the TwiML"
        return gather.attrib["action"]


class FakeTwilio:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.calls: list[PlacedCall] = []
        self.answers: deque[tuple[int, int | None]] = deque()  # (status, twilio error code)
        self.answer_after = 0.0  # seconds between a request's arrival and its answer
        self._answering = threading.Event()
        self._answering.set()
        self._drop_held = False
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def environment(self) -> dict[str, str]:
        """What ``hydro run`` needs in its environment to send through this server."""
        return {
            "HYDRO_SMS__TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "HYDRO_SMS__TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "HYDRO_SMS__TWILIO_FROM": "+15005550006",
            "HYDRO_SMS__TWILIO_BASE_URL": self.base_url,
        }

    def sms_section(self, **more: object) -> dict[str, object]:
        """The config's sms section for sending through this server, with ``more`` in it."""
        return {
            "provider": "twilio",
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from": "+15005550006",
            "twilio_base_url": self.base_url,
            **more,
        }

    def stop_answering(self) -> None:
        """From now on requests are taken (counted in ``received``) but never answered: each
        connection is held open until ``answer_again`` or the end, then closed without a word."""
        self._drop_held = True
        self._answering.clear()

    def pause(self) -> None:
        """From now on requests are taken and their answers held until ``answer_again``."""
        self._drop_held = False
        self._answering.clear()

    def answer_again(self) -> None:
        self._answering.set()

    def _hold(self) -> bool:
        """Waits while the server is not answering; True when this request must go unanswered."""
        if self._answering.is_set():
            return False
        drop = self._drop_held
        while not self._answering.wait(0.05) and not self._closing.is_set():
            pass
        return drop or self._closing.is_set()

    def report_status(
        self, message: Received, status: str, error_code: str | None = None, *, sign: bool = True
    ) -> int:
        """Calls the message's StatusCallback as Twilio does: a form POST signed with the auth
        token (X-Twilio-Signature over the URL and the sorted fields). Returns the HTTP status."""
        assert message.status_callback, "the message asked for no receipts"
        assert message.sid, "the message was not accepted"
        fields = {
            "AccountSid": ACCOUNT_SID,
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message.to,
            "From": message.sender,
            "ApiVersion": "2010-04-01",
        }
        if error_code is not None:
            fields["ErrorCode"] = error_code
        return _post_signed(message.status_callback, fields, sign)[0]

    def press(
        self, call: PlacedCall, digits: str, *, url: str | None = None, sign: bool = True
    ) -> tuple[int, str]:
        """The called person presses ``digits``: Twilio posts them to the Gather action of the
        call's TwiML (or ``url``, the action of TwiML a webhook answered). Returns the HTTP
        status and the TwiML that came back."""
        assert call.sid, "the call was not accepted"
        fields = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": call.sid,
            "Digits": digits,
            "FinishedOnKey": "",
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "To": call.to,
            "From": call.sender,
            "ApiVersion": "2010-04-01",
        }
        return _post_signed(url or call.gather_url(), fields, sign)

    def report_call(
        self, call: PlacedCall, status: str, *, sid: str | None = None, sign: bool = True
    ) -> int:
        """Twilio's call status callback for the call's end (completed, busy, no-answer, failed,
        canceled); ``sid`` replaces the call's own. Returns the HTTP status."""
        assert call.status_callback, "the call asked for no status"
        assert call.sid, "the call was not accepted"
        fields = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": sid or call.sid,
            "CallStatus": status,
            "CallDuration": "12" if status == "completed" else "0",
            "CallbackSource": "call-progress-events",
            "Direction": "outbound-api",
            "To": call.to,
            "From": call.sender,
            "ApiVersion": "2010-04-01",
        }
        return _post_signed(call.status_callback, fields, sign)[0]

    def __enter__(self) -> FakeTwilio:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                expected = (
                    "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                )
                if self.headers.get("Authorization") != expected:
                    self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                account = f"/2010-04-01/Accounts/{ACCOUNT_SID}"
                if self.path not in {f"{account}/Messages.json", f"{account}/Calls.json"}:
                    self._reply(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if self.path.endswith("/Calls.json"):
                    self._call(form)
                    return
                message = Received(*_arrived(form, "Body"))
                with fake._lock:
                    fake.received.append(message)
                status, code = self._scripted()
                if status is None:
                    return
                if status == 201:
                    sid = message.sid = "SM" + secrets.token_hex(16)
                    self._reply(
                        201,
                        {
                            "sid": sid,
                            "account_sid": ACCOUNT_SID,
                            "to": message.to,
                            "from": message.sender,
                            "body": message.body,
                            "status": "queued",
                            "num_segments": "1",
                            "direction": "outbound-api",
                            "api_version": "2010-04-01",
                            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
                        },
                    )
                else:
                    self._fail(status, code)

            def _call(self, form: dict[str, list[str]]) -> None:
                call = PlacedCall(
                    *_arrived(form, "Twiml"), status_events=form.get("StatusCallbackEvent", [])
                )
                with fake._lock:
                    fake.calls.append(call)
                status, code = self._scripted()
                if status is None:
                    return
                if status != 201:
                    self._fail(status, code)
                    return
                sid = call.sid = "CA" + secrets.token_hex(16)
                self._reply(
                    201,
                    {
                        "sid": sid,
                        "account_sid": ACCOUNT_SID,
                        "to": call.to,
                        "from": call.sender,
                        "status": "queued",
                        "direction": "outbound-api",
                        "api_version": "2010-04-01",
                        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json",
                    },
                )

            def _scripted(self) -> tuple[int | None, int | None]:
                """The scripted answer, after holding and waiting as told; (None, None) when
                the request must go unanswered."""
                if fake._hold():
                    return None, None
                time.sleep(fake.answer_after)
                with fake._lock:
                    return fake.answers.popleft() if fake.answers else (201, None)

            def _fail(self, status: int, code: int | None) -> None:
                self._reply(
                    status,
                    {
                        "code": code,
                        "message": f"scripted failure {code}",
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status,
                    },
                )

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read ``received`` instead."""

        return Handler


def _post_signed(url: str, fields: dict[str, str], sign: bool) -> tuple[int, str]:
    """A form POST as Twilio makes its webhooks: X-Twilio-Signature over the URL and the sorted
    fields with the auth token ("forged" when not ``sign``). The HTTP status and the body."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, fields)
    request = urllib.request.Request(
        url,
        data=urlencode(fields).encode(),
        headers={"X-Twilio-Signature": signature if sign else "forged"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _arrived(form: dict[str, list[str]], text: str) -> tuple[str, str, str, float, str | None]:
    """The fields of a message or call request as it arrived now; ``text``: its body's key."""
    return (
        form["To"][0],
        form["From"][0],
        form[text][0],
        time.time(),
        form.get("StatusCallback", [None])[0],
    )
