"""Screenshots of the admin page's overview for docs/operations.md: ``python -m tests.e2e.admin_screenshots``.

Seeds a database with 30 days of made-up traffic (figures only: Gemini calls, inbox rows, refusals),
starts ``gembot run`` against the Telegram and Gemini emulators with the admin page on, sends a few live
messages, and saves the overview at desktop and phone width as docs/admin-overview-desktop.png and
docs/admin-overview-phone.png. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Connection

from bot.observability.metrics import QUOTA, RATE_LIMITED, REFUSAL_ACTION
from bot.store import AuditRecord, CallRecord, Store, upgrade_to_head
from bot.store.models import Inbox
from tests.conftest import API_KEY
from tests.e2e.browser import chromium, chromium_missing
from tests.e2e.test_telegram import answers, start_gembot, stop_gembot
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.telegram import TelegramEmulator

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKEN = "screenshot-admin-token-0123456789abcdef"


async def seed(url: str, now: datetime) -> None:
    """30 days of calls and messages, busier by day than by night, a few errors and refusals."""
    await upgrade_to_head(url)
    store = await Store.open(url)
    rng = random.Random(18)
    calls: list[CallRecord] = []
    inbox: list[dict[str, object]] = []
    refusals: list[AuditRecord] = []
    minute = now - timedelta(days=30)
    while minute < now:
        hour = minute.hour + minute.minute / 60
        busy = 0.25 + 0.75 * max(0.0, math.sin((hour - 6) / 24 * 2 * math.pi))
        if rng.random() < busy * 0.5:
            at = minute + timedelta(seconds=rng.randrange(60))
            latency = rng.lognormvariate(math.log(900 + 500 * busy), 0.45)
            outcome = "ok" if rng.random() > 0.015 else rng.choice(["server", "timeout", "rate_limited"])
            tokens = {"prompt_tokens": rng.randrange(200, 1800), "output_tokens": rng.randrange(80, 900)}
            call = CallRecord(at, "telegram", "gemini-2.5-flash", "https://e", 1, outcome, 200, None, latency)
            calls.append(dataclasses.replace(call, **tokens))
            inbox.append(
                {
                    "platform": "telegram",
                    "event_id": f"seed-{len(inbox)}",
                    "user_id": str(1000 + int(rng.paretovariate(1.2)) % 40),
                    "status": "answered" if outcome == "ok" else "failed",
                    "received_at": at,
                    "answered_at": at,
                }
            )
            if rng.random() < 0.04:
                reason = rng.choice([RATE_LIMITED, QUOTA])
                refusals.append(AuditRecord(at, "telegram", "1001", REFUSAL_ACTION, {}, outcome=reason))
        minute += timedelta(minutes=1)

    def insert(conn: Connection) -> None:
        conn.execute(Inbox.__table__.insert(), inbox)

    await store.database.run_write(insert)
    await store.records.record_calls(calls, refusals)
    await store.close()


async def main() -> int:
    """Seed, start, screenshot; 0 on success."""
    missing = chromium_missing()
    if missing is not None:
        print(f"admin_screenshots: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        await seed(f"sqlite+aiosqlite:///{directory / 'data' / 'gembot.db'}", datetime.now(UTC))
        async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
            sections = {
                "admin_web": {"enabled": True, "token": "${GEMBOT_ADMIN_TOKEN}"},
                "gemini": {
                    "api_key": "${GEMINI_API_KEY}",
                    "base_url": gemini.base_url,
                    "quota": {
                        "requests_per_minute": 60,
                        "requests_per_day": 1500,
                        "requests_per_month": 40000,
                    },
                },
            }
            bot = await start_gembot(
                directory, gemini, tg, sections=sections, environ={"GEMBOT_ADMIN_TOKEN": TOKEN}
            )
            try:
                user = tg.user(77, "Sam")
                chat = tg.private_chat(user)
                for n in range(3):
                    tg.send(chat, user, f"question {n}")
                    await answers(tg, chat["id"], n + 1)
                async with chromium() as browser:
                    for name, width, height, full in (
                        ("desktop", 1280, 900, True),
                        ("phone", 390, 844, False),
                    ):
                        context = await browser.new_context(
                            viewport={"width": width, "height": height}, device_scale_factor=1 if full else 2
                        )
                        page = await context.new_page()
                        await page.goto(f"{bot.url}/admin/login")
                        await page.fill("#token", TOKEN)
                        await page.click("button[type=submit]")
                        await page.wait_for_url(f"{bot.url}/admin")
                        target = DOCS / f"admin-overview-{name}.png"
                        await page.screenshot(path=str(target), full_page=full)
                        print(f"wrote {target}")
                        await context.close()
            finally:
                await stop_gembot(bot)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
