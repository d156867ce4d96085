"""The transport under the shared HTTP clients (Gemini, the Telegram Bot API): aiohttp's pool under httpx,
failing with the httpx errors callers classify."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from bot.transport import pooled_transport

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_concurrent_requests_share_at_most_max_connections(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    peers: set[int] = set()
    in_flight = 0
    most = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername")[1])
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.Response(text="ok")

    url = await serve(slow)
    async with httpx.AsyncClient(transport=pooled_transport(max_connections=4)) as client:
        responses = await asyncio.gather(*(client.get(url) for _ in range(16)))
        assert [r.text for r in responses] == ["ok"] * 16
        again = await client.get(url)
    assert again.status_code == 200
    assert most == 4
    assert len(peers) == 4  # connections kept and reused, never more than the limit


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(transport=pooled_transport(max_connections=2)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_a_body_cut_off_is_a_protocol_error(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"only part of it")
        assert request.transport is not None
        request.transport.abort()
        return response

    url = await serve(cut)
    async with httpx.AsyncClient(transport=pooled_transport(max_connections=2)) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            async with client.stream("GET", url) as response:
                await response.aread()


async def test_no_answer_in_time_is_a_read_timeout(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def silent(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    url = await serve(silent)
    async with httpx.AsyncClient(transport=pooled_transport(max_connections=2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=httpx.Timeout(5.0, read=0.2))
