"""Real PostgreSQL and Redis for tests: reachability (skip, or fail under GEMBOT_REQUIRE_SERVICES=1) and
an isolated PostgreSQL schema per test, so concurrent test runs on the shared ``test`` database never meet.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import pytest
from sqlalchemy import text

from bot.store import create_engine

PG_URL = os.environ.get("GEMBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GEMBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379")

QueryRows = Callable[..., list[tuple[Any, ...]]]
"""``query_rows(sql, **params)``: the rows of a query on the test's database (synchronous)."""


def require(reason: str | None) -> None:
    """Skip with ``reason`` when a service is missing; fail instead under GEMBOT_REQUIRE_SERVICES=1."""
    if reason is None:
        return
    if os.environ.get("GEMBOT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (GEMBOT_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@cache
def postgres_unreachable() -> str | None:
    """None when PostgreSQL answers, else why not."""

    async def probe() -> None:
        engine = create_engine(PG_URL)
        try:
            async with asyncio.timeout(5), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} unreachable: {type(exc).__name__}: {exc}"
    return None


@cache
def redis_unreachable() -> str | None:
    """None when Redis answers PING, else why not."""

    async def probe() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL)
        try:
            async with asyncio.timeout(5):
                await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"Redis at {REDIS_URL} unreachable: {type(exc).__name__}: {exc}"
    return None


def schema_url(schema: str) -> str:
    """The PostgreSQL test URL with gembot's tables in ``schema``."""
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}search_path={schema}"


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh, empty schema on the test database (dropped afterwards); yields the URL that uses it."""
    schema = f"gembot_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield schema_url(schema)
    finally:
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await engine.dispose()


async def _query(url: str, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql), params)).all()]
    finally:
        await engine.dispose()


def query_rows_on(url: str) -> QueryRows:
    """A synchronous query helper for ``url`` (run on a worker thread with its own event loop)."""
    import concurrent.futures

    def query(sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, _query(url, sql, params)).result(timeout=30)

    return query
