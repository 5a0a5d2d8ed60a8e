"""A local HTTP server that speaks Twilio's Messages API, for the real ``twilio`` client.

It answers POST /2010-04-01/Accounts/{sid}/Messages.json as Twilio does (201 with a message
resource, or an error body with status, code and message), after checking HTTP basic auth.
Tests script the answers and read what was asked. It can be slow (``answer_after``), hold
every answer until told (``pause``), or stop answering altogether (``stop_answering``): a
provider that takes a message and hangs.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
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


class FakeTwilio:
    def __init__(self) -> None:
        self.received: list[Received] = []
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
        signature = RequestValidator(AUTH_TOKEN).compute_signature(message.status_callback, fields)
        request = urllib.request.Request(
            message.status_callback,
            data=urlencode(fields).encode(),
            headers={"X-Twilio-Signature": signature if sign else "forged"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

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
                if self.path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
                    self._reply(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                message = Received(
                    form["To"][0],
                    form["From"][0],
                    form["Body"][0],
                    time.time(),
                    form.get("StatusCallback", [None])[0],
                )
                with fake._lock:
                    fake.received.append(message)
                if fake._hold():
                    return
                time.sleep(fake.answer_after)
                with fake._lock:
                    status, code = fake.answers.popleft() if fake.answers else (201, None)
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
