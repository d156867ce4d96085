"""The sharded transport under the shared HTTP clients (Gemini, the Telegram Bot API)."""

from __future__ import annotations

import asyncio

import httpx
from aiohttp import web

from bot.transport import ShardedTransport


async def test_requests_spread_over_shards_and_release_when_read() -> None:
    gate = asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    transport = ShardedTransport(max_connections=8, shard_size=2)
    assert transport.shard_count == 4
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            pending = [asyncio.create_task(client.get(f"http://127.0.0.1:{port}/")) for _ in range(8)]
            await asyncio.sleep(0.3)
            assert transport.busy == (2, 2, 2, 2)
            gate.set()
            responses = await asyncio.gather(*pending)
            assert [r.text for r in responses] == ["ok"] * 8
            assert transport.busy == (0, 0, 0, 0)
            async with client.stream("GET", f"http://127.0.0.1:{port}/") as streamed:
                assert sum(transport.busy) == 1
                await streamed.aread()
            assert sum(transport.busy) == 0
    finally:
        await runner.cleanup()
