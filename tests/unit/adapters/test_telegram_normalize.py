"""Telegram updates -> Incoming: who is addressed, commands, topics, media, and what is ignored."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Update

from adapters.telegram.normalize import BotIdentity, normalize, ordering_key
from bot.config import TelegramSettings
from bot.domain import MessageKind
from tests.fakes.telegram import CHANNEL_BOT, GROUP_ANONYMOUS_BOT, TelegramEmulator

ME = BotIdentity(id=7012345678, username="gembot_test_bot")
tg = TelegramEmulator()
ANN = tg.user(111, "Ann", "ann", "de")
BOT = tg.bot_user


def update(message: dict[str, Any], key: str = "message") -> Update:
    return Update.de_json({"update_id": 1, key: message}, None)


def msg(chat: dict[str, Any], text: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return tg.user_message(
        chat,
        kwargs.pop("user", ANN),
        text,
        kwargs.pop("reply_to", None),
        kwargs.pop("thread_id", None),
        kwargs.pop("photo", None),
        kwargs.pop("caption", None),
        kwargs.pop("kind", None),
        kwargs or None,
    )


def settings(**overrides: Any) -> TelegramSettings:
    return TelegramSettings(**overrides)


def test_private_text() -> None:
    chat = tg.private_chat(ANN)
    result = normalize(update(msg(chat, "hello")), ME, settings())
    assert result is not None
    incoming = result.incoming
    assert (incoming.chat_key, incoming.thread_key, incoming.user_id) == ("111", "", "111")
    assert incoming.is_private and incoming.addressed_to_bot
    assert (incoming.user_name, incoming.language, incoming.text) == ("Ann", "de", "hello")
    assert incoming.event_id == f"111:{result.target.draft_id}"
    assert result.target.reply_to is None


def test_group_needs_a_mention_unless_trigger_all() -> None:
    group = tg.group(-5, "G")
    plain = normalize(update(msg(group, "just talking")), ME, settings())
    assert plain is not None and not plain.incoming.addressed_to_bot
    everything = normalize(update(msg(group, "just talking")), ME, settings(group_trigger="all"))
    assert everything is not None and everything.incoming.addressed_to_bot
    other = normalize(update(msg(group, "@someone_else hi")), ME, settings())
    assert other is not None and not other.incoming.addressed_to_bot


def test_mention_offsets_are_utf16_and_the_mention_is_stripped() -> None:
    group = tg.group(-5, "G")
    result = normalize(update(msg(group, "👨‍👩‍👧 @GemBot_Test_Bot what now?")), ME, settings())
    assert result is not None and result.incoming.addressed_to_bot
    leading = normalize(update(msg(group, "@gembot_test_bot, what now?")), ME, settings())
    assert leading is not None and leading.incoming.text == "what now?"
    assert leading.target.reply_to is not None


def test_text_mention_of_the_bot() -> None:
    group = tg.group(-5, "G")
    message = msg(
        group, "Gembot help", entities=[{"type": "text_mention", "offset": 0, "length": 6, "user": BOT}]
    )
    result = normalize(update(message), ME, settings())
    assert result is not None and result.incoming.addressed_to_bot


def test_reply_to_the_bot_addresses_it() -> None:
    group = tg.group(-5, "G")
    bot_message = {"message_id": 99, "date": 0, "chat": group, "from": BOT, "text": "earlier answer"}
    result = normalize(update(msg(group, "thanks", reply_to=bot_message)), ME, settings())
    assert result is not None and result.incoming.addressed_to_bot


@pytest.mark.parametrize(
    ("text", "command", "args"),
    [
        ("/reset", "reset", ""),
        ("/Help@gembot_test_bot please", "help", "please"),
        ("/stats now", "stats", "now"),
    ],
)
def test_commands_for_this_bot(text: str, command: str, args: str) -> None:
    result = normalize(update(msg(tg.group(-5, "G"), text)), ME, settings())
    assert result is not None
    assert (result.incoming.command, result.incoming.command_args) == (command, args)


def test_commands_for_other_bots_are_ignored() -> None:
    group = tg.group(-5, "G")
    assert normalize(update(msg(group, "/help@other_bot")), ME, settings()) is None
    assert normalize(update(msg(group, "/weather")), ME, settings()) is None  # not ours, no addressee
    private = normalize(update(msg(tg.private_chat(ANN), "/weather")), ME, settings())
    assert private is not None and private.incoming.command == "weather"  # the engine says it is unknown


def test_forum_topic_is_its_own_conversation() -> None:
    forum = tg.group(-100, "F", forum=True)
    result = normalize(update(msg(forum, "@gembot_test_bot hi", thread_id=42)), ME, settings())
    assert result is not None
    assert result.incoming.thread_key == "42" and result.target.thread_id == 42
    assert ordering_key(update(msg(forum, "x", thread_id=42))) == (-100, 42)
    # In a plain supergroup a reply thread is not a topic.
    group = tg.group(-101, "S", supergroup=True)
    reply = normalize(update(msg(group, "@gembot_test_bot hi", thread_id=7)), ME, settings())
    assert reply is not None and reply.incoming.thread_key == ""


@pytest.mark.parametrize("kind", ["location", "contact", "dice", "venue"])
def test_unsupported_kinds(kind: str) -> None:
    result = normalize(update(msg(tg.private_chat(ANN), kind=kind)), ME, settings())
    assert result is not None and result.incoming.kind is MessageKind.UNSUPPORTED


def test_unsupported_content_in_a_group_is_not_addressed() -> None:
    result = normalize(update(msg(tg.group(-5, "G"), kind="location")), ME, settings())
    assert result is not None and not result.incoming.addressed_to_bot


def test_ignored_updates() -> None:
    chat = tg.private_chat(ANN)
    assert normalize(update(msg(chat, "edited"), key="edited_message"), ME, settings()) is None
    assert (
        normalize(update(msg(chat, "from a bot", user=dict(BOT, id=5, username="x_bot"))), ME, settings())
        is None
    )
    service = msg(tg.group(-5, "G"), new_chat_title="Renamed")
    assert normalize(update(service), ME, settings()) is None


def test_anonymous_group_admin_is_the_groups_admin_id() -> None:
    group = tg.group(-1001, "Team", supergroup=True)
    message = msg(group, "/stats", user=GROUP_ANONYMOUS_BOT, sender_chat=group, author_signature="Owner")
    result = normalize(update(message), ME, settings())
    assert result is not None
    incoming = result.incoming
    assert (incoming.user_id, incoming.user_name, incoming.command) == ("anon:-1001", "Owner", "stats")
    assert incoming.language is None and not incoming.is_private
    plain = msg(group, "@gembot_test_bot hi", user=GROUP_ANONYMOUS_BOT, sender_chat=group)
    unsigned = normalize(update(plain), ME, settings())
    assert unsigned is not None and unsigned.incoming.user_name == "Team"


def test_messages_posted_as_a_channel_are_ignored() -> None:
    group = tg.group(-1002, "Discussion", supergroup=True)
    channel = {"id": -1003, "type": "channel", "title": "News"}
    for sender in (CHANNEL_BOT, ANN):  # a linked channel's post; a user speaking as their channel
        message = msg(group, "/stats@gembot_test_bot", user=sender, sender_chat=channel)
        assert normalize(update(message), ME, settings()) is None
    # Posted as another group is not that group's admin either (Telegram does not send it, but never trust).
    other = tg.group(-1004, "Other", supergroup=True)
    message = msg(group, "/reset", user=GROUP_ANONYMOUS_BOT, sender_chat=other)
    assert normalize(update(message), ME, settings()) is None


def test_entities_whose_offsets_split_a_character_are_ignored() -> None:
    chat, group = tg.private_chat(ANN), tg.group(-5, "G")
    # "😀" is two UTF-16 code units: an entity starting or ending inside it covers no text.
    command = [{"type": "bot_command", "offset": 0, "length": 1}]
    mention = [{"type": "mention", "offset": 1, "length": 16}]
    private = normalize(update(msg(chat, "😀/reset", entities=command)), ME, settings())
    assert private is not None
    assert (private.incoming.command, private.incoming.text) == (None, "😀/reset")
    in_group = normalize(update(msg(group, "😀@gembot_test_bot hi", entities=mention)), ME, settings())
    assert in_group is not None and not in_group.incoming.addressed_to_bot
    caption = normalize(
        update(msg(chat, None, photo=[b"\xff\xd8"], caption="😀 look", caption_entities=mention)),
        ME,
        settings(),
    )
    assert caption is not None and caption.incoming.text == "😀 look"


def test_entities_of_an_empty_text_or_caption_are_ignored() -> None:
    chat = tg.private_chat(ANN)
    command = [{"type": "bot_command", "offset": 0, "length": 0}]
    empty = normalize(update(msg(chat, "", entities=command)), ME, settings())
    assert empty is None or empty.incoming.command is None
    caption = normalize(
        update(msg(chat, None, photo=[b"\xff\xd8"], caption="", caption_entities=command)), ME, settings()
    )
    assert caption is not None and caption.incoming.command is None


def test_content_ptb_does_not_know_is_unsupported_but_service_messages_are_ignored() -> None:
    chat = tg.private_chat(ANN)
    future = normalize(update(msg(chat, None, hologram={"file_id": "h", "duration": 3})), ME, settings())
    assert future is not None and future.incoming.kind is MessageKind.UNSUPPORTED
    joined = msg(chat, None, new_chat_members=[tg.user(5, "Bo")], hologram_meta={"x": 1})
    assert normalize(update(joined), ME, settings()) is None  # a known service message, whatever else it has
    pinned = msg(chat, None, pinned_message={"message_id": 1, "date": 0, "chat": chat})
    assert normalize(update(pinned), ME, settings()) is None
    dice = normalize(update(msg(chat, None, dice={"emoji": "🎲", "value": 2})), ME, settings())
    assert dice is not None and dice.incoming.kind is MessageKind.UNSUPPORTED
