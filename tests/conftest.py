"""Shared fixtures: the Gemini emulator, settings on a real SQLite file, and a running App."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.config import Settings, settings_from_mapping
from bot.observability.logs import configure_logging
from tests.fakes.gemini import GeminiEmulator

API_KEY = "test-key-5f3b9c2d7e1a"


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    """Route logs through gembot's redacting handler at WARNING, as a deployment would."""
    configure_logging("WARNING", "console")


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested mappings merged."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def base_config(db_path: Path, gemini_url: str) -> dict[str, Any]:
    """A config for tests: the emulator, a SQLite file, no platform, no limits unless a test sets them."""
    return {
        "gemini": {"api_key": API_KEY, "base_url": gemini_url, "stream": True},
        "storage": {"url": f"sqlite+aiosqlite:///{db_path}"},
        "rate_limits": {"per_user": "", "per_chat": ""},
        "telegram": {"enabled": False},
        "slack": {"enabled": False},
        "server": {"port": 0},
        "logging": {"level": "WARNING"},
    }


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiEmulator]:
    """The Gemini REST emulator on a loopback port, accepting ``API_KEY``."""
    async with GeminiEmulator(api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The test's SQLite database file."""
    return tmp_path / "data" / "gembot.db"


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(db_path: Path, gemini: GeminiEmulator) -> SettingsFactory:
    """Build validated settings on the emulator and the test's database, with overrides."""

    def factory(**overrides: Any) -> Settings:
        return settings_from_mapping(deep_merge(base_config(db_path, gemini.base_url), overrides), env={})

    return factory


@pytest.fixture
async def app_factory(make_settings: SettingsFactory) -> AsyncIterator[Callable[..., Any]]:
    """Create Apps (migrated database, real client, real engine); all are closed after the test."""
    apps: list[App] = []

    async def factory(**overrides: Any) -> App:
        app = await App.create(make_settings(**overrides))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()
