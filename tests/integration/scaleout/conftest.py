"""Several Apps (replicas) on one PostgreSQL schema and one Redis: real services, skipped with the reason
when they do not answer, a failure under ``GEMBOT_REQUIRE_SERVICES=1``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.config import settings_from_mapping
from tests.conftest import base_config, deep_merge
from tests.fakes.gemini import GeminiEmulator
from tests.services import REDIS_URL, postgres_schema, postgres_unreachable, redis_unreachable, require

pytestmark = pytest.mark.services

ReplicaFactory = Callable[..., Any]


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """An empty schema of its own on the PostgreSQL test database."""
    require(await asyncio.to_thread(postgres_unreachable))
    async with postgres_schema() as url:
        yield url


@pytest.fixture
async def redis_url() -> str:
    """The Redis every replica of the test shares."""
    require(await asyncio.to_thread(redis_unreachable))
    return REDIS_URL


@pytest.fixture
async def replicas(
    pg_url: str, redis_url: str, gemini: GeminiEmulator, tmp_path: Path
) -> AsyncIterator[ReplicaFactory]:
    """Create Apps on the same database and Redis (rate-limit keys unique to the test)."""
    apps: list[App] = []
    prefix = f"gembot-test-{uuid.uuid4().hex[:8]}"

    async def factory(**overrides: Any) -> App:
        config = deep_merge(
            base_config(tmp_path / "unused.db", gemini.base_url),
            {"storage": {"url": pg_url}, "rate_limits": {"storage": redis_url, "key_prefix": prefix}},
        )
        app = await App.create(settings_from_mapping(deep_merge(config, overrides), env={}))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()  # Redis keys carry the test's prefix and expire with their windows
