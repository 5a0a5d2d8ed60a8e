"""The FastAPI application and how it is served inside hydro's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from importlib import resources

import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from hydro.api import alerts, calls, confirm, duty, operations, sms, stations
from hydro.api.calls import TWILIO_CALL_STATUS_PATH, TWILIO_GATHER_PATH
from hydro.api.context import ApiContext
from hydro.api.middleware import BoundBodies, Compress, SecurityHeaders
from hydro.api.operations import TWILIO_STATUS_PATH
from hydro.errors import ConfigError, Problem, StorageUnavailable

__all__ = [
    "TWILIO_CALL_STATUS_PATH",
    "TWILIO_GATHER_PATH",
    "TWILIO_STATUS_PATH",
    "create_api",
    "listen",
    "serve",
]

log = logging.getLogger(__name__)
_WEB = resources.files("hydro.api") / "web"
_TWILIO_MAX_BODY = 64 * 1024  # a status callback or key press is about 1 kB


def create_api(context: ApiContext) -> FastAPI:
    api = FastAPI(
        title="hydro",
        summary="Flood monitoring: stations, readings, alerts and SMS delivery",
        version="1",
        description="Every /api/v1 endpoint needs `Authorization: Bearer <token>` (roles viewer,"
        " operator, admin; HYDRO_API__TOKENS). /healthz, /readyz, /metrics and the signed Twilio"
        " webhook do not.",
    )
    api.state.context = context
    api.state.link_limit = confirm.RateLimit(context.link_tries_per_minute)
    api.add_middleware(_RefuseNul)
    api.add_middleware(
        BoundBodies,
        limit=context.max_body_bytes,
        by_path=dict.fromkeys(
            (TWILIO_STATUS_PATH, TWILIO_GATHER_PATH, TWILIO_CALL_STATUS_PATH), _TWILIO_MAX_BODY
        ),
    )
    # Level 6: the 3.3 MB list of 7,000 stations to 241 kB in 34 ms (level 9: 230 kB in 67 ms;
    # level 1: 314 kB in 15 ms); Starlette compresses bodies over 128 kB in a worker thread.
    # A month of raw readings (740 kB): level 6 to 226 kB in 40-70 ms, level 1 to 243 kB in 13.
    api.add_middleware(Compress, minimum_size=1024, level=6, fast_paths=stations.SERIES_PATHS)
    docs = (api.docs_url, api.redoc_url, api.swagger_ui_oauth2_redirect_url)
    api.add_middleware(SecurityHeaders, docs_paths={path for path in docs if path})
    api.add_exception_handler(StorageUnavailable, _database_unavailable)
    api.add_exception_handler(RequestValidationError, _invalid_request)
    api.include_router(stations.router)
    api.include_router(alerts.router)
    api.include_router(operations.router)
    api.include_router(sms.router)
    api.include_router(duty.router)
    api.include_router(calls.router)
    api.include_router(confirm.router)
    web = str(_WEB)
    api.mount("/static", StaticFiles(directory=web), name="static")

    @api.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(f"{web}/index.html", headers={"Cache-Control": "no-cache"})

    return api


class _RefuseNul:
    """PostgreSQL text cannot hold NUL: a request with one is refused before any handler runs."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            response = JSONResponse({"detail": "NUL characters are not allowed"}, status_code=400)
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without the refused input: a JSON string may carry half a surrogate pair,
    which no UTF-8 answer can echo (FastAPI's own handler then fails with a 500)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("api: %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


class _Server(uvicorn.Server):
    """uvicorn inside hydro's loop: hydro owns the signals and stops every part together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """Binds before anything else starts, so a taken port stops start-up with its name."""
    try:
        listener = socket.create_server((host, port))
    except OSError as exc:
        raise ConfigError(
            [Problem("api", f"cannot listen on {host}:{port} (api.host, api.port): {exc.strerror}")]
        ) from exc
    # Accepted connections inherit this on Linux. asyncio sets it only on sockets it made with
    # proto IPPROTO_TCP, and create_server's have proto 0: without it, delayed ACKs add 40 ms
    # to every response written in two parts (headers, body).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.setblocking(False)
    return listener


async def serve(api: FastAPI, listener: socket.socket, stop: asyncio.Event) -> None:
    """Serves on ``listener`` until ``stop`` is set, then lets open requests finish (5 s)."""
    host, port = listener.getsockname()[:2]
    server = _Server(
        uvicorn.Config(
            api, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    log.info("api: web page and API at http://%s:%d/", host, port)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    server.should_exit = True
    await task
