"""Outbound flood control, per-chat ordering, and answers and set-up against the Bot API emulator."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from telegram import Bot, Update
from telegram.request import HTTPXRequest

from adapters.telegram.adapter import MAX_CHAT_BACKLOG, ChatOrderedProcessor, TelegramAdapter
from adapters.telegram.answer import AnswerWriter, DraftSupport
from adapters.telegram.normalize import Target
from adapters.telegram.outbox import TYPING_REFRESHES, FloodControl, Outbox, Scope, SlidingWindow
from bot.app import App
from bot.clock import SystemClock
from bot.config import OutboundTelegramLimits
from bot.domain import Delta, FinalAnswer, ReplyEvent, Typing
from bot.server import HttpServer
from bot.service import adapter_deps
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.telegram import BOT_TOKEN, Fault, TelegramEmulator


def flood(clock: FakeClock, **limits: float) -> FloodControl:
    return FloodControl(OutboundTelegramLimits(**limits), clock)


async def test_one_message_per_second_per_chat() -> None:
    clock = FakeClock(frozen=True)
    control = flood(clock)
    await control.acquire(5)
    await control.acquire(6)  # another chat is independent
    clock.advance(0.9)
    assert control.delay(5) == pytest.approx(0.1)
    clock.advance(0.1)
    assert control.delay(5) == 0


async def test_twenty_per_minute_per_group() -> None:
    clock = FakeClock(frozen=True)
    control = flood(clock, per_chat_per_second=0)
    for _ in range(20):
        assert control.delay(-7) == 0
        await control.acquire(-7)
        clock.advance(1)
    assert control.delay(-7) == pytest.approx(40)
    clock.advance(40)  # the first of the twenty leaves the window
    assert control.delay(-7) == 0


async def test_thirty_per_second_overall_and_zero_turns_a_limit_off() -> None:
    clock = FakeClock(frozen=True)
    control = flood(clock)
    for chat in range(1, 31):
        await control.acquire(chat)
    assert control.delay(99) == pytest.approx(1.0)
    assert control.delay(99, Scope.DRAFT) == pytest.approx(1.0)  # drafts count overall too
    assert control.delay(99, Scope.ACTION) == 0  # typing does not
    unlimited = flood(clock, global_per_second=0, per_chat_per_second=0, per_group_per_minute=0)
    for _ in range(1000):
        await unlimited.acquire(-1)
    assert unlimited.delay(-1) == 0


def test_typing_refreshes_have_a_bot_wide_budget_even_with_limits_off() -> None:
    clock = FakeClock(frozen=True)
    control = flood(clock, global_per_second=0, per_chat_per_second=0, per_group_per_minute=0)
    refreshes = [control.try_acquire(chat, Scope.REFRESH) for chat in range(TYPING_REFRESHES + 5)]
    assert [t is not None for t in refreshes] == [True] * TYPING_REFRESHES + [False] * 5
    assert control.try_acquire(999, Scope.ACTION) is not None  # an answer's first typing is never skipped
    assert control.delay(999) == 0  # and messages are not held back by refreshes
    clock.advance(1.01)
    assert control.try_acquire(1, Scope.REFRESH) is not None


async def test_previews_use_at_most_half_of_a_window() -> None:
    clock = FakeClock(frozen=True)
    control = flood(clock, per_chat_per_second=0)
    taken = [control.try_acquire(-7, Scope.MESSAGE) for _ in range(12)]
    assert [t is not None for t in taken] == [True] * 10 + [False] * 2
    assert control.delay(-7) == 0  # the final message still has room


async def test_a_slot_counts_until_a_period_after_the_answer() -> None:
    clock = FakeClock(frozen=True)
    control = flood(clock)
    ticket = await control.acquire(5)
    clock.advance(0.5)
    control.done(ticket)  # the request took 0.5 s
    clock.advance(0.9)
    assert control.delay(5) == pytest.approx(0.1)
    clock.advance(0.1)
    assert control.delay(5) == 0


def test_a_429_pauses_the_chat() -> None:
    clock = FakeClock(frozen=True)
    control = flood(clock)
    control.pause(5, 3.0)
    clock.advance(2)
    assert control.try_acquire(5, Scope.ACTION) is None
    assert control.delay(6) == 0
    clock.advance(1.1)
    assert control.delay(5) == 0


def test_sliding_window_rates() -> None:
    window = SlidingWindow.per(0.5, 1.0)
    assert window is not None and (window.limit, window.period) == (1, 2.0)
    assert SlidingWindow.per(0, 1.0) is None


async def test_measured_spacing_of_messages_to_one_chat() -> None:
    outbox = Outbox(FloodControl(OutboundTelegramLimits(per_chat_per_second=10), SystemClock()))
    stamps: list[float] = []

    async def send() -> None:
        stamps.append(time.monotonic())

    await asyncio.gather(*(outbox.call(1, send) for _ in range(12)))
    # Ten may go at once; the eleventh and twelfth wait until the first ones leave the 1 s window.
    busiest = max(sum(1 for t in stamps[i:] if t - s < 1.0) for i, s in enumerate(stamps))
    assert busiest == 10
    assert stamps[-1] - stamps[0] >= 1.0


async def test_optional_calls_yield_to_waiting_messages() -> None:
    control = FloodControl(OutboundTelegramLimits(), SystemClock())
    assert control.try_acquire(1, Scope.MESSAGE) is not None
    waiter = asyncio.create_task(control.acquire(1, Scope.MESSAGE))
    await asyncio.sleep(0)
    assert control.try_acquire(2, Scope.DRAFT) is None  # someone waits: previews step aside
    await waiter


async def test_updates_run_in_order_within_a_chat_and_concurrently_across_chats() -> None:
    tg = TelegramEmulator()
    a, b = tg.group(-1, "A"), tg.group(-2, "B")
    user = tg.user(1, "U")

    def upd(chat: dict[str, object]) -> Update:
        return Update.de_json(
            {
                "update_id": 1,
                "message": tg.user_message(chat, user, "x", None, None, None, None, None, None),
            },
            None,
        )

    processor = ChatOrderedProcessor(100)
    done: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        done.append(name)

    await asyncio.gather(
        processor.process_update(upd(a), work("a1", 0.2)),
        processor.process_update(upd(a), work("a2", 0.0)),
        processor.process_update(upd(b), work("b1", 0.05)),
    )
    assert done == ["b1", "a1", "a2"]


# ------------------------------------------------------------- answers against the Bot API emulator


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator() as emulator:
        yield emulator


@contextlib.asynccontextmanager
async def bot_on(tg: TelegramEmulator, *, read_timeout: float = 5.0) -> AsyncIterator[Bot]:
    """PTB's Bot talking to the emulator."""
    async with Bot(
        BOT_TOKEN, base_url=f"{tg.base_url}/bot", request=HTTPXRequest(read_timeout=read_timeout)
    ) as bot:
        yield bot


def answer_writer(bot: Bot, chat_id: int, drafts: DraftSupport | None = None) -> AnswerWriter:
    """A writer for one answer in a private chat, with no per-chat pacing (the tests send few messages)."""
    return AnswerWriter(
        bot,
        Outbox(FloodControl(OutboundTelegramLimits(per_chat_per_second=0), SystemClock())),
        Target(chat_id, is_private=True, draft_id=7),
        interval=0.05,
        drafts=drafts or DraftSupport(True),
    )


async def script(*items: ReplyEvent | float) -> AsyncIterator[ReplyEvent]:
    """The events of one answer; a number is a pause in seconds."""
    for item in items:
        if isinstance(item, float):
            await asyncio.sleep(item)
        else:
            yield item


LONG_ANSWER = "\n\n".join([("Some **bold** words in a sentence. " * 10).strip()] * 18)  # two messages


async def test_a_failed_second_message_is_sent_alone_as_plain_text(tg: TelegramEmulator) -> None:
    chat = tg.private_chat(tg.user(501, "Ann"))
    # The second message meets three server errors (the outbox's retries): the answer's last resort.
    tg.fail("sendMessage", Fault(500, "Internal Server Error"), times=3, after=1, chat_id=chat["id"])
    async with bot_on(tg) as bot:
        await answer_writer(bot, chat["id"]).write(script(FinalAnswer(LONG_ANSWER)))
    first, second = tg.bot_messages(chat["id"])  # not the first one again
    assert first.parse_mode == "HTML" and second.parse_mode is None
    assert f"{first.text}\n\n{second.text}" == LONG_ANSWER.replace("**", "")


async def test_a_timed_out_message_is_not_sent_again(tg: TelegramEmulator) -> None:
    chat = tg.private_chat(tg.user(502, "Bob"))
    tg.stall("sendMessage", 1.5, chat_id=chat["id"])  # delivered, but the answer comes too late
    async with bot_on(tg, read_timeout=0.5) as bot:
        await answer_writer(bot, chat["id"]).write(script(FinalAnswer(LONG_ANSWER)))
    texts = tg.texts(chat["id"])
    assert len(texts) == 2  # the first part once, then the second
    assert "\n\n".join(texts) == LONG_ANSWER.replace("**", "")


async def test_a_draft_refused_in_one_chat_keeps_drafts_on(tg: TelegramEmulator) -> None:
    chat = tg.private_chat(tg.user(503, "Cid"))
    drafts = DraftSupport(True)
    answer = script(Typing(), Delta("Hello"), 0.3, Delta(" there"), 0.3, FinalAnswer("Hello there!"))
    tg.fail("sendMessageDraft", Fault.bad_request("chat not found"), chat_id=chat["id"])
    async with bot_on(tg) as bot:
        await answer_writer(bot, chat["id"], drafts).write(answer)
        assert drafts.enabled  # only this answer fell back to an edited message
        [message] = tg.bot_messages(chat["id"])
        assert message.text == "Hello there!" and message.edits >= 1  # a preview, edited

        # A Bot API server without the method answers 404 Not Found: drafts go off for every chat.
        tg.fail("sendMessageDraft", Fault(404, "Not Found"), chat_id=chat["id"])
        answer = script(Delta("Again"), 0.3, FinalAnswer("Again"))
        await answer_writer(bot, chat["id"], drafts).write(answer)
        assert not drafts.enabled
        assert tg.texts(chat["id"]) == ["Hello there!", "Again"]


# -------------------------------------------------------------------------- the adapter, in-process

Start = Callable[..., Awaitable[tuple[TelegramAdapter, App]]]


@pytest.fixture
async def start_adapter(
    app_factory: Callable[..., Awaitable[App]], tg: TelegramEmulator
) -> AsyncIterator[Start]:
    """Start a Telegram adapter (polling unless told otherwise) on the emulator; stopped after the test."""
    adapters: list[TelegramAdapter] = []

    async def start(**telegram: Any) -> tuple[TelegramAdapter, App]:
        app = await app_factory(
            telegram={"enabled": True, "token": BOT_TOKEN, "base_url": tg.base_url, **telegram}
        )
        server = HttpServer(app.settings.server, app.metrics, app.store)
        adapter = TelegramAdapter(adapter_deps(app, server, app.settings.telegram))
        adapters.append(adapter)
        await adapter.start()
        return adapter, app

    yield start
    for adapter in adapters:
        await adapter.stop(grace=10.0)


async def eventually(predicate: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def reconnects(app: App) -> float:
    return (
        app.metrics.registry.get_sample_value("gembot_adapter_reconnects_total", {"platform": "telegram"})
        or 0
    )


async def test_webhook_set_up_is_retried_and_readiness_says_why(
    start_adapter: Start, tg: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PTB < 23 warns when a RetryAfter is built unless it is told to use timedelta already.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    tg.fail("setMyCommands", Fault.server_error())
    tg.fail("setWebhook", Fault.flood(1))
    adapter, app = await start_adapter(
        mode="webhook", webhook_url="http://127.0.0.1:9/telegram/webhook", webhook_secret="s3cret"
    )
    problems: list[str] = []

    async def ready() -> bool:
        problem = await adapter.ready()
        if problem is not None:
            problems.append(problem)
        return problem is None

    await eventually(ready)
    assert any("cannot reach the Bot API" in p for p in problems), problems
    assert any("flood control" in p for p in problems), problems
    assert set(tg.commands) == {"", "zh"}
    assert tg.webhook["url"] == "http://127.0.0.1:9/telegram/webhook"
    flooded, done = tg.calls_to("setWebhook")
    assert flooded.status == 429 and done.status == 200
    assert done.at - flooded.at >= 1.0  # retry_after was honoured
    assert reconnects(app) == 2


async def test_polling_errors_count_as_reconnects(start_adapter: Start, tg: TelegramEmulator) -> None:
    tg.fail("getUpdates", Fault.server_error())
    adapter, app = await start_adapter()

    async def counted() -> bool:
        return reconnects(app) == 1

    await eventually(counted)
    assert 'gembot_adapter_reconnects_total{platform="telegram"} 1.0' in app.metrics.render().decode()
    assert await adapter.ready() == "polling failed recently (NetworkError)"


async def test_a_photo_that_cannot_be_fetched_is_answered_once_in_order(
    start_adapter: Start, tg: TelegramEmulator, gemini: GeminiEmulator
) -> None:
    adapter, _ = await start_adapter()
    await eventually(lambda: _is_ready(adapter))
    ann = tg.user(601, "Ann")
    chat = tg.private_chat(ann)
    tg.fail("getFile", Fault.bad_request("wrong file_id or the file is temporarily unavailable"))
    tg.send(chat, ann, photo=[b"\xff\xd8jpeg"], caption="What is this?")
    tg.send(chat, ann, "and this?")
    await tg.wait_for(lambda: len(tg.texts(chat["id"])) == 2)
    await asyncio.sleep(0.3)
    assert len(tg.texts(chat["id"])) == 2 and tg.texts(chat["id"])[1] == "echo: and this?"
    assert not [c for c in tg.calls if c.method == "file"]  # nothing was downloaded
    photo = base64.b64encode(b"\xff\xd8jpeg").decode()
    assert not [r for r in gemini.requests if photo in json.dumps(r.body)]  # no bytes reached Gemini


async def _is_ready(adapter: TelegramAdapter) -> bool:
    return await adapter.ready() is None


# ----------------------------------------------------------------- flood protection, access

NO_PACING = {"rate_limit": {"global_per_second": 0, "per_chat_per_second": 0, "per_group_per_minute": 0}}


def metric(app: App, name: str, **labels: str) -> float:
    return app.metrics.registry.get_sample_value(name, labels) or 0


async def inbox_rows(app: App, chat_id: int) -> int:
    async with app.store.engine.connect() as db:
        result = await db.exec_driver_sql("SELECT count(*) FROM inbox WHERE chat_key = ?", (str(chat_id),))
        return int(result.scalar_one())


async def test_a_flooding_chat_cannot_stall_the_others(
    start_adapter: Start, tg: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fewer update slots than the flood, so that without the per-chat cap the flood would hold them all.
    monkeypatch.setattr("adapters.telegram.adapter.MAX_CONCURRENT_UPDATES", MAX_CHAT_BACKLOG + 10)
    adapter, app = await start_adapter(**NO_PACING)
    await eventually(lambda: _is_ready(adapter))
    flooder, other = tg.user(701, "Flo"), tg.user(702, "Oda")
    flooding, calm = tg.private_chat(flooder), tg.private_chat(other)
    release = tg.hold("sendMessage", chat_id=flooding["id"])  # its first answer stays in progress
    for n in range(MAX_CHAT_BACKLOG + 20):
        tg.send(flooding, flooder, f"m{n}")
    tg.send(calm, other, "still there?")
    try:
        await tg.wait_for(lambda: tg.texts(calm["id"]) == ["echo: still there?"])
        assert tg.texts(flooding["id"]) == []  # answered while the flooding chat's first answer is held
    finally:
        release.set()
    dropped = {"platform": "telegram", "outcome": "error", "detail": "flood_dropped"}
    assert metric(app, "gembot_messages_total", **dropped) == 20
    assert metric(app, "gembot_refusals_total", reason="flood") == 20
    await tg.wait_for(lambda: len(tg.texts(flooding["id"])) == MAX_CHAT_BACKLOG)
    assert tg.texts(flooding["id"]) == [f"echo: m{n}" for n in range(MAX_CHAT_BACKLOG)]
    assert await inbox_rows(app, flooding["id"]) == MAX_CHAT_BACKLOG  # the dropped ones were never recorded

    # The burst is over: the chat is served again.
    tg.send(flooding, flooder, "calm now")
    await tg.wait_for(lambda: tg.texts(flooding["id"])[-1:] == ["echo: calm now"])


async def test_group_chatter_does_not_fill_the_backlog(start_adapter: Start, tg: TelegramEmulator) -> None:
    adapter, _ = await start_adapter(**NO_PACING)
    await eventually(lambda: _is_ready(adapter))
    group, ivy = tg.group(-7001, "Busy"), tg.user(703, "Ivy")
    release = tg.hold("sendMessage", chat_id=group["id"])
    tg.send(group, ivy, "@gembot_test_bot first")
    for n in range(MAX_CHAT_BACKLOG + 10):  # people talking among themselves while the bot answers
        tg.send(group, ivy, f"chatter {n}")
    tg.send(group, ivy, "@gembot_test_bot second")
    try:
        await tg.wait_for(lambda: tg.calls_to("sendMessage", chat_id=group["id"]))
    finally:
        release.set()
    await tg.wait_for(lambda: len(tg.texts(group["id"])) == 2)
    assert tg.texts(group["id"]) == ["echo: Ivy: first", "echo: Ivy: second"]


async def test_anonymous_admin_of_a_listed_group_is_an_admin_there_only(
    start_adapter: Start, tg: TelegramEmulator
) -> None:
    admins_group, other_group = tg.group(-7101, "Admins", supergroup=True), tg.group(-7102, "Others")
    adapter, _ = await start_adapter(admin_ids=[admins_group["id"]])
    await eventually(lambda: _is_ready(adapter))
    tg.send_as_chat(admins_group, "/stats", signature="Owner")
    tg.send_as_chat(admins_group, "@gembot_test_bot remember figs", signature="Owner")
    tg.send_as_chat(admins_group, "/reset")
    # A linked channel's post is not the group's admin: ignored (a plain member's /stats comes next).
    tg.send_as_chat(admins_group, "/stats", sender_chat={"id": -7103, "type": "channel", "title": "News"})
    tg.send(admins_group, tg.user(704, "Max"), "/stats")
    tg.send_as_chat(other_group, "/stats")  # another group's anonymous admin
    await tg.wait_for(lambda: len(tg.texts(admins_group["id"])) == 4 and tg.texts(other_group["id"]))
    report, reply, reset, denied = tg.texts(admins_group["id"])
    assert "P50" in report, report
    assert reply == "echo: Owner: remember figs"
    assert "afresh" in reset
    assert "admin" in denied.lower()
    [other_denied] = tg.texts(other_group["id"])
    assert other_denied == denied


async def test_an_allowed_group_keeps_the_bot_after_becoming_a_supergroup(
    start_adapter: Start, tg: TelegramEmulator
) -> None:
    old = tg.group(-7201, "Small")
    adapter, _ = await start_adapter(allowed_chat_ids=[old["id"]], admin_ids=[old["id"]])
    await eventually(lambda: _is_ready(adapter))
    kim = tg.user(705, "Kim")
    tg.send(old, kim, "@gembot_test_bot remember plums")
    await tg.wait_for(lambda: tg.texts(old["id"]))
    new = tg.migrate(old, -1_000_000_007_201, kim)
    tg.send(new, kim, "@gembot_test_bot still here?")
    tg.send_as_chat(new, "/stats")  # the group's anonymous admins stay its admins
    await tg.wait_for(lambda: len(tg.texts(new["id"])) == 2)
    reply, report = tg.texts(new["id"])
    assert reply == "echo: Kim: still here?"
    assert "P50" in report, report
    # Another group the allow-list does not name still gets silence.
    stranger = tg.group(-7202, "Stranger")
    tg.send(stranger, kim, "@gembot_test_bot hello?")
    tg.send(new, kim, "@gembot_test_bot and now?")
    await tg.wait_for(lambda: len(tg.texts(new["id"])) == 3)
    assert tg.texts(stranger["id"]) == []
