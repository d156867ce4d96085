"""Slack events and slash commands normalized into Jobs (no network: plain payloads in, Jobs out)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.history import Reading
from adapters.slack.normalize import normalize_command, normalize_event, normalize_shortcut
from bot.domain import MessageKind
from tests.fakes.slack import (
    BOT_ID,
    BOT_USER_ID,
    event_callback,
    mention_event,
    message_event,
    message_shortcut,
)


def test_mention_in_channel_is_a_thread_conversation() -> None:
    job = normalize_event(
        event_callback(mention_event("  hello there", channel="C1", user="U1", ts="10.000001")), BOT_USER_ID
    )
    assert job is not None
    assert job.incoming.text == "hello there"
    assert (job.incoming.chat_key, job.incoming.thread_key, job.thread_ts) == ("C1", "10.000001", "10.000001")
    assert job.incoming.addressed_to_bot and not job.incoming.is_private
    assert job.incoming.event_id == "msg:C1:10.000001"


def test_same_message_as_mention_and_channel_message_normalizes_alike() -> None:
    mention = mention_event("hi", channel="C1", user="U1", ts="11.1", thread_ts="10.0")
    plain = message_event(mention["text"], channel="C1", user="U1", ts="11.1", thread_ts="10.0")
    a = normalize_event(event_callback(mention), BOT_USER_ID)
    b = normalize_event(event_callback(plain), BOT_USER_ID)
    assert a is not None and b is not None
    assert a.incoming == b.incoming


def test_dm_top_level_and_dm_thread() -> None:
    top = normalize_event(event_callback(message_event("hi", channel="D1", user="U1", ts="5.0")), BOT_USER_ID)
    assert top is not None and top.thread_ts is None and top.incoming.thread_key == ""
    assert top.incoming.is_private and top.incoming.addressed_to_bot
    threaded = normalize_event(
        event_callback(message_event("hi", channel="D1", user="U1", ts="6.0", thread_ts="5.0")), BOT_USER_ID
    )
    assert threaded is not None and threaded.thread_ts == "5.0" and threaded.incoming.thread_key == "5.0"


@pytest.mark.parametrize(
    "extra",
    [
        {"bot_id": "B999"},
        {"bot_id": BOT_ID},
        {"subtype": "bot_message", "bot_id": "B1"},
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "channel_join"},
    ],
)
def test_bots_edits_and_other_subtypes_are_ignored(extra: dict[str, Any]) -> None:
    event = message_event("hi", channel="D1", user="U1", **extra)
    assert normalize_event(event_callback(event), BOT_USER_ID) is None


def test_own_messages_and_unaddressed_top_level_are_ignored() -> None:
    own = message_event("hi", channel="D1", user=BOT_USER_ID)
    assert normalize_event(event_callback(own), BOT_USER_ID) is None
    chatter = message_event("hi all", channel="C1", user="U1")
    assert normalize_event(event_callback(chatter), BOT_USER_ID) is None


def test_thread_reply_without_mention_needs_membership() -> None:
    job = normalize_event(
        event_callback(message_event("more", channel="C1", user="U1", thread_ts="1.0")), BOT_USER_ID
    )
    assert job is not None and job.needs_membership and not job.incoming.addressed_to_bot


def test_command_word_after_mention_and_files() -> None:
    job = normalize_event(event_callback(mention_event("Reset!", channel="C1", user="U1")), BOT_USER_ID)
    assert job is not None and job.incoming.command == "reset"
    # The first word after the mention is the command (help and stats: whatever follows).
    first_word = normalize_event(
        event_callback(mention_event("help: what can you do?", channel="C1", user="U1")), BOT_USER_ID
    )
    assert (
        first_word is not None
        and first_word.incoming.command == "help"
        and first_word.incoming.command_args == "what can you do?"
        and first_word.incoming.text == ""
    )
    question = normalize_event(
        event_callback(mention_event("helpful tips for a poem?", channel="C1", user="U1")), BOT_USER_ID
    )
    assert (
        question is not None
        and question.incoming.command is None
        and question.incoming.text == "helpful tips for a poem?"
    )
    not_first = normalize_event(
        event_callback(message_event(f"please <@{BOT_USER_ID}> reset", channel="C1", user="U1")), BOT_USER_ID
    )
    assert not_first is not None and not_first.incoming.command is None
    shared = event_callback(mention_event("look", channel="C1", user="U1") | {"files": [{"id": "F1"}]})
    photo = normalize_event(shared, BOT_USER_ID)
    assert photo is not None and photo.incoming.kind is MessageKind.TEXT and len(photo.files) == 1
    off = normalize_event(shared, BOT_USER_ID, media=False)
    assert off is not None and off.incoming.kind is MessageKind.UNSUPPORTED and not off.files


@pytest.mark.parametrize(
    ("text", "command", "args"),
    [
        ("reset", "reset", ""),
        ("Forget!", "forget", ""),
        ("reset .", "reset", "."),
        ("stats now", "stats", "now"),
        ("help me", "help", "me"),
        ("model gemini-2.5-pro", "model", "gemini-2.5-pro"),
        ("persona custom Be brief.", "persona", "custom Be brief."),
        ("settings search on", "settings", "search on"),
        ("usage", "usage", ""),
        # reset and forget erase history: inside a sentence they are words for Gemini, not commands.
        ("forget what I said, then tell me a joke", None, ""),
        ("reset the counter to zero?", None, ""),
    ],
)
def test_destructive_mention_commands_only_as_the_whole_message(
    text: str, command: str | None, args: str
) -> None:
    job = normalize_event(event_callback(mention_event(text, channel="C1", user="U1")), BOT_USER_ID)
    assert job is not None
    assert (job.incoming.command, job.incoming.command_args) == (command, args)
    assert job.incoming.text == ("" if command else text)


def test_slash_command() -> None:
    job = normalize_command(
        {
            "channel_id": "D1",
            "user_id": "U1",
            "text": "STATS now",
            "response_url": "http://x/r",
            "trigger_id": "t1",
        }
    )
    assert job is not None
    assert (job.incoming.command, job.incoming.command_args) == ("stats", "now")
    assert job.incoming.is_private and job.response_url == "http://x/r"
    model = normalize_command({"channel_id": "C1", "user_id": "U1", "text": "model gemini-2.5-pro"})
    assert model is not None
    assert (model.incoming.command, model.incoming.command_args) == ("model", "gemini-2.5-pro")
    empty = normalize_command({"channel_id": "C1", "user_id": "U1", "text": ""})
    assert empty is not None and empty.incoming.command == "help" and not empty.incoming.is_private


# ------------------------------------------------------------------------------------------ in-process


def _command(text: str, channel: str = "C1") -> dict[str, Any]:
    return {"channel_id": channel, "user_id": "U1", "text": text, "trigger_id": "1.2", "response_url": "u"}


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("summarize", 50),
        ("summarise 100", 100),
        ("summarize 500", 200),
        ("summarize 0", 1),
        ("summarize x", 50),
    ],
)
def test_summarize_reads_the_last_n_channel_messages_and_answers_privately(text: str, count: int) -> None:
    job = normalize_command(_command(text))
    assert job is not None and job.ephemeral
    assert job.reading == Reading("C1", None, count)
    assert job.incoming.command is None and job.incoming.text == ""  # worded in the user's language later


def test_other_subcommands_read_nothing() -> None:
    job = normalize_command(_command("reset"))
    assert job is not None and job.reading is None and not job.ephemeral and job.incoming.command == "reset"


def test_summarise_thread_shortcut_reads_the_thread_of_the_message_and_answers_in_it() -> None:
    reply = {"type": "message", "user": "U2", "text": "a reply", "ts": "20.000002", "thread_ts": "10.000001"}
    payload = message_shortcut("summarize_thread", user="U1", channel="C7", message=reply, response_url="u")
    job = normalize_shortcut(payload)
    assert job is not None
    assert (job.channel, job.thread_ts, job.reading) == ("C7", "10.000001", Reading("C7", "10.000001"))
    assert job.incoming.thread_key == "10.000001" and job.incoming.addressed_to_bot
    assert job.incoming.event_id == f"shortcut:{payload['trigger_id']}" and not job.ephemeral
    top = dict(reply, ts="30.000003")
    del top["thread_ts"]
    job = normalize_shortcut(
        message_shortcut("summarize_thread", user="U1", channel="C7", message=top, response_url="u")
    )
    assert job is not None and job.thread_ts == "30.000003"


def test_mention_summarize_reads_the_thread_or_the_channel_and_a_sentence_stays_a_question() -> None:
    in_thread = normalize_event(
        event_callback(mention_event("summarize", channel="C1", user="U1", ts="2.0", thread_ts="1.0")),
        BOT_USER_ID,
    )
    assert in_thread is not None and in_thread.reading == Reading("C1", "1.0")
    assert in_thread.incoming.command is None and in_thread.incoming.text == ""
    top = normalize_event(event_callback(mention_event("Summarise 20", channel="C1", user="U1")), BOT_USER_ID)
    assert (
        top is not None
        and top.reading == Reading("C1", None, 20)
        and top.thread_ts == top.incoming.thread_key
    )
    question = normalize_event(
        event_callback(mention_event("summarize what I pasted", channel="C1", user="U1")), BOT_USER_ID
    )
    assert question is not None and question.reading is None
    assert question.incoming.text == "summarize what I pasted" and question.incoming.command is None
