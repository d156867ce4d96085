"""Fuzz: Telegram updates, as the webhook and getUpdates deliver them, through PTB's parser and ours.

Promises: a malformed update is refused with a clear 4xx by the webhook (PTB's ``Update.de_json`` raises
only the errors ``adapters/telegram/adapter.py`` turns into 400) and never crashes the adapter; every
update that parses is either ignored on purpose (None) or becomes one ``Incoming`` with a stable event id,
so it gets exactly one answer (no unanswered message through a normalization crash).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from telegram import Bot, Update

from adapters.telegram.normalize import BotIdentity, Normalized, normalize, ordering_key
from bot.config import TelegramSettings
from bot.domain import MessageKind
from tests.fakes.telegram import BOT_TOKEN
from tests.reliability.conftest import fuzz_settings

BOT_ID = int(BOT_TOKEN.split(":", 1)[0])
ME = BotIdentity(BOT_ID, "gembot_test_bot")
BOT = Bot(BOT_TOKEN)
SETTINGS = TelegramSettings()
# What PTB raises for updates that are not well formed; TelegramAdapter._webhook answers any of them with
# 400 (tests/e2e/test_telegram.py::test_webhook_answers_malformed_updates_with_400).
WEBHOOK_REFUSES = (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError)

json_scalar = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=20)
junk = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def maybe_wrong(strategy: st.SearchStrategy[Any], wrong: bool = True) -> st.SearchStrategy[Any]:
    """Mostly the right type, sometimes anything (a broken client or proxy); as is when not ``wrong``."""
    return st.one_of(strategy, strategy, strategy, junk) if wrong else strategy


user_ids = st.one_of(st.integers(1, 2**52), st.just(BOT_ID))
users = st.fixed_dictionaries(
    {"id": maybe_wrong(user_ids), "is_bot": maybe_wrong(st.booleans()), "first_name": maybe_wrong(st.text())},
    optional={
        "username": st.sampled_from(["ann", "gembot_test_bot", "Other_Bot", ""]),
        "language_code": st.sampled_from(["en", "zh-hans", "de", "", "xx-YY"]),
    },
)
good_users = st.fixed_dictionaries(
    {"id": user_ids, "is_bot": st.booleans(), "first_name": st.text()},
    optional={"username": st.sampled_from(["ann", "gembot_test_bot", "Other_Bot"])},
)
good_chats = st.fixed_dictionaries(
    {
        "id": st.integers(-(10**13), 10**13),
        "type": st.sampled_from(["private", "group", "supergroup", "channel"]),
    },
    optional={"is_forum": st.booleans()},
)
chats = st.fixed_dictionaries(
    {
        "id": maybe_wrong(st.integers(-(10**13), 10**13)),
        "type": maybe_wrong(st.sampled_from(["private", "group", "supergroup", "channel", "sender"])),
    },
    optional={"is_forum": st.booleans(), "title": st.text(max_size=10)},
)
texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["/start", "/help@gembot_test_bot", "/reset@other_bot x", "@gembot_test_bot hi", "/x"]),
    st.builds(lambda a, b: f"{a} @gembot_test_bot {b}", st.text(max_size=10), st.text(max_size=10)),
)
entities = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["bot_command", "mention", "text_mention", "bold", "url", "custom"]),
            "offset": st.integers(-3, 80),
            "length": st.integers(-3, 80),
        },
        optional={"user": users},
    ),
    max_size=4,
)
photo_sizes = st.lists(
    st.fixed_dictionaries(
        {
            "file_id": st.text(min_size=1, max_size=8),
            "file_unique_id": st.text(min_size=1, max_size=8),
            "width": st.integers(0, 5000),
            "height": st.integers(0, 5000),
        },
        optional={"file_size": st.integers(0, 10**8)},
    ),
    max_size=3,
)


def message_dict(depth: int, wrong: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "from": users if wrong else good_users,
        "text": maybe_wrong(texts, wrong),
        "entities": entities,
        "caption": texts,
        "caption_entities": entities,
        "photo": photo_sizes,
        "sticker": st.just(
            {
                "file_id": "s",
                "file_unique_id": "s",
                "type": "regular",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
            }
        ),
        "voice": st.just({"file_id": "v", "file_unique_id": "v", "duration": 1}),
        "document": st.fixed_dictionaries(
            {"file_id": st.just("d"), "file_unique_id": st.just("d")},
            optional={
                "file_name": st.text(max_size=12),
                "mime_type": st.sampled_from(["application/pdf", "text/plain", "", "x/y"]),
                "file_size": st.integers(0, 10**9),
            },
        ),
        "video_note": st.just({"file_id": "n", "file_unique_id": "n", "length": 1, "duration": 1}),
        "media_group_id": st.text(min_size=1, max_size=6),
        "message_thread_id": st.integers(-5, 10**6),
        "is_topic_message": st.booleans(),
        "migrate_to_chat_id": st.integers(-(10**13), 0),
        "new_chat_members": st.lists(users, max_size=2),
        "edit_date": st.integers(0, 2**31),
    }
    if depth > 0:
        optional["reply_to_message"] = message_dict(depth - 1, wrong)
    return st.fixed_dictionaries(
        {
            "message_id": maybe_wrong(st.integers(1, 2**31), wrong),
            "date": maybe_wrong(st.integers(0, 2**31), wrong),
            "chat": maybe_wrong(chats if wrong else good_chats, wrong),
        },
        optional=optional,
    )


updates = st.fixed_dictionaries(
    {"update_id": maybe_wrong(st.integers(0, 2**31))},
    optional={
        "message": maybe_wrong(message_dict(1)),
        "edited_message": message_dict(0),
        "channel_post": message_dict(0),
    },
)


def check_normalized(update: Update, result: Normalized | None) -> None:
    if result is None:
        return
    message = update.message
    assert message is not None and message.from_user is not None and not message.from_user.is_bot
    incoming = result.incoming
    assert incoming.event_id == f"{message.chat.id}:{message.message_id}"
    assert incoming.chat_key == str(message.chat.id) and result.target.chat_id == message.chat.id
    assert incoming.user_id == str(message.from_user.id)
    assert incoming.kind in (MessageKind.TEXT, MessageKind.UNSUPPORTED)
    if incoming.kind is MessageKind.UNSUPPORTED or incoming.command is not None:
        assert not result.files and result.album is None
    if result.album is not None:
        assert result.album == message.media_group_id and result.files
    if incoming.is_private:
        assert incoming.addressed_to_bot  # a private message is always answered
    if incoming.command is not None:
        assert incoming.command == incoming.command.lower() and "@" not in incoming.command


@fuzz_settings(3)
@given(updates)
def test_any_update_parses_or_is_refused_and_normalizes_without_crashing(data: dict[str, Any]) -> None:
    try:
        update = Update.de_json(data, BOT)
    except WEBHOOK_REFUSES:
        return  # the webhook answers 400 "not an update"
    assert isinstance(update, Update)


@fuzz_settings(3)
@given(message_dict(1, wrong=False), user_ids)
def test_well_typed_messages_normalize_without_crashing(message: dict[str, Any], update_id: int) -> None:
    """Messages as Telegram itself sends them (right types, odd contents) must never be dropped by a crash."""
    try:
        update = Update.de_json({"update_id": update_id, "message": message}, BOT)
    except WEBHOOK_REFUSES:
        return
    ordering_key(update)
    check_normalized(update, normalize(update, ME, SETTINGS))
