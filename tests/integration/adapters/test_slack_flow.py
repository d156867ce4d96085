"""The Slack adapter in-process: real Bolt, engine, SQLite and the Slack and Gemini emulators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack.adapter import SlackAdapter
from adapters.slack.answer import AnswerWriter
from adapters.slack.normalize import normalize_event
from bot.app import App
from bot.domain import (
    ANSWER_MESSAGE,
    Delta,
    FinalAnswer,
    Notice,
    NoticeKind,
    Platform,
    ReplyEvent,
    Typing,
)
from bot.server import HttpServer
from bot.service import adapter_deps
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.slack import (
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    SlackEmulator,
    event_callback,
    mention_event,
    message_event,
    new_ts,
)

AppFactory = Callable[..., Any]


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator() as emulator:
        yield emulator


def slack_config(slack: SlackEmulator, **extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "mode": "http",
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "base_url": slack.api_url,
        "admin_ids": ["UADMIN"],
        "update_interval": "50ms",
        **extra,
    }


async def started(app: App) -> SlackAdapter:
    """A Slack adapter on ``app``, started and ready."""
    server = HttpServer(app.settings.server, app.metrics, app.store)
    adapter = SlackAdapter(adapter_deps(app, server, app.settings.slack))
    await adapter.start()
    for _ in range(200):
        if await adapter.ready() is None:
            break
        await asyncio.sleep(0.01)
    return adapter


class Harness:
    """A started adapter fed through Bolt without signatures (socket-mode requests)."""

    def __init__(self, app: App, adapter: SlackAdapter, slack: SlackEmulator) -> None:
        self.app = app
        self.adapter = adapter
        self.slack = slack

    async def restart(self) -> None:
        """A new adapter on the same engine and database, as after a restart (or on another replica)."""
        await self.adapter.stop(grace=10.0)
        self.adapter = await started(self.app)

    async def deliver(self, event: dict[str, Any], **options: Any) -> int:
        request = AsyncBoltRequest(body=event_callback(event, **options), mode="socket_mode")
        response = await self.adapter.bolt.async_dispatch(request)
        return int(response.status)

    async def settle(self) -> None:
        """Wait until every accepted job has been answered."""
        idle = 0
        for _ in range(1000):
            await asyncio.sleep(0.02)
            idle = idle + 1 if not self.adapter.answering else 0
            if idle >= 3:
                return
        raise AssertionError("jobs still running")


@pytest.fixture
async def harness_factory(app_factory: AppFactory, slack: SlackEmulator) -> AsyncIterator[Callable[..., Any]]:
    harnesses: list[Harness] = []

    async def factory(**slack_extra: Any) -> Harness:
        app = await app_factory(slack=slack_config(slack, **slack_extra))
        harness = Harness(app, await started(app), slack)
        harnesses.append(harness)
        return harness

    yield factory
    for harness in harnesses:
        await harness.adapter.stop(grace=10.0)


async def test_streamed_mention_uses_native_stream(
    harness_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory()
    gemini.script(Reply(chunks=["Hello ", "**streaming** ", "world."], chunk_delay=0.06))
    ts = new_ts()
    assert await h.deliver(mention_event("hi", channel="C1", user="U1", ts=ts)) == 200
    await h.settle()
    messages = h.slack.thread("C1", ts)
    assert [m.kind for m in messages] == ["stream"]
    assert messages[0].text == "Hello **streaming** world."
    assert not messages[0].streaming
    assert h.slack.statuses and h.slack.statuses[0]["thread_ts"] == ts
    start = h.slack.called("chat.startStream")[0]
    assert start.args["recipient_user_id"] == "U1" and start.args["recipient_team_id"] == "T0TEST"


async def test_stream_unavailable_falls_back_to_edits_for_the_process(
    harness_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory()
    h.slack.fail("chat.startStream", "unknown_method")
    h.slack.fail("assistant.threads.setStatus", "missing_scope")
    gemini.script(
        Reply(chunks=["First ", "part, ", "and more."], chunk_delay=0.08),
        Reply(chunks=["Second ", "answer."]),
    )
    ts = new_ts()
    await h.deliver(mention_event("one", channel="C1", user="U1", ts=ts))
    await h.settle()
    assert h.slack.texts("C1", ts) == ["First part, and more."]
    assert h.slack.thread("C1", ts)[0].edits >= 1  # the placeholder was edited as text arrived
    ts2 = new_ts()
    await h.deliver(mention_event("two", channel="C1", user="U1", ts=ts2))
    await h.settle()
    assert h.slack.texts("C1", ts2) == ["Second answer."]
    assert len(h.slack.called("chat.startStream")) == 1
    assert len(h.slack.called("assistant.threads.setStatus")) == 1


async def test_dm_top_level_uses_placeholder_and_mrkdwn(
    harness_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory()
    gemini.script(Reply(chunks=["# Title\n", "Some **bold** and [a link](https://example.com)."]))
    await h.deliver(message_event("hi", channel="D1", user="U1"))
    await h.settle()
    assert h.slack.texts("D1", None) == ["*Title*\n\nSome *bold* and <https://example.com|a link>."]
    assert not h.slack.called("chat.startStream")


async def test_follow_up_in_thread_and_membership_from_database(
    harness_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory()
    ts = new_ts()
    await h.deliver(mention_event("begin", channel="C1", user="U1", ts=ts))
    await h.deliver(message_event("follow", channel="C1", user="U2", thread_ts=ts))
    await h.deliver(message_event("elsewhere", channel="C1", user="U2", thread_ts=new_ts()))
    await h.settle()
    assert gemini.user_texts(-1)[-1].endswith("follow")
    assert len(gemini.requests) == 2
    # A fresh adapter (a restart) knows the thread from the database.
    await h.restart()
    await h.deliver(message_event("after restart", channel="C1", user="U2", thread_ts=ts))
    await h.settle()
    assert len(gemini.requests) == 3
    assert len(h.slack.thread("C1", ts)) == 3


async def test_follow_up_after_a_crash_finishes_the_half_written_answer(
    harness_factory: Callable[..., Any],
) -> None:
    """A process died while showing two answers: a DM placeholder and a native stream in a thread. After
    the restart the follow-up turns each into the resend notice instead of leaving it behind."""
    h: Harness = await harness_factory()
    thread = new_ts()
    events = [
        message_event("one", channel="D1", user="U1"),
        mention_event("two", channel="C1", user="U1", ts=thread),
    ]
    jobs = [normalize_event(event_callback(event), BOT_USER_ID) for event in events]

    async def cut_short() -> AsyncIterator[ReplyEvent]:
        yield Typing()
        yield Delta("Half an ans")  # and then the process is killed: no FinalAnswer, the inbox row stays open

    for job in jobs:
        assert job is not None and await h.app.engine.accept(job.incoming)
        await AnswerWriter(h.adapter, job, job.incoming).run(cut_short())
    placeholder, stream = h.slack.thread("D1", None)[0], h.slack.thread("C1", thread)[0]
    assert stream.streaming and placeholder.text == "Half an ans"

    later = datetime.now(UTC) + timedelta(seconds=1)
    items = await h.app.engine.follow_ups(Platform.SLACK, later)
    assert sorted(item.reply_ids[ANSWER_MESSAGE] for item in items) == sorted([placeholder.ts, stream.ts])
    for item in items:
        await h.adapter.follow_up(item)
    notice = items[0].notice.text
    assert h.slack.texts("D1", None) == [notice]  # the placeholder became the notice, nothing new posted
    [ended] = h.slack.thread("C1", thread)
    assert not ended.streaming and ended.text == f"Half an ans\n\n_{notice}_"
    assert await h.app.engine.follow_ups(Platform.SLACK, later) == []  # each is followed up once


async def test_allowed_channels(harness_factory: Callable[..., Any], gemini: GeminiEmulator) -> None:
    h: Harness = await harness_factory(allowed_channel_ids=["COK"])
    ts = new_ts()
    await h.deliver(mention_event("hi", channel="CNO", user="U1", ts=ts))
    await h.deliver(mention_event("hi", channel="COK", user="U1", ts=ts))
    await h.deliver(mention_event("hi", channel="CNO", user="UADMIN", ts=new_ts()))
    await h.settle()
    assert h.slack.thread("CNO", ts) == []
    assert len(h.slack.thread("COK", ts)) == 1
    assert len(gemini.requests) == 2  # the allowed channel and the admin


async def test_final_text_differing_from_stream_replaces_it(harness_factory: Callable[..., Any]) -> None:
    h: Harness = await harness_factory()
    ts = new_ts()
    job = normalize_event(event_callback(mention_event("hi", channel="C1", user="U1", ts=ts)), BOT_USER_ID)
    assert job is not None

    async def events() -> AsyncIterator[ReplyEvent]:
        yield Typing()
        yield Delta("The secret ")
        await asyncio.sleep(0.1)
        yield Delta("word is")
        yield FinalAnswer(
            "The ****** word is here.", Notice(NoticeKind.TRUNCATED, "Cut at the length limit.")
        )

    await AnswerWriter(h.adapter, job, job.incoming).run(events())
    messages = h.slack.thread("C1", ts)
    assert [m.kind for m in messages] == ["stream"]
    assert messages[0].text == "The ****** word is here.\n\n_Cut at the length limit._"
    assert not messages[0].streaming


async def test_long_stream_rolls_over_and_429s_are_waited_out(
    harness_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory()
    paragraph = "word " * 400 + "\n\n"
    gemini.script(Reply(chunks=[paragraph] * 15, chunk_delay=0.01))
    h.slack.rate_limit("chat.appendStream", times=1, retry_after=0)
    ts = new_ts()
    await h.deliver(mention_event("long", channel="C1", user="U1", ts=ts))
    await h.settle()
    messages = h.slack.thread("C1", ts)
    assert len(messages) >= 3
    assert "".join(m.text for m in messages) == paragraph * 15
    assert all(len(m.text) <= 12_000 for m in messages)
    assert any(c.status == 429 for c in h.slack.called("chat.appendStream"))


async def test_mention_command_is_ephemeral_in_thread(
    harness_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory()
    ts = new_ts()
    await h.deliver(mention_event("hello", channel="C1", user="UADMIN", ts=ts))
    await h.deliver(mention_event("reset", channel="C1", user="UADMIN", thread_ts=ts))
    await h.deliver(message_event("again", channel="C1", user="UADMIN", thread_ts=ts))
    await h.settle()
    assert [e.thread_ts for e in h.slack.ephemerals] == [ts]
    assert "afresh (1 exchange forgotten)" in h.slack.ephemerals[0].text
    assert gemini.contents(-1) == [("user", "name-uadmin: again")]


async def test_thread_answered_only_by_a_command_is_the_bots_after_a_restart(
    harness_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory()
    ts = new_ts()
    await h.deliver(mention_event("help", channel="C1", user="U1", ts=ts))
    await h.settle()
    assert [e.thread_ts for e in h.slack.ephemerals] == [ts] and not gemini.requests
    await h.restart()  # or another replica takes the follow-up
    await h.deliver(message_event("and a question", channel="C1", user="U1", thread_ts=ts))
    await h.settle()
    assert h.slack.texts("C1", ts) == ["echo: name-u1: and a question"]


def _mention_job(ts: str) -> Any:
    job = normalize_event(event_callback(mention_event("hi", channel="C1", user="U1", ts=ts)), BOT_USER_ID)
    assert job is not None
    return job


async def test_failed_stream_stop_is_retried_without_a_stray_placeholder(
    harness_factory: Callable[..., Any],
) -> None:
    h: Harness = await harness_factory()
    h.slack.fail("chat.stopStream", "internal_error", times=1)
    ts = new_ts()
    job = _mention_job(ts)

    async def events() -> AsyncIterator[ReplyEvent]:
        yield Typing()
        yield Delta("Hello ")
        yield Delta("world.")
        yield FinalAnswer("Hello world.")

    await AnswerWriter(h.adapter, job, job.incoming).run(events())
    [message] = h.slack.thread("C1", ts)
    assert (message.kind, message.text, message.streaming) == ("stream", "Hello world.", False)
    assert [c.error for c in h.slack.called("chat.stopStream")] == ["internal_error", None]


async def test_notice_of_a_stream_that_cannot_be_stopped_is_shown_once(
    harness_factory: Callable[..., Any],
) -> None:
    h: Harness = await harness_factory()
    h.slack.fail("chat.stopStream", "internal_error")
    ts = new_ts()
    job = _mention_job(ts)

    async def events() -> AsyncIterator[ReplyEvent]:
        yield Typing()
        yield Delta("Hello ")
        yield FinalAnswer("Hello world.", Notice(NoticeKind.TRUNCATED, "Cut at the length limit."))

    await AnswerWriter(h.adapter, job, job.incoming).run(events())
    assert [(m.kind, m.text) for m in h.slack.thread("C1", ts)] == [
        ("stream", "Hello world."),
        ("message", "_Cut at the length limit._"),
    ]
    assert len(h.slack.called("chat.stopStream")) == 2  # with the notice, then once more without it


async def test_rate_limited_progress_is_skipped_not_waited_out(harness_factory: Callable[..., Any]) -> None:
    """Status and progress edits go through a client without the 429 retry handler; the final text not."""
    h: Harness = await harness_factory(stream=False)
    h.slack.rate_limit("assistant.threads.setStatus", times=1, retry_after=3)
    h.slack.rate_limit("chat.update", times=3, retry_after=3)
    ts = new_ts()
    job = _mention_job(ts)

    async def events() -> AsyncIterator[ReplyEvent]:
        yield Typing()
        for word in ("One ", "two ", "three ", "four."):
            yield Delta(word)
            await asyncio.sleep(0.1)  # longer than update_interval: every delta is a progress edit
        yield FinalAnswer("One two three four.", Notice(NoticeKind.TRUNCATED, "Cut at the length limit."))

    await AnswerWriter(h.adapter, job, job.incoming).run(events())
    assert h.slack.texts("C1", ts) == ["One two three four.\n\n_Cut at the length limit._"]
    assert [c.status for c in h.slack.called("assistant.threads.setStatus")] == [429]
    updates = h.slack.called("chat.update")
    # The last edit adds the feedback buttons to the final text.
    assert [c.status for c in updates] == [429, 429, 429, 200, 200, 200]
    assert "blocks" not in updates[-2].args and "blocks" in updates[-1].args
    texts = [c.args["text"] for c in updates[:-1]]
    assert len(set(texts)) == len(texts)  # no edit was sent again after its 429


async def test_base_url_without_trailing_slash(
    harness_factory: Callable[..., Any], slack: SlackEmulator, gemini: GeminiEmulator
) -> None:
    h: Harness = await harness_factory(base_url=slack.api_url.rstrip("/"))
    assert await h.adapter.ready() is None
    await h.deliver(message_event("hi", channel="D1", user="U1"))
    await h.settle()
    assert h.slack.texts("D1", None) == ["echo: hi"]
    assert {c.method for c in h.slack.calls} >= {"auth.test", "chat.postMessage"}


async def test_feedback_buttons_end_a_streamed_answer_but_not_a_notice(
    harness_factory: Callable[..., Any],
) -> None:
    h: Harness = await harness_factory()
    answered, refused = new_ts(), new_ts()
    for ts, final in (
        (answered, FinalAnswer("Hello world.")),
        (refused, Notice(NoticeKind.RATE_LIMITED, "Slow down.")),
    ):
        job = _mention_job(ts)

        async def events(final: FinalAnswer | Notice = final) -> AsyncIterator[ReplyEvent]:
            yield Typing()
            yield Delta("Hello ")
            yield final

        await AnswerWriter(h.adapter, job, job.incoming).run(events())
    [streamed] = h.slack.thread("C1", answered)
    assert (streamed.kind, streamed.text) == ("stream", "Hello world.")
    [block] = streamed.blocks
    assert block["type"] == "context_actions" and block["elements"][0]["type"] == "feedback_buttons"
    assert all(not m.blocks for m in h.slack.thread("C1", refused))
