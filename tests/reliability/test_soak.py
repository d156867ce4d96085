"""Soak: many users on Telegram and Slack at once, with Gemini faults, Telegram 429s and Slack redeliveries.

Promises checked: every accepted message gets exactly one answer (the
reply or a clear notice), also when Slack delivers an event twice; answers within a conversation come in
the order of the messages; and the database is consistent afterwards: every inbox row answered, one
stored exchange per successful Gemini answer (none for a notice or a cut reply), every Gemini HTTP
attempt recorded and counted against the quota.

One ``gembot run`` process serves both platforms (Telegram polling, Slack http mode). Gemini's default
behaviour is a seeded random mix (:class:`FaultyGemini`): 10 % of the requests get a 429, 500, 503, a
timeout or a cut stream, the rest echo the user's text, which carries a tag identifying the message.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from tests.fakes.slack import EventSender, SlackEmulator, event_callback, mention_event, message_event, new_ts
from tests.fakes.telegram import Fault, TelegramEmulator
from tests.reliability.conftest import (
    SEED,
    SIZE,
    TAG,
    FaultyGemini,
    Gembot,
    Sent,
    bot_config,
    conversation_answers,
    db_rows,
    finished,
    report,
    tag,
    tally,
    wait_until,
)

pytestmark = [pytest.mark.e2e]

FAULT_RATE = 0.10
TELEGRAM_429_EVERY = 20  # one sendMessage in this many gets a 429 (retry_after 1 s)
SLACK_REDELIVERY_RATE = 0.10
SLACK_429_EVERY = 50


def plan(messages: int, users: int) -> list[tuple[str, int, int]]:
    """(platform, user, n): users split between Telegram and Slack, messages dealt round-robin."""
    out: list[tuple[str, int, int]] = []
    counts: Counter[int] = Counter()
    for i in range(messages):
        user = i % users
        platform = "telegram" if user % 2 == 0 else "slack"
        out.append((platform, user, counts[user]))
        counts[user] += 1
    return out


async def send_telegram(tg: TelegramEmulator, items: list[tuple[str, int, int]]) -> list[Sent]:
    """Inject every Telegram message at once (private chats), in plan order."""
    sent: list[Sent] = []
    for _, user, n in items:
        who = tg.user(100_000 + user, f"User{user}")
        chat = tg.private_chat(who)
        label = tag("tg", user, n)
        text = f"{label} {'please answer' if n % 3 else '**bold** question ✓'}"
        message = tg.send(chat, who, text)
        sent.append(Sent(label, ("telegram", chat["id"], None), text, message_id=message["message_id"]))
    return sent


async def send_slack(
    sender: EventSender, slack: SlackEmulator, items: list[tuple[str, int, int]], rng: random.Random
) -> tuple[list[Sent], Counter[str]]:
    """Each Slack user posts its messages one after the other (a DM, or a channel thread it started).

    About 10 % of the events are delivered twice (a Slack retry, sometimes racing the first delivery);
    a channel mention is also delivered as the plain ``message`` event Slack sends for it.
    """
    by_user: dict[int, list[int]] = {}
    for _, user, n in items:
        by_user.setdefault(user, []).append(n)
    redeliveries: Counter[str] = Counter()
    sent: list[Sent] = []

    async def one_user(user: int, numbers: list[int]) -> None:
        slack_user = f"U{user:06d}"
        in_dm = user % 4 == 1
        channel = f"D{user:06d}" if in_dm else f"C{user:06d}"
        thread: str | None = None
        for n in numbers:
            label = tag("sl", user, n)
            text = f"{label} please answer"
            ts = new_ts()
            if in_dm:
                event = message_event(text, channel=channel, user=slack_user, ts=ts)
                where = ("slack", channel, None)
            elif thread is None:
                thread = ts
                event = mention_event(text, channel=channel, user=slack_user, ts=ts)
                where = ("slack", channel, thread)
            else:
                event = message_event(text, channel=channel, user=slack_user, ts=ts, thread_ts=thread)
                where = ("slack", channel, thread)
            sent.append(Sent(label, where, text, ts=ts))
            envelope = event_callback(event)
            roll = rng.random()
            if roll < SLACK_REDELIVERY_RATE / 2:
                # A retry racing the first delivery (Slack did not see the ack in time).
                statuses = await asyncio.gather(
                    sender.event({}, envelope=envelope),
                    sender.event({}, envelope=envelope, retry_num=1),
                )
                redeliveries["racing_retry"] += 1
                assert [s for s, _ in statuses] == [200, 200]
            else:
                status, _ = await sender.event({}, envelope=envelope)
                assert status == 200
                if roll < SLACK_REDELIVERY_RATE:
                    status, _ = await sender.event({}, envelope=envelope, retry_num=1)
                    assert status == 200
                    redeliveries["retry"] += 1
            if event["type"] == "app_mention" and rng.random() < 0.5:
                # Slack sends a channel message that mentions the app twice: app_mention and message.
                twin = message_event(event["text"], channel=channel, user=slack_user, ts=ts)
                status, _ = await sender.event(twin)
                assert status == 200
                redeliveries["mention_twin"] += 1
            await asyncio.sleep(rng.random() * 0.02)

    await asyncio.gather(*(one_user(user, numbers) for user, numbers in by_user.items()))
    order = {(s.conversation, s.ts): i for i, s in enumerate(sent)}
    sent.sort(key=lambda s: order[(s.conversation, s.ts)])
    return sent, redeliveries


async def inject_telegram_429s(tg: TelegramEmulator, total: int, stop: asyncio.Event) -> int:
    """Spread ``total`` one-off 429s on sendMessage over the run."""
    injected = 0
    while injected < total and not stop.is_set():
        tg.fail("sendMessage", Fault.flood(1))
        injected += 1
        await asyncio.sleep(0.05)
    return injected


async def test_soak_every_message_gets_exactly_one_answer_in_order(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    items = plan(SIZE.soak_messages, SIZE.soak_users)
    tg_items = [i for i in items if i[0] == "telegram"]
    slack_items = [i for i in items if i[0] == "slack"]
    async with (
        FaultyGemini(api_key=API_KEY, seed=SEED, fault_rate=FAULT_RATE) as gemini,
        TelegramEmulator() as tg,
        SlackEmulator() as slack,
    ):
        bot = Gembot(tmp_path / "soak", bot_config(tmp_path / "soak", gemini, tg=tg, slack=slack))
        await bot.start()
        started = time.monotonic()
        stop = asyncio.Event()
        flood = asyncio.create_task(inject_telegram_429s(tg, len(tg_items) // TELEGRAM_429_EVERY, stop))
        for _ in range(max(1, len(slack_items) // SLACK_429_EVERY)):
            slack.rate_limit("chat.postMessage", times=1, retry_after=1)
        try:
            async with EventSender(f"{bot.url}/slack/events") as sender:
                tg_sent = await send_telegram(tg, tg_items)
                slack_sent, redeliveries = await send_slack(sender, slack, slack_items, rng)
                sent = tg_sent + slack_sent
                expected = Counter(s.conversation for s in sent)

                def all_answered() -> bool:
                    for conversation, count in expected.items():
                        answers = conversation_answers(tg, slack, conversation)
                        if len(answers) < count or not all(finished(a) for a in answers):
                            return False
                    return True

                done = await wait_until(all_answered, within=SIZE.soak_timeout)
                elapsed = time.monotonic() - started
                # Give late duplicates (a second answer to one message) time to show up.
                await asyncio.sleep(1.5)
        finally:
            stop.set()
            telegram_429s = await flood
            status = await bot.stop()
        log = bot.log()
        result = tally(sent, tg, slack)

    assert status == 0, log[-5000:]
    counts = _database_counts(bot.db_path)
    echoed = {t for t, text in result.replies.items() if text.startswith("echo: ")}
    figures: dict[str, Any] = {
        "messages": len(sent),
        "users": SIZE.soak_users,
        "seconds": round(elapsed, 1),
        "gemini_requests": gemini.generate_requests,
        "gemini_faults": gemini.faults_served,
        "gemini_faults_by_kind": {k: v for k, v in gemini.served.items() if k != "ok"},
        "telegram_429s": sum(1 for c in tg.calls_to("sendMessage") if c.status == 429),
        "telegram_429s_scheduled": telegram_429s,
        "slack_429s": sum(1 for c in slack.calls if c.status == 429),
        "slack_redeliveries": dict(redeliveries),
        "answered": sum(1 for n in result.answers.values() if n >= 1),
        "unanswered": len(result.unanswered),
        "duplicates": len(result.duplicated),
        "out_of_order": len(result.out_of_order),
        "replies": len(echoed),
        "notices_or_cut": len(sent) - len(echoed) - len(result.unanswered),
        "db": {k: v for k, v in counts.items() if k != "turn_tags"},
    }
    report("soak", figures)

    assert done, f"not every message was answered within {SIZE.soak_timeout} s: {result.unanswered[:20]}"
    assert result.unanswered == [], f"unanswered: {result.unanswered[:20]}"
    assert result.duplicated == [], f"answered twice: {result.duplicated[:20]}"
    assert result.unattributed == [], result.unattributed[:20]
    assert result.out_of_order == [], result.out_of_order[:20]
    assert gemini.faults_served > 0 and figures["telegram_429s"] > 0
    assert "Traceback" not in log, log[-5000:]

    # The database afterwards: every message has one inbox row, answered; no half exchange.
    assert counts["inbox_by_status"] == {"answered": len(sent)}, counts
    assert counts["turns"] == len(echoed), (
        "one stored exchange per successful Gemini answer (none for notices or cut replies)"
    )
    assert counts["turn_tags"] == sorted(echoed), "each stored exchange is one that was answered"
    assert counts["llm_calls"] == gemini.generate_requests, "every Gemini HTTP attempt is recorded"
    assert counts["quota_month"] == gemini.generate_requests, "every attempt counts against the quota"


def _database_counts(path: Path) -> dict[str, Any]:
    inbox = dict(db_rows(path, "SELECT status, count(*) FROM inbox GROUP BY status"))
    turns = db_rows(path, "SELECT user_text FROM turns")
    calls = db_rows(path, "SELECT count(*) FROM llm_calls")[0][0]
    quota = db_rows(path, "SELECT window, count FROM quota_counters")
    return {
        "inbox_by_status": inbox,
        "turns": len(turns),
        "turn_tags": sorted(m.group(0) for (text,) in turns if (m := TAG.search(text))),
        "llm_calls": calls,
        "quota_month": sum(n for window, n in quota if window == "month"),
    }
