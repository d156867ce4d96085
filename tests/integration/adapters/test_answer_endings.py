"""Every way an answer can end releases its conversation at once, and says how it ended: the real
Telegram and Slack adapters (PTB, Bolt) on their emulators, the real engine on SQLite, emulated Gemini."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack.adapter import SlackAdapter
from bot.app import App
from bot.server import HttpServer
from bot.service import adapter_deps
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.slack import (
    BOT_TOKEN as SLACK_TOKEN,
)
from tests.fakes.slack import (
    SIGNING_SECRET,
    SlackEmulator,
    event_callback,
    mention_event,
    message_event,
    new_ts,
)
from tests.fakes.telegram import TelegramEmulator
from tests.helpers import eventually
from tests.integration.adapters.conftest import AppFactory, until_ready

PROMPT = 3.0  # seconds within which the next message of the chat must be answered


def messages(app: App, platform: str, outcome: str | None = None) -> float:
    """gembot_messages_total of ``platform`` (with this stable ``outcome``, or all)."""
    labels = {"platform": platform, **({"outcome": outcome} if outcome else {})}
    return sum(
        sample.value
        for metric in app.metrics.registry.collect()
        if metric.name == "gembot_messages"
        for sample in metric.samples
        if sample.name == "gembot_messages_total" and all(sample.labels[k] == v for k, v in labels.items())
    )


async def inbox_statuses(app: App, platform: str) -> list[str]:
    async with app.store.engine.connect() as db:
        result = await db.exec_driver_sql(
            "SELECT status FROM inbox WHERE platform = ? ORDER BY id", (platform,)
        )
        return [str(row[0]) for row in result]


def _cancel_telegram_answers() -> None:
    """Cancel the tasks in which PTB runs the updates (as a shutdown cut short does)."""
    for task in asyncio.all_tasks():
        if task.get_name().endswith(":process_concurrent_update"):
            task.cancel()


TELEGRAM_ENDINGS = ["answer", "notice", "thread_not_found", "muted", "blocked", "renderer_error", "cancelled"]


@pytest.mark.parametrize("ending", TELEGRAM_ENDINGS)
async def test_every_telegram_ending_releases_the_chat_at_once(
    ending: str, telegram: App, tg: TelegramEmulator, gemini: GeminiEmulator
) -> None:
    app = telegram
    ivy = tg.user(801, "Ivy")
    mention = ""
    thread: int | None = None
    chat = tg.private_chat(ivy)
    if ending in ("muted", "thread_not_found"):
        chat = tg.group(-8001, "Forum", forum=True)
        mention = "@gembot_test_bot "
    if ending == "thread_not_found":
        thread = 77
        tg.delete_topic(chat["id"], thread)
    elif ending == "muted":
        tg.mute(chat["id"])
    elif ending == "blocked":
        tg.block(chat["id"])
    elif ending == "renderer_error":
        tg.garble("sendMessage")
    elif ending == "cancelled":
        gemini.script(Reply(chunks=["Part one, ", "part two."], chunk_delay=5.0))

    if ending == "notice":
        tg.send(chat, ivy, kind="location")
    else:
        tg.send(chat, ivy, f"{mention}first", thread_id=thread)
    if ending == "cancelled":
        await tg.wait_for(lambda: tg.drafts)  # the answer is streaming
        _cancel_telegram_answers()
    await eventually(lambda: messages(app, "telegram") == 1, within=PROMPT)  # the first one ended
    tg.mute(chat["id"], False)
    tg.block(chat["id"], False)

    started = time.monotonic()
    tg.send(chat, ivy, f"{mention}second", thread_id=thread)
    await tg.wait_for(
        lambda: any(str(c.params.get("text", "")).endswith("second") for c in tg.calls_to("sendMessage")),
        within=PROMPT,
    )
    assert time.monotonic() - started < PROMPT
    await eventually(lambda: app.engine.locks_in_use == 0, within=PROMPT)

    first, second = await inbox_statuses(app, "telegram")
    outcome, status = {
        "answer": ("answered", "answered"),
        "notice": ("rejected", "answered"),
        "thread_not_found": ("undelivered", "undelivered"),
        "muted": ("undelivered", "undelivered"),
        "blocked": ("undelivered", "undelivered"),
        "renderer_error": ("undelivered", "undelivered"),
        "cancelled": ("error", "received"),  # left unfinished: its sender is asked to resend after a restart
    }[ending]
    assert first == status
    assert second == ("undelivered" if ending == "thread_not_found" else "answered")
    assert messages(app, "telegram", outcome) >= 1
    assert messages(app, "telegram", "undelivered") == [first, second].count("undelivered")


# ------------------------------------------------------------------------------------------- Slack


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
async def slack_adapter(
    app_factory: AppFactory, slack: SlackEmulator
) -> AsyncIterator[tuple[App, SlackAdapter]]:
    """A started Slack adapter (http mode, fed through Bolt below) on the emulator."""
    app = await app_factory(
        slack={
            "enabled": True,
            "mode": "http",
            "bot_token": SLACK_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "base_url": slack.api_url,
            "update_interval": "50ms",
        }
    )
    server = HttpServer(app.settings.server, app.metrics, app.store)
    adapter = SlackAdapter(adapter_deps(app, server, app.settings.slack))
    await adapter.start()
    try:
        await until_ready(adapter)
        yield app, adapter
    finally:
        await adapter.stop(grace=10.0)


async def deliver(adapter: SlackAdapter, event: dict[str, Any]) -> None:
    request = AsyncBoltRequest(body=event_callback(event), mode="socket_mode")
    assert (await adapter.bolt.async_dispatch(request)).status == 200


SLACK_ENDINGS = [
    "answer",
    "notice",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "renderer_error",
    "cancelled",
]


@pytest.mark.parametrize("ending", SLACK_ENDINGS)
@pytest.mark.parametrize("where", ["dm", "thread"])
async def test_every_slack_ending_releases_the_conversation_at_once(
    ending: str,
    where: str,
    slack_adapter: tuple[App, SlackAdapter],
    slack: SlackEmulator,
    gemini: GeminiEmulator,
) -> None:
    app, adapter = slack_adapter
    channel, thread = ("D1", None) if where == "dm" else ("C1", new_ts())

    def event(text: str) -> dict[str, Any]:
        if thread is None:
            return message_event(text, channel=channel, user="U1")
        return mention_event(text, channel=channel, user="U1", thread_ts=thread)

    if ending in ("channel_not_found", "not_in_channel", "is_archived"):
        slack.refuse(channel, ending)
    elif ending == "renderer_error":
        slack.garble("chat.postMessage", times=10)
        slack.garble("chat.startStream", times=10)
    elif ending == "cancelled":
        gemini.script(Reply(chunks=["Part one, ", "part two."], chunk_delay=5.0))
    await deliver(adapter, event("" if ending == "notice" else "first"))
    if ending == "cancelled":
        await slack.wait_for(lambda: any(m.text.startswith("Part one") for m in slack.messages))
        for task in asyncio.all_tasks():
            if task.get_name().startswith("slack-answer-"):
                task.cancel()
    await eventually(lambda: messages(app, "slack") == 1, within=PROMPT)  # the first one ended
    slack.clear()  # the channel can be written to again

    started = time.monotonic()
    await deliver(adapter, event("second"))
    await slack.wait_for(lambda: any(m.text.endswith("second") for m in slack.messages), timeout=PROMPT)
    assert time.monotonic() - started < PROMPT
    await eventually(lambda: app.engine.locks_in_use == 0 and adapter.answering == 0, within=PROMPT)

    first, second = await inbox_statuses(app, "slack")
    assert (
        first
        == {
            "answer": "answered",
            "notice": "answered",
            "channel_not_found": "undelivered",
            "not_in_channel": "undelivered",
            "is_archived": "undelivered",
            "renderer_error": "undelivered",
            "cancelled": "received",  # left unfinished: its sender is asked to resend after a restart
        }[ending]
    )
    assert second == "answered"
    assert messages(app, "slack", "undelivered") == (first == "undelivered")
