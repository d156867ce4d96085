"""Every engine test runs on SQLite and on PostgreSQL.

``db_url`` is a fresh SQLite file, or a fresh schema of its own on the PostgreSQL test database (so
concurrent test runs never collide); ``make_settings`` (and through it ``app_factory``) points the
storage at it. PostgreSQL tests skip with the reason when the server does not answer, unless
``GEMBOT_REQUIRE_SERVICES=1`` makes that a failure. ``query_rows`` reads the test's database on either.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import settings_from_mapping
from tests.conftest import SettingsFactory, base_config, deep_merge
from tests.fakes.gemini import GeminiEmulator
from tests.services import QueryRows, postgres_schema, postgres_unreachable, query_rows_on, require


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def db_url(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[str]:
    """The database of the test: a SQLite file, or an empty PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{db_path}"
        return
    require(await asyncio.to_thread(postgres_unreachable))
    async with postgres_schema() as url:
        yield url


@pytest.fixture
def make_settings(db_url: str, db_path: Path, gemini: GeminiEmulator) -> SettingsFactory:
    """Settings on the emulator and the test's database (SQLite or PostgreSQL), with overrides."""

    def factory(**overrides: Any) -> Any:
        config = deep_merge(base_config(db_path, gemini.base_url), {"storage": {"url": db_url}})
        return settings_from_mapping(deep_merge(config, overrides), env={})

    return factory


@pytest.fixture
def query_rows(db_url: str) -> QueryRows:
    """Run a query on the test's database and return its rows (plain tuples)."""
    return query_rows_on(db_url)
