"""A local HTTP server that speaks Twilio's Messages API, for the real ``twilio`` client.

It answers POST /2010-04-01/Accounts/{sid}/Messages.json as Twilio does (201 with a message
resource, or an error body with status, code and message), after checking HTTP basic auth.
Tests script the answers and read what was asked.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"


@dataclass(frozen=True)
class Received:
    to: str
    sender: str
    body: str
    at: float  # time.time() when the request arrived


class FakeTwilio:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[tuple[int, int | None]] = deque()  # (status, twilio error code)
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

    def __enter__(self) -> FakeTwilio:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
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
                message = Received(form["To"][0], form["From"][0], form["Body"][0], time.time())
                with fake._lock:
                    fake.received.append(message)
                    status, code = fake.answers.popleft() if fake.answers else (201, None)
                if status == 201:
                    sid = "SM" + secrets.token_hex(16)
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
