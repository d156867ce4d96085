"""The admin page in a real browser (Chromium via Playwright) against ``gembot run`` and the emulators.

One gembot process (Telegram polling against the emulator, the admin page enabled) and one browser serve
the module; each test signs in with its own browser context and uses its own Telegram users.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import API_KEY
from tests.e2e.browser import chromium, chromium_missing
from tests.e2e.test_console import gembot
from tests.e2e.test_telegram import Gembot, answers, next_id, start_gembot, stop_gembot
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.telegram import BOT_TOKEN, TelegramEmulator
from tests.services import require

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "e2e-admin-token-7f3c9a1b5d2e8f4a6c0b"
MARKER = f"zebra-{uuid.uuid4().hex[:10]}"
"""In every message sent here: no page may ever show it (nor the emulator's echo of it)."""
FIGURES = ("answered", "failed", "requests", "success", "p50", "p90", "p95")
FIGURES += ("conversations", "users", "tokens_in", "tokens_out")
REFUSED = "Sorry, this bot is not available in this chat."

if chromium_missing() is None:
    from playwright.async_api import Browser, BrowserContext, Page


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    require(chromium_missing())
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gembot]:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        started = await start_gembot(
            tmp_path_factory.mktemp("admin"),
            gemini,
            tg,
            sections={"admin_web": {"enabled": True, "token": "${GEMBOT_ADMIN_TOKEN}"}},
            environ={"GEMBOT_ADMIN_TOKEN": TOKEN},
        )
        yield started
        log = await stop_gembot(started)
    assert TOKEN not in log
    assert MARKER not in log
    assert "Traceback" not in log, log


def database(bot: Gembot) -> Path:
    return bot.log_path.parent / "data" / "gembot.db"


async def signed_in(browser: Browser, bot: Gembot) -> tuple[BrowserContext, Page]:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{bot.url}/admin/login")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{bot.url}/admin")
    return context, page


async def converse(bot: Gembot, texts: list[str]) -> tuple[int, int]:
    """A new Telegram user sends ``texts`` in a private chat; their id and chat id once all are answered."""
    tg = bot.tg
    user = tg.user(next_id(), "Pat")
    chat = tg.private_chat(user)
    for number, text in enumerate(texts, 1):
        tg.send(chat, user, text)
        await answers(tg, chat["id"], number)
    return user["id"], chat["id"]


async def figure(page: Page, name: str) -> str:
    return (await page.inner_text(f'[data-figure="{name}"]')).strip()


async def test_sign_in_with_a_wrong_then_the_right_token(browser: Browser, bot: Gembot) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{bot.url}/admin")
        assert page.url == f"{bot.url}/admin/login"
        await page.fill("#token", "not-the-token-" + "x" * 30)
        await page.click("button[type=submit]")
        assert "That token is not right." in await page.inner_text(".banner.error")
        assert not [c for c in await context.cookies() if c["name"] == "gembot_admin"]
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{bot.url}/admin")
        assert await page.inner_text("h1") == "Overview"
        [cookie] = [c for c in await context.cookies() if c["name"] == "gembot_admin"]
        # Plain http on a loopback name: not Secure (a browser would drop it); behind https it is.
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
        assert cookie["path"] == "/admin"
        assert TOKEN not in cookie["value"]
    finally:
        await context.close()


async def test_the_overview_shows_what_gembot_stats_prints(browser: Browser, bot: Gembot) -> None:
    await converse(bot, [f"{MARKER} one", f"{MARKER} two", f"{MARKER} three"])
    context, page = await signed_in(browser, bot)
    try:
        config = bot.log_path.parent / "config.yaml"
        env = {
            "GEMINI_API_KEY": API_KEY,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "GEMBOT_ADMIN_TOKEN": TOKEN,
            "LANG": "C",
        }
        status, out, err = await gembot("stats", "--config", str(config), env=env)
        assert status == 0, err
        await page.reload()
        windows = re.findall(
            r"\[(\w+)\] answered (\d+), failed (\d+)\nGemini requests (\d+), success ([\d.]+%|-)\n"
            r"latency P50 (\S+) / P90 (\S+) / P95 (\S+)\n.*\nrefused: .*\n"
            r"active: (\d+) conversations?, (\d+) users?\ntokens: (\d+) in, (\d+) out",
            out,
        )
        assert [w[0] for w in windows] == ["1h", "24h", "30d"], out
        for name, answered, failed, requests, success, p50, p90, p95, convs, users, t_in, t_out in windows:
            assert int(answered) >= 3
            shown = {key: await figure(page, f"{name}.{key}") for key in FIGURES}
            assert shown == {
                "answered": answered,
                "failed": failed,
                "requests": requests,
                "success": success.replace("-", "–"),
                "p50": p50,
                "p90": p90,
                "p95": p95,
                "conversations": convs,
                "users": users,
                "tokens_in": shown["tokens_in"],
                "tokens_out": shown["tokens_out"],
            }
            for key, value in (("tokens_in", t_in), ("tokens_out", t_out)):
                exact = await page.get_attribute(f'[data-figure="{name}.{key}"]', "data-value")
                assert exact == value
            chart = page.locator(f'svg.chart[data-window="{name}"]')
            assert await chart.count() == 1
            assert await chart.locator("rect.bar").count() >= 1
            assert await chart.locator("polyline.line.p95").count() >= 1
        month = re.search(r"month (\d+)/", out)
        assert month is not None and await figure(page, "quota.month.used") == month.group(1)
    finally:
        await context.close()


async def test_a_blocked_user_is_refused_until_unblocked(browser: Browser, bot: Gembot) -> None:
    user_id, chat_id = await converse(bot, [f"{MARKER} before"])
    context, page = await signed_in(browser, bot)
    try:
        await page.goto(f"{bot.url}/admin/users")
        row = page.locator(f'tr[data-user="telegram:{user_id}"]')
        await row.locator("button", has_text="Block").click()
        assert await page.inner_text("#done") == f"Blocked telegram user {user_id}"
        assert await page.locator(f'tr[data-blocked="telegram:{user_id}"]').count() == 1

        tg = bot.tg
        tg.send(tg.private_chat(tg.user(user_id, "Pat")), tg.user(user_id, "Pat"), f"{MARKER} blocked")
        assert (await answers(tg, chat_id, 2))[-1] == REFUSED

        await page.locator(f'tr[data-blocked="telegram:{user_id}"] button').click()
        assert await page.inner_text("#done") == f"Unblocked telegram user {user_id}"
        tg.send(tg.private_chat(tg.user(user_id, "Pat")), tg.user(user_id, "Pat"), f"{MARKER} after")
        assert (await answers(tg, chat_id, 3))[-1] == f"echo: {MARKER} after"
    finally:
        await context.close()
    with sqlite3.connect(database(bot)) as db:
        audited = db.execute(
            "SELECT action, actor_id, params FROM audit WHERE action LIKE 'admin.%block_user' ORDER BY id"
        ).fetchall()
    assert [a for a, _, _ in audited] == ["admin.block_user", "admin.unblock_user"]
    assert all(actor.startswith("session:") and TOKEN not in actor + params for _, actor, params in audited)


async def test_purge_now_shows_the_result_and_is_audited(browser: Browser, bot: Gembot) -> None:
    context, page = await signed_in(browser, bot)
    try:
        await page.goto(f"{bot.url}/admin/settings")
        await page.click("#purge")
        result = await page.inner_text("#purged")
        purged = (
            r"Purged: turns 0, summaries 0, inbox 0, votes 0, answer_messages 0, inbox_targets 0, audit 0, "
            r"llm_calls 0, media_files 0"
        )
        assert re.fullmatch(purged, result), result
    finally:
        await context.close()
    with sqlite3.connect(database(bot)) as db:
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'admin.purge'").fetchone() == (1,)


async def test_a_forged_post_is_refused(browser: Browser, bot: Gembot) -> None:
    context, page = await signed_in(browser, bot)
    try:
        for form in ({"csrf": "forged"}, {}):
            response = await context.request.post(f"{bot.url}/admin/purge", form=form)
            assert response.status == 403
        # Another session's token is no better than a made-up one.
        other, other_page = await signed_in(browser, bot)
        foreign = await other_page.get_attribute(".signout input[name=csrf]", "value")
        await other.close()
        response = await context.request.post(
            f"{bot.url}/admin/users/block",
            form={"csrf": foreign or "", "platform": "telegram", "user_id": "1"},
        )
        assert response.status == 403
        # The page's own token works (the POST is followed to the users page).
        own = await page.get_attribute(".signout input[name=csrf]", "value")
        response = await context.request.post(
            f"{bot.url}/admin/users/unblock", form={"csrf": own or "", "platform": "telegram", "user_id": "1"}
        )
        assert response.status == 200 and "/admin/users" in response.url
    finally:
        await context.close()


async def test_no_page_shows_conversation_text_and_the_policy_holds(browser: Browser, bot: Gembot) -> None:
    await converse(bot, [f"{MARKER} private words"])
    context, page = await signed_in(browser, bot)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    try:
        for path in ("", "/users", "/settings"):
            response = await page.goto(f"{bot.url}/admin{path}")
            assert response is not None and response.status == 200
            html = await page.content()
            assert MARKER not in html and TOKEN not in html
            # Chromium reports every blocked inline script or style, or foreign resource, on the console.
            assert "Content Security Policy" not in " ".join(problems), problems
        # The settings page shows the effective config with the token masked.
        assert "********" in await page.inner_text("section.config:has(h2 code:text-is('admin_web'))")
    finally:
        await context.close()
