"""/healthz and /readyz: 200 when the database and every adapter check are up, else 503 with the reason."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import bot.server
from bot.app import App
from bot.server import HttpServer
from bot.store import Store
from tests.integration.ops.conftest import Served


async def test_healthz_and_readyz_answer_200_when_everything_is_up(served: Served) -> None:
    assert await served.get("/healthz") == (200, "ok\n")
    served.server.add_readiness_check("telegram", _up)
    assert await served.get("/readyz") == (200, "ready\n")


async def test_readyz_is_503_when_the_database_file_is_gone(served: Served, db_path: Path) -> None:
    assert (await served.get("/readyz"))[0] == 200
    shutil.rmtree(db_path.parent)  # the volume holding the SQLite file disappears
    status, body = await served.get("/readyz")
    assert status == 503
    assert body.startswith("not ready: database: ")
    assert "missing" in body
    assert (await served.get("/healthz"))[0] == 200  # alive, but not ready


async def test_readyz_is_503_when_the_database_does_not_answer(served: Served) -> None:
    async def unreachable() -> bool:
        return False

    served.app.store.database.ping = unreachable  # type: ignore[method-assign]
    status, body = await served.get("/readyz")
    assert (status, body) == (503, "not ready: database: unreachable\n")


async def test_readyz_is_503_when_the_database_server_is_unreachable(served: Served) -> None:
    # A real store on a PostgreSQL URL where nothing listens (port 9, discard): the ping fails.
    store = await Store.open("postgresql+asyncpg://gembot@127.0.0.1:9/gembot")
    server = HttpServer(served.app.settings.server, served.app.metrics, store.database)
    await server.start()
    try:
        async with served.session.get(f"http://127.0.0.1:{server.port}/readyz") as response:
            assert response.status == 503
            assert await response.text() == "not ready: database: unreachable\n"
    finally:
        await server.stop()
        await store.close()


async def test_readyz_reports_each_adapter_that_is_down(served: Served) -> None:
    served.server.add_readiness_check("telegram", _up)
    served.server.add_readiness_check("slack", _down)
    status, body = await served.get("/readyz")
    assert (status, body) == (503, "not ready: slack: socket mode disconnected\n")

    async def broken() -> str | None:
        raise RuntimeError("boom")

    served.server.add_readiness_check("telegram", broken)
    status, body = await served.get("/readyz")
    assert status == 503
    assert body == "not ready: telegram: check failed (RuntimeError); slack: socket mode disconnected\n"


async def test_a_hanging_check_makes_readyz_503_within_the_timeout(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hangs() -> str | None:
        await asyncio.sleep(60)
        return None

    monkeypatch.setattr(bot.server, "CHECK_TIMEOUT_S", 0.2)
    served.server.add_readiness_check("slack", hangs)
    status, body = await asyncio.wait_for(served.get("/readyz"), 5)
    assert status == 503
    assert body == "not ready: slack: no answer within 0.2s\n"


async def _up() -> str | None:
    return None


async def _down() -> str | None:
    return "socket mode disconnected"


async def test_readyz_is_503_while_the_rate_limit_redis_does_not_answer(app_factory: Any) -> None:
    # Messages would all fail at the rate limiter: the replica must leave the load balancer.
    app: App = await app_factory(rate_limits={"storage": "redis://127.0.0.1:9/0", "per_user": "5/minute"})
    server = HttpServer(app.settings.server, app.metrics, app.store.database)
    server.add_readiness_check("rate_limits", app.rate_limit_storage_problem)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{server.port}/readyz") as response,
        ):
            assert response.status == 503
            assert (await response.text()).startswith("not ready: rate_limits: ")
    finally:
        await server.stop()


async def test_readyz_counts_a_memory_rate_limit_storage_as_up(served: Served) -> None:
    served.server.add_readiness_check("rate_limits", served.app.rate_limit_storage_problem)
    assert await served.get("/readyz") == (200, "ready\n")
