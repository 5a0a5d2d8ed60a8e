"""Which gzip level an answer gets (hydro.api.middleware.Compress): the level is in the gzip
header's XFL byte (RFC 1952: 4 the fastest, 0 the levels between)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hydro.api.middleware import Compress
from hydro.api.stations import SERIES_PATHS

BODY = b"[" + b",".join(b"%d.125" % n for n in range(2000)) + b"]"


async def _digits(request: Request) -> Response:
    return Response(BODY)


async def _answers(paths: list[str]) -> list[tuple[str | None, int, bytes]]:
    """Per path: Content-Encoding, the XFL byte as sent, the body as httpx decodes it."""
    app = Starlette(routes=[Route("/{path:path}", _digits)])
    app.add_middleware(Compress, minimum_size=1024, level=6, fast_paths=SERIES_PATHS)
    found = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        for path in paths:
            async with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as answer:
                raw = b"".join([part async for part in answer.aiter_raw()])
            decoded = (await client.get(path, headers={"Accept-Encoding": "gzip"})).content
            found.append((answer.headers.get("content-encoding"), raw[8], decoded))
    return found


def test_a_series_is_compressed_fast_and_everything_else_tighter() -> None:
    series = "/api/v1/stations/61000100/readings"
    others = ["/api/v1/stations", f"{series}/manual", "/api/v1/stations/61000100"]
    answers = asyncio.run(_answers([series, *others]))
    assert [(encoding, flags) for encoding, flags, _ in answers] == [("gzip", 4)] + [
        ("gzip", 0)
    ] * len(others)
    assert all(decoded == BODY for _, _, decoded in answers)
    assert SERIES_PATHS.fullmatch("/api/v1/stations/a/b/readings") is None
