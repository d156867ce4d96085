"""Fixtures for the store tests: a real SQLite file, and PostgreSQL when it answers.

``store_url`` runs a test on SQLite and, when reachable, on PostgreSQL (env ``GEMBOT_TEST_POSTGRES_URL``,
default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``). PostgreSQL tests are skipped with the
reason when the server does not answer, unless ``GEMBOT_REQUIRE_SERVICES=1`` makes that a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Store, upgrade_to_head
from tests.services import postgres_schema, postgres_unreachable, require


def sqlite_url(path: Path) -> str:
    """The aiosqlite URL of a database file."""
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """Where the test's SQLite database lives (inside a not-yet-existing directory)."""
    return tmp_path / "data" / "gembot.db"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def store_url(request: pytest.FixtureRequest, sqlite_file: Path) -> AsyncIterator[str]:
    """A database URL with no schema yet: a fresh SQLite file, or a fresh PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield sqlite_url(sqlite_file)
        return
    require(await asyncio.to_thread(postgres_unreachable))
    async with postgres_schema() as url:
        yield url


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
