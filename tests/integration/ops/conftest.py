"""A real App (migrated SQLite file, Gemini emulator, engine) behind a real HttpServer on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App
from bot.server import HttpServer

AppFactory = Callable[..., Any]

# One HTTP attempt per message and no circuit breaker, so "what happened" is easy to count by hand.
OPS_CONFIG: dict[str, Any] = {
    "gemini": {"retry": {"max_attempts": 1, "breaker_threshold": 0}},
    "rate_limits": {"per_user": "1/minute", "per_chat": ""},
}


@dataclass
class Served:
    """An App and its HTTP server, with helpers to call it."""

    app: App
    server: HttpServer
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.url + path) as response:
            return response.status, await response.text()

    async def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics keyed by (sample name, labels)."""
        status, body = await self.get("/metrics")
        assert status == 200
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sample ``name{labels}`` (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of every ``name`` sample whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@pytest.fixture
async def served(app_factory: AppFactory) -> AsyncIterator[Served]:
    app: App = await app_factory(**OPS_CONFIG)
    server = HttpServer(app.settings.server, app.metrics, app.store.database)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Served(app, server, session)
    finally:
        await server.stop()
