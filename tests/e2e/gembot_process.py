"""A ``gembot run`` process for end-to-end tests, and a Slack world around one: the Gemini and Slack
emulators, gembot in Slack's HTTP mode, and a signed event sender."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import API_KEY, base_config
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, EventSender, SlackEmulator

_ids = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}{next(_ids):04d}X"


@dataclass
class Gembot:
    process: asyncio.subprocess.Process
    url: str
    log: Path


async def start_gembot(
    tmp: Path, config: dict[str, Any], env: dict[str, str], preexec_fn: Callable[[], None] | None = None
) -> Gembot:
    """Start ``python -m bot run`` (``preexec_fn`` runs in the child first) and wait for /readyz."""
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = tmp / "gembot.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GEMBOT_", "SLACK_"))}
    environment.update(env)
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(path),
            stdout=sink,
            stderr=sink,
            env=environment,
            preexec_fn=preexec_fn,
        )
    url = f"http://127.0.0.1:{config['server']['port']}"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.returncode is None, log.read_text()
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return Gembot(process, url, log)
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("gembot did not become ready:\n" + log.read_text())


async def stop_gembot(bot: Gembot) -> str:
    """SIGTERM, expect exit 0; returns the log."""
    bot.process.send_signal(signal.SIGTERM)
    status = await asyncio.wait_for(bot.process.wait(), timeout=20)
    text = bot.log.read_text(encoding="utf-8", errors="replace")
    assert status == 0, text
    return text


@dataclass
class SlackWorld:
    """The emulators, the running bot and a sender of signed events; ``db`` is the bot's SQLite file."""

    gemini: GeminiEmulator
    slack: SlackEmulator
    sender: EventSender
    bot: Gembot
    db: Path


@contextlib.asynccontextmanager
async def slack_world(
    tmp: Path, *, gemini: dict[str, Any] | None = None, **slack: Any
) -> AsyncIterator[SlackWorld]:
    """gembot in Slack's HTTP mode (``slack``: more of its config; ``gemini``: more of Gemini's) against
    fresh emulators. On the way out the bot must stop cleanly, with no traceback and no secret logged."""
    db = tmp / "data" / "gembot.db"
    async with GeminiEmulator(api_key=API_KEY) as gemini_emulator, SlackEmulator() as slack_emulator:
        config = base_config(db, gemini_emulator.base_url)
        config["gemini"].update(gemini or {}, api_key="${GEMINI_API_KEY}")
        config["server"]["port"] = free_port()
        config["logging"] = {"level": "INFO", "format": "json"}
        config["slack"] = slack_emulator.http_mode_config(**slack)
        env = {
            "GEMINI_API_KEY": API_KEY,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        }
        bot = await start_gembot(tmp, config, env)
        try:
            async with EventSender(f"{bot.url}/slack/events") as sender:
                yield SlackWorld(gemini_emulator, slack_emulator, sender, bot, db)
        finally:
            log = await stop_gembot(bot)
            for secret in (BOT_TOKEN, SIGNING_SECRET, API_KEY):
                assert secret not in log
            assert "Traceback" not in log, log
