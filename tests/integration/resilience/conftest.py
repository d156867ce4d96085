"""Fixtures for the resilience tests: a fake clock, a second emulator and readers of what was stored."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from tests.conftest import API_KEY, SettingsFactory
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import GeminiEmulator


@pytest.fixture
def clock() -> FakeClock:
    """The test's virtual clock."""
    return FakeClock(datetime(2026, 11, 28, 12, 0, 10, tzinfo=UTC))


AppMaker = Callable[..., Any]


@pytest.fixture
async def make_app(make_settings: SettingsFactory, clock: FakeClock) -> AsyncIterator[AppMaker]:
    """Create Apps on the virtual clock (real SQLite file, real client and engine); closed after the test."""
    apps: list[App] = []

    async def factory(**overrides: Any) -> App:
        app = await App.create(make_settings(**overrides), clock=clock)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


@pytest.fixture
async def fallback() -> AsyncIterator[GeminiEmulator]:
    """A second emulator, to serve as a fallback base URL."""
    async with GeminiEmulator(api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def dead_url() -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Call:
    """One llm_calls row."""

    model: str
    endpoint: str
    attempt: int
    outcome: str
    http_status: int | None
    gemini_status: str | None


def calls(db_path: Path) -> list[Call]:
    """Every llm_calls row, oldest first."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT model, endpoint, attempt, outcome, http_status, gemini_status FROM llm_calls ORDER BY id"
        ).fetchall()
    return [Call(*row) for row in rows]


def outcomes(db_path: Path) -> list[str]:
    """The outcome of every llm_calls row, oldest first."""
    return [c.outcome for c in calls(db_path)]


def turns(db_path: Path) -> list[tuple[str, str, str, str]]:
    """(user text, model text, finish reason, model) of every stored exchange."""
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT user_text, model_text, finish_reason, model FROM turns ORDER BY id"
        ).fetchall()


def inbox_statuses(db_path: Path) -> list[str]:
    """The inbox status of every message, oldest first."""
    with sqlite3.connect(db_path) as db:
        return [r[0] for r in db.execute("SELECT status FROM inbox ORDER BY id")]
