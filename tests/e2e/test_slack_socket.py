"""``gembot run`` in Slack socket mode: apps.connections.open, then envelopes over the emulated WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import API_KEY, base_config
from tests.e2e.gembot_process import Gembot, free_port, start_gembot, stop_gembot
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.slack import (
    APP_TOKEN,
    BOT_TOKEN,
    TEAM_ID,
    SlackEmulator,
    assistant_thread_event,
    event_callback,
    mention_event,
    message_shortcut,
    new_ts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emulators() -> AsyncIterator[tuple[GeminiEmulator, SlackEmulator]]:
    async with GeminiEmulator(api_key=API_KEY) as gemini, SlackEmulator() as slack:
        yield gemini, slack


async def start_socket_mode(gemini: GeminiEmulator, slack: SlackEmulator, tmp_path: Path) -> Gembot:
    """``gembot run`` in socket mode on the emulators."""
    config = base_config(tmp_path / "data" / "gembot.db", gemini.base_url)
    config["server"]["port"] = free_port()
    config["logging"] = {"level": "INFO", "format": "json"}
    config["slack"] = {
        "enabled": True,
        "mode": "socket",
        "bot_token": "${SLACK_BOT_TOKEN}",
        "app_token": "${SLACK_APP_TOKEN}",
        "base_url": slack.api_url,
        "update_interval": "100ms",
    }
    env = {"GEMINI_API_KEY": API_KEY, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN}
    return await start_gembot(tmp_path, config, env)


async def test_socket_mode_events_and_commands(
    emulators: tuple[GeminiEmulator, SlackEmulator], tmp_path: Path
) -> None:
    gemini, slack = emulators
    bot = await start_socket_mode(gemini, slack, tmp_path)  # /readyz waits for the WebSocket
    try:
        await slack.wait_socket()
        assert slack.called("apps.connections.open")

        ts = new_ts()
        body = event_callback(mention_event("over the socket", channel="CSOCK", user="U1", ts=ts))
        first = await slack.send_envelope(body)
        again = await slack.send_envelope(body, retry_attempt=1, retry_reason="timeout")
        await slack.wait_for(lambda: first in slack.acks and again in slack.acks)
        # A sentinel after the duplicate: answers in a thread go out in order, so once the sentinel is
        # answered, a wrongly answered duplicate would already be there.
        await slack.send_envelope(
            event_callback(mention_event("sentinel", channel="CSOCK", user="U1", thread_ts=ts))
        )
        await slack.wait_for(
            lambda: len(m := slack.thread("CSOCK", ts)) >= 2 and not any(x.streaming for x in m)
        )
        assert slack.texts("CSOCK", ts) == ["echo: name-u1: over the socket", "echo: name-u1: sentinel"]

        command = {
            "team_id": TEAM_ID,
            "channel_id": "DSOCK",
            "channel_name": "directmessage",
            "user_id": "U1",
            "command": "/gembot",
            "text": "help",
            "response_url": slack.response_url("socket-help"),
            "trigger_id": "1.2.socket",
        }
        envelope = await slack.send_envelope(command, kind="slash_commands")
        await slack.wait_for(lambda: envelope in slack.acks and slack.responses)
        assert "Google Gemini" in slack.responses[0][1]["text"]
        assert len(gemini.requests) == 2  # the mention once, and the sentinel

        # Slack closes the WebSocket (it rotates them): the client reconnects, counted, and events flow on.
        opened = slack.sockets_opened
        await slack.drop_socket()
        await slack.wait_for(lambda: slack.sockets_opened > opened)
        after = new_ts()
        await slack.send_envelope(
            event_callback(mention_event("reconnected", channel="CSOCK", user="U1", ts=after))
        )
        await slack.wait_for(lambda: (m := slack.thread("CSOCK", after)) and not m[0].streaming)
        assert slack.texts("CSOCK", after) == ["echo: name-u1: reconnected"]
        async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/metrics") as response:
            metrics = await response.text()
        assert 'gembot_adapter_reconnects_total{platform="slack"} 1.0' in metrics
    finally:
        log = await stop_gembot(bot)
    assert APP_TOKEN not in log and BOT_TOKEN not in log
    assert "Traceback" not in log, log


async def test_socket_mode_assistant_thread_and_shortcut(
    emulators: tuple[GeminiEmulator, SlackEmulator], tmp_path: Path
) -> None:
    gemini, slack = emulators
    slack.clear()
    bot = await start_socket_mode(gemini, slack, tmp_path)
    try:
        await slack.wait_socket()
        thread = new_ts()
        started = assistant_thread_event("started", user="U1", channel="DSOCKA", thread_ts=thread)
        await slack.send_envelope(event_callback(started))
        await slack.wait_for(lambda: slack.prompts and slack.thread("DSOCKA", thread))

        parent = slack.post_as_user("CSOCKT", "Lunch at noon?", user="U1")
        slack.post_as_user("CSOCKT", "Yes, noon.", user="U2", thread_ts=parent)
        gemini.script(Reply(text="Lunch is at noon."))
        shortcut = message_shortcut(
            "summarize_thread",
            user="U2",
            channel="CSOCKT",
            message=slack.conversations["CSOCKT"][0],
            response_url=slack.response_url(),
        )
        envelope = await slack.send_envelope(shortcut, kind="interactive")
        await slack.wait_for(
            lambda: envelope in slack.acks and (m := slack.thread("CSOCKT", parent)) and not m[0].streaming
        )
        assert slack.texts("CSOCKT", parent) == ["Lunch is at noon."]
        assert "name-u1: Lunch at noon?\nname-u2: Yes, noon." in gemini.user_texts(-1)[0]
    finally:
        log = await stop_gembot(bot)
    assert "Traceback" not in log, log
