"""``gembot run`` with Telegram (polling, inline mode on) and Slack (http mode) at once: Telegram inline
queries, and votes on answers from both platforms in /stats, the metrics and /forget."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import API_KEY
from tests.e2e.test_telegram import Gembot, next_id, start_gembot, stop_gembot
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.slack import (
    BOT_TOKEN as SLACK_TOKEN,
)
from tests.fakes.slack import (
    SIGNING_SECRET,
    EventSender,
    SlackEmulator,
    feedback_click,
    message_event,
)
from tests.fakes.telegram import BOT_TOKEN, TelegramEmulator, html_to_entities

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = 4242  # the Telegram admin of start_gembot's config


@dataclass
class World:
    tg: TelegramEmulator
    gemini: GeminiEmulator
    slack: SlackEmulator
    sender: EventSender
    bot: Gembot


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with (
        TelegramEmulator() as tg,
        GeminiEmulator(api_key=API_KEY) as gemini,
        SlackEmulator() as slack,
    ):
        tg.supports_inline_queries = True
        bot = await start_gembot(
            tmp_path_factory.mktemp("feedback"),
            gemini,
            tg,
            inline=True,
            sections={"slack": slack.http_mode_config(admin_ids=["UADMIN"])},
            environ={"SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET},
        )
        try:
            async with EventSender(f"{bot.url}/slack/events") as sender:
                yield World(tg, gemini, slack, sender, bot)
        finally:
            log = await stop_gembot(bot)
            for secret in (BOT_TOKEN, SLACK_TOKEN, SIGNING_SECRET, API_KEY):
                assert secret not in log
            assert "Traceback" not in log, log


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.gemini.reset()
    world.gemini.latency = 0.0


async def metric(world: World, name: str, **labels: str) -> float:
    """A sample of /metrics (0 when the series does not exist yet)."""
    async with aiohttp.ClientSession() as session, session.get(f"{world.bot.url}/metrics") as response:
        body = await response.text()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == (f"{name}{{{wanted}}}" if wanted else name):
            return float(value)
    return 0.0


async def telegram_answer(world: World, user: dict[str, object], text: str) -> int:
    """Ask in the user's private chat; the id of the bot's answer."""
    chat = world.tg.private_chat(user)
    before = len(world.tg.bot_messages(int(chat["id"])))
    world.tg.send(chat, user, text)
    await world.tg.wait_for(lambda: len(world.tg.bot_messages(int(chat["id"]))) > before, within=15)
    return world.tg.bot_messages(int(chat["id"]))[-1].message_id


async def telegram_stats(world: World) -> str:
    admin = world.tg.user(ADMIN, "Admin")
    chat = world.tg.private_chat(admin)
    before = len(world.tg.texts(ADMIN))
    world.tg.send(chat, admin, "/stats")
    await world.tg.wait_for(lambda: len(world.tg.texts(ADMIN)) > before, within=15)
    return world.tg.texts(ADMIN)[-1]


# ------------------------------------------------------------------------------------- inline mode


async def test_inline_query_typed_in_five_steps_gets_one_gemini_call_and_one_answer(world: World) -> None:
    tg, gemini = world.tg, world.gemini
    gemini.script(Reply(text="**Paris** is the capital of France."))
    user = tg.user(next_id(), "Ina")
    ids = []
    for typed in (
        "Wh",
        "What is",
        "What is the cap",
        "What is the capital of",
        "What is the capital of France?",
    ):
        ids.append(tg.inline_query(user, typed))
        await asyncio.sleep(0.15)  # typing: quicker than the bot's pause
    await tg.wait_for(lambda: ids[-1] in tg.inline_answers, within=15)
    await asyncio.sleep(1.2)  # a late answer to an older query would show now
    assert list(tg.inline_answers) == [ids[-1]]
    assert len(tg.calls_to("answerInlineQuery")) == 1
    assert len(gemini.requests) == 1
    assert gemini.requests[0].contents() == [("user", "What is the capital of France?")]
    answer = tg.inline_answers[ids[-1]]
    assert answer["is_personal"] is True and 0 < int(answer["cache_time"]) <= 60
    [result] = answer["results"]
    assert result["type"] == "article" and result["title"] == "What is the capital of France?"
    content = result["input_message_content"]
    plain, entities = html_to_entities(content["message_text"])
    assert content["parse_mode"] == "HTML"
    assert plain == "Paris is the capital of France."
    assert entities and entities[0]["type"] == "bold"

    # Nothing was kept as history: the user's next private message goes to Gemini alone.
    await telegram_answer(world, user, "and Germany?")
    assert gemini.requests[-1].contents() == [("user", "and Germany?")]

    chosen = await metric(world, "gembot_inline_chosen_total")
    tg.choose_inline_result(user, ids[-1], result["id"])
    for _ in range(50):
        if await metric(world, "gembot_inline_chosen_total") == chosen + 1:
            break
        await asyncio.sleep(0.1)
    assert await metric(world, "gembot_inline_chosen_total") == chosen + 1
    assert await metric(world, "gembot_inline_queries_total", outcome="superseded") >= 4


async def test_blank_inline_query_is_not_asked(world: World) -> None:
    tg, gemini = world.tg, world.gemini
    user = tg.user(next_id(), "Ivo")
    query_id = tg.inline_query(user, "  ")
    other = tg.inline_query(user, "hello inline")
    await tg.wait_for(lambda: other in tg.inline_answers, within=15)
    assert query_id not in tg.inline_answers  # only spaces: nothing asked yet
    assert len(gemini.requests) == 1


# ------------------------------------------------------------------------------------------- votes


async def test_votes_on_both_platforms_show_in_stats_and_metrics_and_forget_erases_them(world: World) -> None:
    tg, slack = world.tg, world.slack
    up = {
        p: await metric(world, "gembot_feedback_total", platform=p, value="up") for p in ("telegram", "slack")
    }
    down = {
        p: await metric(world, "gembot_feedback_total", platform=p, value="down")
        for p in ("telegram", "slack")
    }
    withdrawn = await metric(world, "gembot_feedback_total", platform="telegram", value="withdrawn")

    # Telegram: Ann 👍; Ben 👎 then changes to 🔥; Cid 👍 then takes it back; Dee reacts 🤔 (no vote).
    ann, ben, cid, dee = (tg.user(next_id(), name) for name in ("Ann", "Ben", "Cid", "Dee"))
    answers = {
        u["id"]: await telegram_answer(world, u, f"question of {u['first_name']}")
        for u in (ann, ben, cid, dee)
    }
    for user, emoji in ((ann, ["👍"]), (ben, ["👎"]), (ben, ["🔥"]), (cid, ["👍"]), (cid, []), (dee, ["🤔"])):
        tg.react(tg.private_chat(user), user, answers[user["id"]], emoji)
    # A reaction on the user's own message is not a vote.
    tg.react(tg.private_chat(ann), ann, answers[ann["id"]] - 1, ["👎"])

    # Slack: U1 asks in a DM; the answer's last message carries the buttons; U1 clicks 👍, U2 👎.
    dm = "DFEEDBACK1"
    await world.sender.event(message_event("slack question", channel=dm, user="U1"))
    await slack.wait_for(lambda: any(m.blocks for m in slack.thread(dm, None)))
    [message] = slack.thread(dm, None)
    assert message.text == "echo: slack question"
    assert message.blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "echo: slack question"},
    }
    actions = message.blocks[-1]
    assert actions["type"] == "context_actions"
    buttons = actions["elements"][0]
    assert buttons["type"] == "feedback_buttons"
    assert buttons["positive_button"]["value"] == "positive"
    assert buttons["negative_button"]["value"] == "negative"
    for user, value in (("U1", "positive"), ("U2", "negative")):
        payload = feedback_click(message, user=user, value=value, action_id=buttons["action_id"])
        status, _ = await world.sender.interaction(payload)
        assert status == 200
    await slack.wait_for(lambda: len(slack.ephemerals) >= 2)
    assert {e.user for e in slack.ephemerals} >= {"U1", "U2"}
    assert all("Thanks" in e.text for e in slack.ephemerals)

    async def counted() -> bool:
        return (
            await metric(world, "gembot_feedback_total", platform="telegram", value="up")
            == up["telegram"] + 3
            and await metric(world, "gembot_feedback_total", platform="telegram", value="down")
            == down["telegram"] + 1
            and await metric(world, "gembot_feedback_total", platform="telegram", value="withdrawn")
            == withdrawn + 1
            and await metric(world, "gembot_feedback_total", platform="slack", value="up") == up["slack"] + 1
            and await metric(world, "gembot_feedback_total", platform="slack", value="down")
            == down["slack"] + 1
        )

    for _ in range(100):
        if await counted():
            break
        await asyncio.sleep(0.1)
    assert await counted()

    # Standing: Ann up, Ben up (changed), U1 up, U2 down; Cid withdrew, Dee never voted.
    stats = await telegram_stats(world)
    assert "satisfaction [24h]: 👍 75% (3 👍, 1 👎)" in stats, stats
    assert "satisfaction [30d]: 👍 75% (3 👍, 1 👎)" in stats, stats

    # /forget erases Ann's vote with the rest of what she left.
    tg.send(tg.private_chat(ann), ann, "/forget")
    await tg.wait_for(lambda: any("Done" in t for t in tg.texts(int(ann["id"]))), within=15)
    stats = await telegram_stats(world)
    assert "satisfaction [24h]: 👍 67% (2 👍, 1 👎)" in stats, stats
    # Her reaction on the answer she erased no longer counts.
    tg.react(tg.private_chat(ann), ann, answers[ann["id"]], ["❤️"])
    await asyncio.sleep(0.5)
    assert "(2 👍, 1 👎)" in await telegram_stats(world)


async def test_inline_mode_off_ignores_inline_queries(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        bot = await start_gembot(tmp_path_factory.mktemp("inline-off"), gemini, tg)
        try:
            user = tg.user(next_id(), "Oli")
            query_id = tg.inline_query(user, "anyone there?")
            # A private message after it is answered: the query had its chance to be answered first.
            chat = tg.private_chat(user)
            tg.send(chat, user, "hello")
            await tg.wait_for(lambda: tg.texts(int(chat["id"])), within=15)
            await asyncio.sleep(1.5)
            assert query_id not in tg.inline_answers
            assert not tg.calls_to("answerInlineQuery")
            assert [r.contents() for r in gemini.requests] == [[("user", "hello")]]
            polls = tg.calls_to("getUpdates")
            assert "inline_query" not in (polls[-1].params.get("allowed_updates") or [])
        finally:
            log = await stop_gembot(bot)
        assert "Traceback" not in log, log
    assert re.search(r"answerInlineQuery", log) is None
