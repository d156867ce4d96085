"""``gembot run`` as a subprocess against the Telegram Bot API and Gemini emulators.

Two gembot processes serve the whole module: one polling (most behaviours), one in webhook mode with an
allow-list. Each test uses its own chats so the tests do not depend on one another.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest
import pytest_asyncio
import yaml

from adapters.telegram.markup import utf16_len
from bot import i18n
from tests.conftest import API_KEY, base_config, deep_merge
from tests.fakes.gemini import ErrorReply, GeminiEmulator, Reply
from tests.fakes.telegram import BOT_TOKEN, Fault, TelegramEmulator, html_to_entities

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = 4242
WEBHOOK_SECRET = "s3cret-Webhook_token"
ALLOWED_GROUP = -100777
_ids = itertools.count(10_000)


def next_id() -> int:
    """A fresh positive id for a user or private chat."""
    return next(_ids)


@dataclass
class Gembot:
    """A running ``gembot run`` and the emulators it talks to."""

    tg: TelegramEmulator
    gemini: GeminiEmulator
    process: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    directory: Path,
    port: int,
    gemini: GeminiEmulator,
    tg: TelegramEmulator,
    telegram: dict[str, Any],
    sections: dict[str, Any] | None = None,
    gemini_settings: dict[str, Any] | None = None,
) -> Path:
    """The config of one gembot process: the emulators, its own database, INFO logs as JSON (and any
    further ``sections``)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = base_config(directory / "data" / "gembot.db", gemini.base_url)
    config["gemini"].update(gemini_settings or {})
    config["gemini"]["api_key"] = "${GEMINI_API_KEY}"
    config["telegram"] = {
        "enabled": True,
        "token": "${TELEGRAM_BOT_TOKEN}",
        "base_url": tg.base_url,
        "admin_ids": [ADMIN],
        "stream_interval": "200ms",
        **{k: v.format(port=port) if isinstance(v, str) else v for k, v in telegram.items()},
    }
    config["server"] = {"host": "127.0.0.1", "port": port}
    config["logging"] = {"level": "INFO", "format": "json"}
    config = deep_merge(config, sections or {})
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def start_gembot(
    directory: Path,
    gemini: GeminiEmulator,
    tg: TelegramEmulator,
    *,
    sections: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    gemini_settings: dict[str, Any] | None = None,
    **telegram: Any,
) -> Gembot:
    """Write a config, start ``python -m bot run`` and wait until /readyz says ready.

    ``sections`` adds config sections, ``gemini_settings`` overrides keys of the ``gemini:`` section,
    ``environ`` adds environment variables."""
    port = free_port()
    path = write_config(directory, port, gemini, tg, telegram, sections, gemini_settings)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GEMBOT_", "TELEGRAM_", "SLACK_"))
    }
    env.update({"GEMINI_API_KEY": API_KEY, "TELEGRAM_BOT_TOKEN": BOT_TOKEN, **(environ or {})})
    log_path = directory / "gembot.log"
    log_file: BinaryIO = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(path), stdout=log_file, stderr=log_file, env=env
    )
    log_file.close()
    bot = Gembot(tg, gemini, process, port, log_path)
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.returncode is None, log_path.read_text()
            try:
                async with session.get(f"{bot.url}/readyz") as response:
                    if response.status == 200:
                        return bot
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "gembot did not become ready:\n" + log_path.read_text()
            await asyncio.sleep(0.1)


async def stop_gembot(bot: Gembot) -> str:
    """SIGTERM, expect exit 0, return the log."""
    bot.process.send_signal(signal.SIGTERM)
    status = await asyncio.wait_for(bot.process.wait(), 30)
    log = bot.log_path.read_text()
    assert status == 0, log
    return log


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emulators() -> AsyncIterator[tuple[TelegramEmulator, GeminiEmulator]]:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        yield tg, gemini


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def polling(
    emulators: tuple[TelegramEmulator, GeminiEmulator], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gembot]:
    tg, gemini = emulators
    bot = await start_gembot(tmp_path_factory.mktemp("polling"), gemini, tg)
    yield bot
    log = await stop_gembot(bot)
    assert BOT_TOKEN not in log
    assert BOT_TOKEN.split(":", 1)[1] not in log
    assert "Traceback" not in log, log


@pytest.fixture
def tg(polling: Gembot) -> TelegramEmulator:
    polling.gemini.reset()
    polling.gemini.latency = 0.0
    return polling.tg


def gemini_user_texts(gemini: GeminiEmulator) -> list[str]:
    """The newest user text of every Gemini request so far."""
    return [r.contents()[-1][1] for r in gemini.requests if r.contents()]


async def answers(tg: TelegramEmulator, chat_id: int, count: int, thread_id: int | None = None) -> list[str]:
    """Wait for ``count`` bot messages in a chat (or topic); return their texts."""
    await tg.wait_for(lambda: len(tg.texts(chat_id, thread_id)) >= count, within=15)
    return tg.texts(chat_id, thread_id)


# --------------------------------------------------------------------------------- startup


async def test_startup_registers_commands_and_polls(polling: Gembot) -> None:
    tg = polling.tg
    assert [c["command"] for c in tg.commands[""]] == [
        *("start", "help", "reset", "forget"),
        *("model", "persona", "settings", "usage", "stats"),
    ]
    assert "zh" in tg.commands
    assert tg.calls_to("deleteWebhook")
    polls = tg.calls_to("getUpdates")
    assert polls and polls[-1].params.get("allowed_updates") == ["message", "message_reaction"]


# ---------------------------------------------------------------------------- private chats


async def test_private_reply(tg: TelegramEmulator, polling: Gembot) -> None:
    ann = tg.user(next_id(), "Ann")
    chat = tg.private_chat(ann)
    tg.send(chat, ann, "hello there")
    assert await answers(tg, chat["id"], 1) == ["echo: hello there"]
    assert gemini_user_texts(polling.gemini)[-1] == "hello there"
    [message] = tg.bot_messages(chat["id"])
    assert message.parse_mode == "HTML" and message.reply_to is None


async def test_typing_shows_while_gemini_is_slow(tg: TelegramEmulator, polling: Gembot) -> None:
    # (A quick answer gets none: the first typing action waits TYPING_DELAY, 0.3 s, for the answer.)
    polling.gemini.script(Reply(text="Thought about it.", latency=1.5))
    dan = tg.user(next_id(), "Dan")
    chat = tg.private_chat(dan)
    tg.send(chat, dan, "slow one")
    assert await answers(tg, chat["id"], 1) == ["Thought about it."]
    typing = tg.calls_to("sendChatAction", chat_id=chat["id"])
    assert typing and all(call.params["action"] == "typing" for call in typing)


async def test_streamed_private_reply_uses_drafts_then_one_message(
    tg: TelegramEmulator, polling: Gembot
) -> None:
    polling.gemini.script(Reply(chunks=["**Streaming** ", "works ", "in ", "drafts."], chunk_delay=0.3))
    bob = tg.user(next_id(), "Bob")
    chat = tg.private_chat(bob)
    tg.send(chat, bob, "stream please")
    assert await answers(tg, chat["id"], 1) == ["Streaming works in drafts."]
    drafts = [d for d in tg.drafts if d["chat_id"] == chat["id"]]
    assert len(drafts) >= 2
    assert len({d["draft_id"] for d in drafts}) == 1
    assert tg.bot_messages(chat["id"])[0].entities[0]["type"] == "bold"
    assert len(tg.calls_to("sendMessage", chat_id=chat["id"])) == 1


async def test_long_answer_arrives_in_two_valid_messages(tg: TelegramEmulator, polling: Gembot) -> None:
    paragraph = ("A sentence of the long answer, with **bold** words. " * 10).strip()
    text = "\n\n".join([paragraph] * 12)
    assert 6000 <= len(text) <= 7000
    polling.gemini.script(Reply(text=text))
    cid = tg.user(next_id(), "Cid")
    chat = tg.private_chat(cid)
    tg.send(chat, cid, "tell me a lot")
    parts = await answers(tg, chat["id"], 2)
    await asyncio.sleep(0.3)
    assert len(tg.texts(chat["id"])) == 2
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert "\n\n".join(parts).replace("**", "") == text.replace("**", "")
    sends = tg.calls_to("sendMessage", chat_id=chat["id"], ok=True)
    for call in sends:
        html_to_entities(call.params["text"])  # each part is valid HTML on its own
    assert sends[1].at - sends[0].at >= 0.9  # one message per second per chat


async def test_rejected_markup_falls_back_to_plain_text(tg: TelegramEmulator, polling: Gembot) -> None:
    polling.gemini.script(Reply(text="Some *emphasis* and `code` here."))
    dan = tg.user(next_id(), "Dan")
    chat = tg.private_chat(dan)
    tg.fail(
        "sendMessage",
        Fault.bad_request('can\'t parse entities: Unsupported start tag "i" at byte offset 5'),
        chat_id=chat["id"],
    )
    tg.send(chat, dan, "format it")
    assert await answers(tg, chat["id"], 1) == ["Some emphasis and code here."]
    failed, sent = tg.calls_to("sendMessage", chat_id=chat["id"])
    assert failed.status == 400 and failed.params["parse_mode"] == "HTML"
    assert sent.status == 200 and "parse_mode" not in sent.params


async def test_streamed_answer_survives_429s(tg: TelegramEmulator, polling: Gembot) -> None:
    chunks = [f"part {i} of the streamed answer. " for i in range(8)]
    polling.gemini.script(Reply(chunks=chunks, chunk_delay=0.15))
    eve = tg.user(next_id(), "Eve")
    chat = tg.private_chat(eve)
    tg.fail("sendMessageDraft", Fault.flood(1), times=2, chat_id=chat["id"])
    tg.fail("sendMessage", Fault.flood(2), times=2, chat_id=chat["id"])
    started = time.monotonic()
    tg.send(chat, eve, "stream under pressure")
    assert await answers(tg, chat["id"], 1) == ["".join(chunks).strip()]
    flooded = tg.calls_to("sendMessage", chat_id=chat["id"], ok=False)
    assert [c.status for c in flooded] == [429, 429]
    ok = tg.calls_to("sendMessage", chat_id=chat["id"], ok=True)[0]
    assert ok.at - flooded[1].at >= 1.9  # retry_after was honoured, not hammered
    assert ok.at - started < 15


async def test_group_stream_edits_one_message_under_429s(tg: TelegramEmulator, polling: Gembot) -> None:
    chunks = [f"chunk {i} of a group answer. " for i in range(10)]
    polling.gemini.script(Reply(chunks=chunks, chunk_delay=0.25))
    fay = tg.user(next_id(), "Fay")
    group = tg.group(-next_id(), "Streamers", supergroup=True)
    tg.fail("editMessageText", Fault.flood(1), times=1, chat_id=group["id"])
    tg.send(group, fay, "@gembot_test_bot stream in the group")
    expected = "".join(chunks).strip()
    await tg.wait_for(lambda: tg.texts(group["id"]) == [expected], within=20)
    await asyncio.sleep(0.5)
    assert tg.texts(group["id"]) == [expected]  # one message, edited to the complete answer
    assert tg.calls_to("editMessageText", chat_id=group["id"], ok=True)
    assert not [d for d in tg.drafts if d["chat_id"] == group["id"]]


async def test_unsupported_kinds_get_a_notice(tg: TelegramEmulator, polling: Gembot) -> None:
    gus = tg.user(next_id(), "Gus")
    chat = tg.private_chat(gus)
    before = len(polling.gemini.requests)
    tg.send(chat, gus, kind="location")
    tg.send(chat, gus, kind="dice")
    texts = await answers(tg, chat["id"], 2)
    assert all("text" in t.lower() for t in texts), texts
    assert len(polling.gemini.requests) == before
    assert all(m.parse_mode is None for m in tg.bot_messages(chat["id"]))


async def test_photo_with_caption_reaches_gemini_as_inline_data(
    tg: TelegramEmulator, polling: Gembot
) -> None:
    small, large = b"\xff\xd8small-jpeg", b"\xff\xd8" + b"L" * 4000
    hal = tg.user(next_id(), "Hal")
    chat = tg.private_chat(hal)
    tg.send(chat, hal, photo=[small, large], caption="What is this?")
    assert await answers(tg, chat["id"], 1) == ["echo: What is this?"]
    parts = polling.gemini.requests[-1].body["contents"][-1]["parts"]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    assert inline == [{"mimeType": "image/jpeg", "data": base64.b64encode(large).decode()}]
    # The history shows the caption with a marker, and the follow-up still carries the photo (kept).
    tg.send(chat, hal, "and now?")
    await answers(tg, chat["id"], 2)
    history = polling.gemini.requests[-1].body["contents"]
    assert "[photo]" in history[0]["parts"][0]["text"]
    assert [p["inlineData"] for p in history[0]["parts"] if "inlineData" in p] == inline


async def test_photo_that_cannot_be_downloaded_is_answered_and_not_sent_to_gemini(
    tg: TelegramEmulator, polling: Gembot
) -> None:
    ida = tg.user(next_id(), "Ida")
    chat = tg.private_chat(ida)
    tg.fail("getFile", Fault.bad_request("wrong file_id or the file is temporarily unavailable"))
    tg.send(chat, ida, photo=[b"\xff\xd8lost-jpeg"], caption="What is this?")
    await answers(tg, chat["id"], 1)
    tg.send(chat, ida, "still there?")
    assert (await answers(tg, chat["id"], 2))[1] == "echo: still there?"
    lost = base64.b64encode(b"\xff\xd8lost-jpeg").decode()
    assert not [r for r in polling.gemini.requests if lost in str(r.body)]


async def test_edited_message_is_not_answered_again(tg: TelegramEmulator, polling: Gembot) -> None:
    ivy = tg.user(next_id(), "Ivy")
    chat = tg.private_chat(ivy)
    message = tg.send(chat, ivy, "first version")
    await answers(tg, chat["id"], 1)
    tg.edit(message, "second version")
    tg.send(chat, ivy, "next")
    assert await answers(tg, chat["id"], 2) == ["echo: first version", "echo: next"]


# ------------------------------------------------------------------------------------ groups


async def test_group_without_mention_is_silent_and_mention_is_answered(
    tg: TelegramEmulator, polling: Gembot
) -> None:
    jon = tg.user(next_id(), "Jon")
    group = tg.group(-next_id(), "Friends")
    before = len(polling.gemini.requests)
    tg.send(group, jon, "just chatting among humans")
    tg.send(group, jon, "@gembot_test_bot what is 2+2?")
    assert await answers(tg, group["id"], 1) == ["echo: Jon: what is 2+2?"]
    assert len(polling.gemini.requests) == before + 1
    [message] = tg.bot_messages(group["id"])
    assert message.reply_to is not None  # the answer quotes the question in groups


async def test_mention_after_emoji_uses_utf16_offsets(tg: TelegramEmulator, polling: Gembot) -> None:
    kim = tg.user(next_id(), "Kim")
    group = tg.group(-next_id(), "Emoji", supergroup=True)
    tg.send(group, kim, "🎉🎉 hey @gembot_test_bot, party time?")
    assert await answers(tg, group["id"], 1) == ["echo: Kim: 🎉🎉 hey @gembot_test_bot, party time?"]


async def test_reply_to_bot_is_answered(tg: TelegramEmulator, polling: Gembot) -> None:
    lea = tg.user(next_id(), "Lea")
    group = tg.group(-next_id(), "Replies", supergroup=True)
    tg.send(group, lea, "@gembot_test_bot first")
    await answers(tg, group["id"], 1)
    bot_message = tg.bot_messages(group["id"])[0]
    tg.send(group, lea, "a follow-up without mention", reply_to=bot_message.message_id)
    texts = await answers(tg, group["id"], 2)
    assert texts[1] == "echo: Lea: a follow-up without mention"


async def test_command_for_another_bot_is_ignored(tg: TelegramEmulator, polling: Gembot) -> None:
    max_ = tg.user(next_id(), "Max")
    group = tg.group(-next_id(), "Bots", supergroup=True)
    tg.send(group, max_, "/help@other_bot")
    tg.send(group, max_, "/weather")  # another bot's bare command
    tg.send(group, max_, "/help@gembot_test_bot")
    texts = await answers(tg, group["id"], 1)
    await asyncio.sleep(0.3)
    assert len(tg.texts(group["id"])) == 1
    assert "Gemini" in texts[0]


async def test_forum_topics_are_separate_conversations(tg: TelegramEmulator, polling: Gembot) -> None:
    nia = tg.user(next_id(), "Nia")
    forum = tg.group(-next_id(), "Forum", forum=True)
    tg.send(forum, nia, "@gembot_test_bot topic one says apples", thread_id=11)
    await answers(tg, forum["id"], 1, thread_id=11)
    tg.send(forum, nia, "@gembot_test_bot topic two says pears", thread_id=22)
    assert await answers(tg, forum["id"], 1, thread_id=22) == ["echo: Nia: topic two says pears"]
    assert [t for t in polling.gemini.user_texts(-1)] == ["Nia: topic two says pears"]
    tg.send(forum, nia, "@gembot_test_bot more in one", thread_id=11)
    await answers(tg, forum["id"], 2, thread_id=11)
    assert polling.gemini.user_texts(-1) == ["Nia: topic one says apples", "Nia: more in one"]
    sends = tg.calls_to("sendMessage", chat_id=forum["id"])
    assert {c.params.get("message_thread_id") for c in sends} == {11, 22}


async def test_group_trigger_and_migration_keep_the_conversation(
    tg: TelegramEmulator, polling: Gembot
) -> None:
    oli = tg.user(next_id(), "Oli")
    old = tg.group(-next_id(), "Small group")
    tg.send(old, oli, "@gembot_test_bot remember plums")
    await answers(tg, old["id"], 1)
    new_id = -1_000_000_000_000 - next_id()
    new = tg.migrate(old, new_id, oli)
    tg.send(new, oli, "@gembot_test_bot what did I say?")
    await answers(tg, new_id, 1)
    assert polling.gemini.user_texts(-1) == ["Oli: remember plums", "Oli: what did I say?"]


# ---------------------------------------------------------------------------------- commands


async def test_reset_in_private_and_admin_rules_in_groups(tg: TelegramEmulator, polling: Gembot) -> None:
    pam = tg.user(next_id(), "Pam")
    chat = tg.private_chat(pam)
    tg.send(chat, pam, "remember figs")
    await answers(tg, chat["id"], 1)
    tg.send(chat, pam, "/reset")
    texts = await answers(tg, chat["id"], 2)
    assert "afresh" in texts[1]
    tg.send(chat, pam, "fresh start")
    await answers(tg, chat["id"], 3)
    assert polling.gemini.user_texts(-1) == ["fresh start"]

    group = tg.group(-next_id(), "Admins", supergroup=True)
    admin = tg.user(ADMIN, "Boss")
    tg.send(group, pam, "@gembot_test_bot remember pears")  # a conversation to reset
    await answers(tg, group["id"], 1)
    tg.send(group, pam, "/reset@gembot_test_bot")
    tg.send(group, admin, "/reset")
    texts = await answers(tg, group["id"], 3)
    assert "admin" in texts[1].lower()
    assert "afresh" in texts[2]


async def test_stats_for_admins_only(tg: TelegramEmulator, polling: Gembot) -> None:
    quin = tg.user(next_id(), "Quin")
    chat = tg.private_chat(quin)
    tg.send(chat, quin, "/stats")
    [denied] = await answers(tg, chat["id"], 1)
    assert "admin" in denied.lower()
    admin = tg.user(ADMIN, "Boss")
    admin_chat = tg.private_chat(admin)
    tg.send(admin_chat, admin, "/stats")
    [report] = await answers(tg, admin_chat["id"], 1)
    assert "P50" in report or "p50" in report.lower(), report


async def test_bad_gemini_key_is_reported_to_the_user_and_once_to_the_admins(
    tg: TelegramEmulator, polling: Gembot
) -> None:
    polling.gemini.script(ErrorReply.bad_key(), ErrorReply.bad_key())
    admin_chat = tg.private_chat(tg.user(ADMIN, "Boss"))
    before = len(tg.texts(admin_chat["id"]))
    for name in ("Kay", "Lou"):
        user = tg.user(next_id(), name)
        chat = tg.private_chat(user)
        tg.send(chat, user, "anyone there?")
        [notice] = await answers(tg, chat["id"], 1)
        assert "API key is not accepted" in notice
    await tg.wait_for(lambda: len(tg.texts(admin_chat["id"])) > before, within=10)
    await asyncio.sleep(0.5)
    alerts = tg.texts(admin_chat["id"])[before:]
    assert len(alerts) == 1 and "API key" in alerts[0]
    assert API_KEY not in alerts[0]


async def test_blocked_user_is_not_retried(tg: TelegramEmulator, polling: Gembot) -> None:
    rex = tg.user(next_id(), "Rex")
    chat = tg.private_chat(rex)
    tg.block(chat["id"])
    tg.send(chat, rex, "hello?")
    await tg.wait_for(lambda: [c for c in tg.calls if c.chat_id == chat["id"] and c.status == 403], within=10)
    await asyncio.sleep(1.5)
    # The first 403 (typing or the answer) marks the chat unreachable; nothing is retried or sent after it.
    assert [c.status for c in tg.calls if c.chat_id == chat["id"]] == [403]
    tg.block(chat["id"], blocked=False)
    tg.send(chat, rex, "unblocked now")
    assert await answers(tg, chat["id"], 1) == ["echo: unblocked now"]


# -------------------------------------------------------------------------------------- load


async def test_200_users_at_once_with_slow_gemini(tg: TelegramEmulator, polling: Gembot) -> None:
    polling.gemini.latency = 1.0
    chats = []
    for _ in range(200):
        user = tg.user(next_id(), "User")
        chats.append((tg.private_chat(user), user))
    calls_before = len(tg.calls)
    started = time.monotonic()
    for chat, user in chats:
        tg.send(chat, user, f"question from {chat['id']}")
    await tg.wait_for(lambda: all(tg.texts(chat["id"]) for chat, _ in chats), within=60)
    makespan = time.monotonic() - started
    print(f"\n200 users, 1 s Gemini latency: makespan {makespan:.2f} s")
    for chat, _ in chats:
        assert tg.texts(chat["id"]) == [f"echo: question from {chat['id']}"]
    assert makespan < 25, makespan  # one at a time would take over 200 s
    # Flood control, measured: never more than 30 messages in any second.
    stamps = sorted(c.at for c in tg.calls[calls_before:] if c.method == "sendMessage")
    busiest = max(sum(1 for t in stamps[i:] if t - s < 1.0) for i, s in enumerate(stamps))
    assert busiest <= 31, busiest  # 30/s, plus one for the jitter between sending and receiving


# ----------------------------------------------------------------------------------- webhook


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def webhook(
    emulators: tuple[TelegramEmulator, GeminiEmulator], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gembot]:
    _, gemini = emulators
    async with TelegramEmulator() as tg:  # its own Bot API: one consumer per bot, as on Telegram
        bot = await start_gembot(
            tmp_path_factory.mktemp("webhook"),
            gemini,
            tg,
            mode="webhook",
            webhook_url="http://127.0.0.1:{port}/telegram/webhook",
            webhook_secret=WEBHOOK_SECRET,
            allowed_chat_ids=[ALLOWED_GROUP],
        )
        yield bot
        await stop_gembot(bot)


async def post_update(bot: Gembot, update: dict[str, Any], secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{bot.url}/telegram/webhook", json=update, headers=headers) as response,
    ):
        return response.status


async def test_webhook_is_set_and_delivers(webhook: Gembot) -> None:
    tg = webhook.tg
    assert tg.webhook["url"] == f"{webhook.url}/telegram/webhook"
    assert tg.webhook["secret_token"] == WEBHOOK_SECRET
    assert not tg.calls_to("getUpdates")
    group = tg.group(ALLOWED_GROUP, "Allowed", supergroup=True)
    sam = tg.user(next_id(), "Sam")
    tg.send(group, sam, "@gembot_test_bot via webhook")
    assert await answers(tg, group["id"], 1) == ["echo: Sam: via webhook"]
    assert all(status == 200 for _, status in tg.webhook_deliveries)


async def test_webhook_album_is_one_message_answered_once(webhook: Gembot) -> None:
    tg = webhook.tg
    group = tg.group(ALLOWED_GROUP, "Allowed", supergroup=True)
    tia = tg.user(next_id(), "Tia")
    before = len(tg.texts(group["id"]))
    parts = [("photo", b"\xff\xd8first"), ("photo", b"\xff\xd8second")]
    messages = tg.send_album(group, tia, parts, caption="@gembot_test_bot both?")
    assert (await answers(tg, group["id"], before + 1))[-1] == "echo: Tia: both?"
    await asyncio.sleep(1.5)
    assert len(tg.texts(group["id"])) == before + 1
    assert tg.bot_messages(group["id"])[-1].reply_to == messages[0]["message_id"]
    sent = webhook.gemini.requests[-1].body["contents"][-1]["parts"]
    data = [base64.b64decode(p["inlineData"]["data"]) for p in sent if "inlineData" in p]
    assert data == [b"\xff\xd8first", b"\xff\xd8second"]


async def test_webhook_refuses_wrong_or_missing_secret(webhook: Gembot) -> None:
    tg = webhook.tg
    group = tg.group(ALLOWED_GROUP, "Allowed", supergroup=True)
    tia = tg.user(next_id(), "Tia")
    message = tg.user_message(group, tia, "@gembot_test_bot sneaky", None, None, None, None, None, None)
    update = {"update_id": 9_000_001, "message": message}
    assert await post_update(webhook, update, None) == 403
    assert await post_update(webhook, update, "wrong-secret") == 403
    assert await post_update(webhook, update, WEBHOOK_SECRET[:-1]) == 403
    await asyncio.sleep(0.5)
    assert not [m for m in tg.bot_messages(group["id"]) if "sneaky" in m.text]
    assert await post_update(webhook, update, WEBHOOK_SECRET) == 200
    await tg.wait_for(lambda: any("sneaky" in m.text for m in tg.bot_messages(group["id"])))


async def test_webhook_answers_malformed_updates_with_400(webhook: Gembot) -> None:
    """Found by the fuzzer: wrongly typed fields made PTB raise errors the webhook answered with 500."""
    for update in (
        {"update_id": 9_000_101, "message": False},
        {"update_id": 9_000_102, "message": {"message_id": 1, "date": 0, "chat": 7}},
        {
            "update_id": 9_000_103,
            "message": {"message_id": 1, "date": 1e17, "chat": {"id": 1, "type": "private"}},
        },
    ):
        assert await post_update(webhook, update, WEBHOOK_SECRET) == 400, update
    assert "Traceback" not in webhook.log_path.read_text(encoding="utf-8", errors="replace")


async def test_files_from_a_chat_not_served_are_never_downloaded(webhook: Gembot) -> None:
    tg = webhook.tg
    ida = tg.user(next_id(), "Ida")
    private = tg.private_chat(ida)
    pdf = (Path(__file__).parents[1] / "media" / "report.pdf").read_bytes()
    sent = tg.send_media(private, ida, "document", pdf, file_name="report.pdf", caption="summarise")
    [notice] = await answers(tg, private["id"], 1)
    assert notice == i18n.text("en", "not_allowed_chat")
    file_id = sent["document"]["file_id"]
    assert not [c for c in tg.calls_to("getFile") if c.params.get("file_id") == file_id]


async def test_allowed_chat_ids(webhook: Gembot) -> None:
    tg = webhook.tg
    uma = tg.user(next_id(), "Uma")
    other_group = tg.group(-next_id(), "Not allowed", supergroup=True)
    tg.send(other_group, uma, "@gembot_test_bot hello?")
    private = tg.private_chat(uma)
    tg.send(private, uma, "hello?")
    [notice] = await answers(tg, private["id"], 1)
    assert "not" in notice.lower()
    await asyncio.sleep(0.5)
    assert tg.texts(other_group["id"]) == []  # silence in groups
    admin = tg.user(ADMIN, "Boss")
    tg.send(other_group, admin, "@gembot_test_bot admins are served")
    assert await answers(tg, other_group["id"], 1) == ["echo: Boss: admins are served"]
