"""``gembot run`` over Telegram with per-chat models and personas, budgets and /usage: the emulators see
what a real deployment would send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import API_KEY
from tests.e2e.test_telegram import ADMIN, Gembot, answers, next_id, start_gembot, stop_gembot
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.telegram import TelegramEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

OPERATOR = "You are a helpful assistant."
PIRATE = "Answer like a pirate."
SECTIONS: dict[str, Any] = {
    "gemini": {"system_instruction": OPERATOR},
    "models": {"allowed": ["gemini-2.5-pro"], "labels": {"gemini-2.5-pro": "Pro"}},
    "personas": {"pirate": {"system_instruction": PIRATE, "description": "Arr"}},
    "budgets": {"tokens_per_user_per_day": 100},
    "filter": {"words": ["forbidden"]},
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gembot]:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        running = await start_gembot(tmp_path_factory.mktemp("settings"), gemini, tg, sections=SECTIONS)
        yield running
        log = await stop_gembot(running)
        assert "Traceback" not in log, log


@pytest.fixture
def tg(bot: Gembot) -> TelegramEmulator:
    bot.gemini.reset()
    return bot.tg


def _system(gemini: GeminiEmulator) -> str:
    return "".join(p["text"] for p in gemini.requests[-1].body["systemInstruction"]["parts"])


async def test_a_private_chat_switches_model_and_the_next_request_goes_to_it(
    tg: TelegramEmulator, bot: Gembot
) -> None:
    ann = tg.user(next_id(), "Ann")
    chat = tg.private_chat(ann)
    tg.send(chat, ann, "/model")
    [listed] = await answers(tg, chat["id"], 1)
    assert "gemini-2.5-flash" in listed and "Pro (gemini-2.5-pro)" in listed
    tg.send(chat, ann, "/model gemini-2.5-pro")
    await answers(tg, chat["id"], 2)
    tg.send(chat, ann, "which model?")
    await answers(tg, chat["id"], 3)
    assert bot.gemini.requests[-1].path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"


async def test_a_non_admin_in_a_group_cannot_switch_and_is_told_why(
    tg: TelegramEmulator, bot: Gembot
) -> None:
    bea = tg.user(next_id(), "Bea")
    group = tg.group(-next_id(), "Friends", supergroup=True)
    tg.send(group, bea, "/model@gembot_test_bot gemini-2.5-pro")
    [denied] = await answers(tg, group["id"], 1)
    assert "Only an admin can change this chat's settings" in denied
    tg.send(group, tg.user(ADMIN, "Boss"), "/model gemini-2.5-pro")
    assert "now uses" in (await answers(tg, group["id"], 2))[1]


async def test_a_persona_follows_the_operators_instruction(tg: TelegramEmulator, bot: Gembot) -> None:
    cid = tg.user(next_id(), "Cid")
    chat = tg.private_chat(cid)
    tg.send(chat, cid, "/persona pirate")
    await answers(tg, chat["id"], 1)
    tg.send(chat, cid, "ahoy")
    await answers(tg, chat["id"], 2)
    assert _system(bot.gemini) == f"{OPERATOR}\n\n{PIRATE}"


async def test_a_custom_persona_with_a_filtered_word_is_refused(tg: TelegramEmulator, bot: Gembot) -> None:
    dee = tg.user(next_id(), "Dee")
    chat = tg.private_chat(dee)
    tg.send(chat, dee, "/persona custom say forbidden things")
    [refused] = await answers(tg, chat["id"], 1)
    assert "not allowed" in refused
    tg.send(chat, dee, "hello")
    await answers(tg, chat["id"], 2)
    assert _system(bot.gemini) == OPERATOR


async def test_usage_and_the_budget_refusal_follow_usage_metadata(tg: TelegramEmulator, bot: Gembot) -> None:
    eve = tg.user(next_id(), "Eve")
    chat = tg.private_chat(eve)
    bot.gemini.script(
        Reply("big", usage={"promptTokenCount": 60, "candidatesTokenCount": 30, "thoughtsTokenCount": 15})
    )
    tg.send(chat, eve, "a long question")
    await answers(tg, chat["id"], 1)
    tg.send(chat, eve, "/usage")
    usage = (await answers(tg, chat["id"], 2))[1]
    assert "today: 1 message; 105 tokens of 100 (100%), frees in" in usage
    calls = len(bot.gemini.requests)
    tg.send(chat, eve, "another question")
    refused = (await answers(tg, chat["id"], 3))[2]
    assert "used up your daily Gemini budget" in refused and "UTC" in refused
    assert len(bot.gemini.requests) == calls
