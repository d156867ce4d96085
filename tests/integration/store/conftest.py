"""Fixtures for the store tests: a real SQLite file, and PostgreSQL when it answers.

``store_url`` runs a test on SQLite and, when reachable, on PostgreSQL (env ``GEMBOT_TEST_POSTGRES_URL``,
default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``). PostgreSQL tests are skipped with the
reason when the server does not answer, unless ``GEMBOT_REQUIRE_SERVICES=1`` makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.store import Store, create_engine, upgrade_to_head

PG_URL = os.environ.get("GEMBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TABLES = (
    "turns",
    "conversations",
    "inbox",
    "llm_calls",
    "users",
    "audit",
    "quota_counters",
    "alembic_version",
)


@cache
def _postgres_unreachable_reason() -> str | None:
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


async def drop_all_postgres_tables(url: str) -> None:
    """Leave the PostgreSQL test database without any of gembot's tables."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE"))
    finally:
        await engine.dispose()


def sqlite_url(path: Path) -> str:
    """The aiosqlite URL of a database file."""
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """Where the test's SQLite database lives (inside a not-yet-existing directory)."""
    return tmp_path / "data" / "gembot.db"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def store_url(request: pytest.FixtureRequest, sqlite_file: Path) -> AsyncIterator[str]:
    """A database URL with no schema yet: a fresh SQLite file, or an emptied PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(sqlite_file)
        return
    reason = await asyncio.to_thread(_postgres_unreachable_reason)
    if reason is not None:
        if os.environ.get("GEMBOT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (GEMBOT_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    await drop_all_postgres_tables(PG_URL)
    yield PG_URL
    await drop_all_postgres_tables(PG_URL)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A migrated store on ``store_url``."""
    await upgrade_to_head(store_url)
    opened = await Store.open(store_url)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(sqlite_file: Path) -> AsyncIterator[Store]:
    """A migrated store on a SQLite file (for file-level checks)."""
    url = sqlite_url(sqlite_file)
    await upgrade_to_head(url)
    opened = await Store.open(url)
    yield opened
    await opened.close()
