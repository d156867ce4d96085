"""Shared fixtures: the Gemini emulator, settings on a real SQLite file, and a running App."""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.config import Settings, settings_from_mapping
from bot.observability.logs import configure_logging
from tests.fakes.gemini import GeminiEmulator

API_KEY = "test-key-5f3b9c2d7e1a"


def _file_rank(items: list[pytest.Item]) -> int:
    """0 for a file with a fresh-venv install, 1 for one that starts gembot as a subprocess, 2 otherwise."""
    if any(item.get_closest_marker("slow") for item in items):
        return 0
    return 1 if any(item.get_closest_marker("e2e") for item in items) else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test``), hand out the longest files first.

    Workers take whole files (``--dist loadfile``) in collection order; a minute-long file started last would
    keep one worker busy while the others sit idle. Each worker collects, so the order must be deterministic.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    ranked = sorted(by_file.values(), key=_file_rank)  # stable: collection order within a rank
    items[:] = [item for file_items in ranked for item in file_items]


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
