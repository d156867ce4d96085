"""``gembot run`` as a subprocess: /healthz, /readyz, /metrics after real traffic, and the Dockerfile's
HEALTHCHECK command against it.

A platform must be enabled: with none, ``gembot run`` exits 2 when stdin is not a terminal (a
container started without tokens should fail loudly, not sit "healthy" doing nothing). So the process runs
the Telegram adapter against the Telegram Bot API emulator.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import API_KEY
from tests.fakes.gemini import GeminiEmulator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("adapters.telegram") is None, reason="no Telegram adapter yet"
    ),
]


async def test_run_serves_health_readiness_and_metrics(tmp_path: Path) -> None:
    from tests.e2e.test_telegram import start_gembot, stop_gembot
    from tests.fakes.telegram import TelegramEmulator
    from tests.integration.ops.test_dockerfile import healthcheck_command

    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        bot = await start_gembot(tmp_path, gemini, tg)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{bot.url}/healthz") as response:
                    assert (response.status, await response.text()) == (200, "ok\n")
                async with session.get(f"{bot.url}/readyz") as response:
                    assert (response.status, await response.text()) == (200, "ready\n")
                user = tg.user(777001, "Ops")
                chat = tg.private_chat(user)
                tg.send(chat, user, "one")
                tg.send(chat, user, "two")
                await tg.wait_for(lambda: len(tg.texts(chat["id"])) >= 2, within=20)
                await asyncio.sleep(0.3)  # the metrics are updated as the answer completes
                async with session.get(f"{bot.url}/metrics") as response:
                    assert response.status == 200
                    body = await response.text()
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body)
                for s in family.samples
            }
            answered = sum(
                v
                for (name, labels), v in samples.items()
                if name == "gembot_messages_total" and ("outcome", "answered") in labels
            )
            assert answered == 2
            latency = sum(
                v for (name, _), v in samples.items() if name == "gembot_gemini_latency_seconds_count"
            )
            assert latency == len(gemini.requests) == 2

            command = healthcheck_command()
            command[0] = sys.executable
            process = await asyncio.create_subprocess_exec(*command, env={"GEMBOT_PORT": str(bot.port)})
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            await stop_gembot(bot)
