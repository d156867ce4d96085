"""Grounded, code-executing and thinking answers through ``gembot run`` on Telegram (emulators)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import API_KEY
from tests.e2e.test_telegram import Gembot, next_id, start_gembot, stop_gembot
from tests.fakes.gemini import DEFAULT_MODELS, ErrorReply, GeminiEmulator
from tests.fakes.grounded_cases import (
    CASES,
    CODE,
    ENGLISH,
    FAILED_URL,
    GEMINI_SETTINGS,
    REJECTED_TOOLS,
    SEARCH,
    SIGNATURE,
    THINKING,
    THOUGHTS,
    Case,
    unmarked,
)
from tests.fakes.telegram import BotMessage, TelegramEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gembot]:
    models = (*DEFAULT_MODELS, "gemini-2.0-flash-lite")
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY, models=models) as gemini:
        gemini.rejected_tools = {model: set(tools) for model, tools in REJECTED_TOOLS.items()}
        running = await start_gembot(
            tmp_path_factory.mktemp("grounding"), gemini, tg, gemini_settings=GEMINI_SETTINGS
        )
        yield running
        log = await stop_gembot(running)
        assert "Traceback" not in log, log


@pytest.fixture
def tg(bot: Gembot) -> TelegramEmulator:
    bot.gemini.reset()
    return bot.tg


async def ask(tg: TelegramEmulator, text: str, chat: dict[str, Any] | None = None) -> BotMessage:
    """Send ``text`` in a private chat (a new one unless given); the bot's answer message."""
    user = tg.user(next_id(), "Ann")
    chat = chat or tg.private_chat(user)
    before = len(tg.bot_messages(chat["id"]))
    tg.send(chat, user, text)
    await tg.wait_for(lambda: len(tg.bot_messages(chat["id"])) > before, within=15)
    return tg.bot_messages(chat["id"])[before]


def entity_text(message: BotMessage, entity: dict[str, Any]) -> str:
    """The text an entity covers (its offsets count UTF-16 code units)."""
    units = message.text.encode("utf-16-le")
    start, length = entity["offset"] * 2, entity["length"] * 2
    return units[start : start + length].decode("utf-16-le")


def links(message: BotMessage) -> list[tuple[str, str]]:
    """(linked text, url) of every link in a message, in order."""
    return [(entity_text(message, e), e["url"]) for e in message.entities if e["type"] == "text_link"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_grounded_answer_shows_markers_and_linked_sources(
    tg: TelegramEmulator, bot: Gembot, case: Case
) -> None:
    bot.gemini.script(case.reply)
    chat = tg.private_chat(tg.user(next_id(), "Ann"))
    message = await ask(tg, "what is new?", chat)
    answer, _, listed = message.text.partition("\n\nSources\n")
    assert answer == case.shown
    numbered = [f"{n}. {title}" for n, (title, _) in enumerate(case.sources, 1)]
    assert listed.split("\n\nSearched: ")[0].split("\n") == numbered
    assert listed.endswith("Searched: " + " · ".join(case.searches))
    found = links(message)
    marker_links = [(text, url) for text, url in found if text.startswith("[")]
    assert marker_links and all(url in dict(case.sources).values() for _, url in marker_links)
    assert [pair for pair in found if pair[0] in dict(case.sources)] == case.sources
    searched = [url for text, url in found if text in case.searches]
    assert searched and all(url.startswith(SEARCH) for url in searched)
    # Every preview shown while streaming is still there in the final text (markers aside).
    drafts = [d["text"] for d in tg.drafts if d["chat_id"] == chat["id"]]
    assert drafts and all(unmarked(answer).startswith(unmarked(d)) for d in drafts)
    request = bot.gemini.requests[-1]
    assert request.body["tools"] == [{"googleSearch": {}}, {"urlContext": {}}, {"codeExecution": {}}]


async def test_tool_use_is_counted_in_metrics(tg: TelegramEmulator, bot: Gembot) -> None:
    bot.gemini.script(ENGLISH.reply)
    await ask(tg, "capital of Norway?")
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/metrics") as response:
        metrics = await response.text()
    [line] = [
        m for m in metrics.splitlines() if m.startswith('gembot_tool_calls_total{tool="google_search"}')
    ]
    assert float(line.split()[-1]) >= 2


async def test_code_execution_renders_as_code_and_the_follow_up_carries_the_signed_parts(
    tg: TelegramEmulator, bot: Gembot
) -> None:
    bot.gemini.script(CODE)
    chat = tg.private_chat(tg.user(next_id(), "Cid"))
    message = await ask(tg, "sum of 1..100?", chat)
    pres = [e for e in message.entities if e["type"] == "pre"]
    assert [e.get("language") for e in pres] == ["python", "output"]
    code = [entity_text(message, e) for e in pres]
    assert code == ["print(sum(range(1, 101)))", "5050"]
    assert message.text.startswith("Let me compute it.") and message.text.endswith("The sum is 5050.")

    await ask(tg, "and 1..1000?", chat)
    model_turn = bot.gemini.requests[-1].body["contents"][1]
    assert model_turn["role"] == "model"
    assert model_turn["parts"] == CODE.parts


async def test_thoughts_are_shown_collapsed_and_never_sent_back(tg: TelegramEmulator, bot: Gembot) -> None:
    bot.gemini.script(THINKING)
    chat = tg.private_chat(tg.user(next_id(), "Dan"))
    message = await ask(tg, "when does water boil?", chat)
    [quote] = [e for e in message.entities if e["type"] == "expandable_blockquote"]
    assert quote["offset"] == 0
    assert message.text[: quote["length"]] == f"Thoughts\n{THOUGHTS}"
    assert message.text.endswith("Water boils at 100 °C at sea level.")

    await ask(tg, "and on Everest?", chat)
    contents = bot.gemini.requests[-1].body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Water boils at 100 °C at sea level."},
            {"text": "", "thoughtSignature": SIGNATURE},
        ],
    }
    assert THOUGHTS not in str(contents)


async def test_a_link_that_could_not_be_read_is_mentioned(tg: TelegramEmulator, bot: Gembot) -> None:
    bot.gemini.script(FAILED_URL)
    message = await ask(tg, "compare https://broken.example/launch and https://news.example/launch")
    assert message.text.endswith("\n\nCould not open broken.example.")


async def test_each_model_family_gets_its_thinking_setting_and_only_the_tools_it_takes(
    tg: TelegramEmulator, bot: Gembot
) -> None:
    gemini = bot.gemini
    gemini.script(ErrorReply.overloaded(), model="gemini-3-flash-preview")
    gemini.script(ErrorReply.overloaded(), model="gemini-2.5-flash")
    message = await ask(tg, "which model are you?")
    assert message.text == "echo: which model are you?"
    three, two_five, two_lite = (r.body for r in gemini.requests[-3:])
    assert [r.model for r in gemini.requests[-3:]] == [
        "gemini-3-flash-preview",
        "gemini-2.5-flash",
        "gemini-2.0-flash-lite",
    ]
    assert three["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "LOW", "includeThoughts": True}
    assert two_five["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    assert "thinkingConfig" not in two_lite.get("generationConfig", {})
    assert "tools" not in two_lite and len(two_five["tools"]) == 3
    log = bot.log_path.read_text()
    assert log.count("gemini.setting_not_supported") == 2  # once at start, not per message
    assert "gemini-2.0-flash-lite: does not support google_search, url_context, code_execution" in log
