"""Adapters started in-process on their emulators (real PTB or Bolt, engine, SQLite, emulated Gemini)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from adapters.slack.adapter import SlackAdapter
from adapters.telegram.adapter import TelegramAdapter
from bot.app import App
from bot.server import HttpServer
from bot.service import adapter_deps
from tests.fakes.telegram import BOT_TOKEN, TelegramEmulator

AppFactory = Callable[..., Awaitable[App]]
NO_PACING = {"rate_limit": {"global_per_second": 0, "per_chat_per_second": 0, "per_group_per_minute": 0}}


async def until_ready(adapter: TelegramAdapter | SlackAdapter) -> None:
    """Wait until the adapter is connected (at most 10 s)."""
    deadline = time.monotonic() + 10
    while await adapter.ready() is not None:
        assert time.monotonic() < deadline, "adapter not ready"
        await asyncio.sleep(0.02)


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    """The Bot API emulator."""
    async with TelegramEmulator() as emulator:
        yield emulator


@pytest.fixture
async def telegram(app_factory: AppFactory, tg: TelegramEmulator) -> AsyncIterator[App]:
    """A started Telegram adapter (polling, no outbound pacing) on the emulator; its App."""
    app = await app_factory(
        telegram={"enabled": True, "token": BOT_TOKEN, "base_url": tg.base_url, **NO_PACING}
    )
    server = HttpServer(app.settings.server, app.metrics, app.store)
    adapter = TelegramAdapter(adapter_deps(app, server, app.settings.telegram))
    await adapter.start()
    try:
        await until_ready(adapter)
        yield app
    finally:
        await adapter.stop(grace=10.0)
