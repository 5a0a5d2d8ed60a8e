"""What every request and response passes through: body limits, compression and security
headers.

Plain ASGI, so a body is refused before any handler (or FastAPI's form parser) reads it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from fastapi import HTTPException
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The web page loads only its own files (uPlot is vendored) and has no inline script or style;
# the daily report it shows in a sandboxed srcdoc frame inherits this policy.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
    " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load Swagger UI and ReDoc from jsDelivr and start them inline.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net;"
    " style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com;"
    " font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com"
    " https://cdn.jsdelivr.net; worker-src blob:; connect-src 'self'; object-src 'none';"
    " base-uri 'none'; frame-ancestors 'none'"
)
_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Compress:
    """gzip at the level each answer pays for. Names and repeated keys (the station list) shrink
    a third more at level 6 than at 1; a series is mostly digits, which no level packs much
    tighter, so its paths take level 1: five times faster for a few percent more bytes."""

    def __init__(
        self, app: ASGIApp, *, minimum_size: int, level: int, fast_paths: re.Pattern[str]
    ) -> None:
        self._default = GZipMiddleware(app, minimum_size, compresslevel=level)
        self._fast = GZipMiddleware(app, minimum_size, compresslevel=1)
        self._fast_paths = fast_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = scope["type"] == "http" and self._fast_paths.fullmatch(scope["path"])
        await (self._fast if fast else self._default)(scope, receive, send)


class SecurityHeaders:
    """Adds the headers a browser needs to keep the page to itself; API answers (tokens, phone
    numbers, alerts) are not stored by browsers or proxies unless a route says otherwise."""

    def __init__(self, app: ASGIApp, *, docs_paths: Collection[str]) -> None:
        self._app = app
        self._docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        policy = DOCS_POLICY if path in self._docs_paths else PAGE_POLICY

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _ALWAYS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", policy)
                if path.startswith("/api/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self._app(scope, receive, with_headers)


class BoundBodies:
    """Refuses a request body larger than its path's limit with 413: from Content-Length before
    reading anything, else (chunked) as soon as the bytes received pass the limit. The answer
    closes the connection, so the rest of the body is never read either."""

    def __init__(self, app: ASGIApp, *, limit: int, by_path: Mapping[str, int]) -> None:
        self._app = app
        self._limit = limit
        self._by_path = {path: min(limit, bound) for path, bound in by_path.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._by_path.get(scope["path"], self._limit)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI's body parsing passes HTTPException on; its handler answers.
                    raise HTTPException(413, _too_large_text(limit), {"Connection": "close"})
            return message

        await self._app(scope, counted, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": _too_large_text(limit)}, status_code=413, headers={"Connection": "close"}
    )


def _too_large_text(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"
