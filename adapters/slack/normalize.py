"""Slack events and slash commands normalized into ``Job``s: an ``Incoming`` and where to answer it.

The same message delivered again (Slack's retries, or as both ``app_mention`` and ``message.channels``)
carries the same event id, built from channel and ts, so the engine's inbox answers it once, also across
restarts and replicas.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from adapters.slack.files import SlackFile, event_files
from adapters.slack.history import Reading, message_count
from bot.domain import Incoming, MessageKind, Platform

SLACK_COMMANDS: Final = frozenset(
    {"help", "reset", "stats", "forget", "model", "persona", "settings", "usage", "summarize", "summarise"}
)
# Destructive commands after a mention only count when the word stands alone, so a sentence such as
# "@gembot forget what I said, then ..." is a question for Gemini, not an erasure.
STANDALONE_COMMANDS: Final = frozenset({"reset", "forget"})
_PUNCTUATION: Final = ".,:;!?"
SUMMARY_COMMANDS: Final = frozenset({"summarize", "summarise"})
SUMMARY_SHORTCUT: Final = "summarize_thread"
_ANSWERED_SUBTYPES: Final = frozenset({"file_share", "thread_broadcast"})
_LEADING_MENTION = re.compile(r"\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True, slots=True)
class Job:
    """One normalized Slack message or slash command, and where to answer it."""

    incoming: Incoming
    channel: str
    thread_ts: str | None  # the thread the answer goes to; None = the top level of a DM
    team_id: str = ""
    response_url: str = ""
    needs_membership: bool = False  # a thread reply without a mention: answered only in the bot's threads
    files: tuple[SlackFile, ...] = ()  # downloaded at the message's turn
    reading: Reading | None = None  # messages to read and send with it (a summary), never stored
    ephemeral: bool = False  # answered only to its sender (a slash command's summary)
    assistant: bool = False  # a message in an assistant panel thread (its title is set from the first)
    from_home: bool = False  # a click in the user's App Home tab: the tab is published again once answered

    @property
    def key(self) -> tuple[str, str]:
        """The conversation (channel, thread key): answers within one are delivered in order."""
        return (self.incoming.chat_key, self.incoming.thread_key)


def message_event_id(channel: str, ts: str) -> str:
    """The inbox id of a Slack message: the same for every delivery of it, whatever the event type."""
    return f"msg:{channel}:{ts}"


def _profile_name(event: Mapping[str, Any]) -> str:
    profile = event.get("user_profile")
    if isinstance(profile, Mapping):
        for key in ("display_name", "real_name", "name"):
            value = profile.get(key)
            if isinstance(value, str) and value:
                return value
    return ""


def _mention_command(text: str) -> tuple[str, str] | None:
    """(command, rest of the text) when the first word after the leading mention is a command word.

    In Slack the commands are the same words as the first word after a mention of the bot, so
    ``@gembot help me`` shows the help. ``reset`` and ``forget`` erase history, so they count only
    as the whole message (``@gembot reset``, ``@gembot Forget!``): ``@gembot forget what I said,
    then ...`` is a message for Gemini, not an erasure of every exchange of the sender.
    """
    parts = text.split(maxsplit=1)
    if not parts:
        return None
    word = parts[0].rstrip(_PUNCTUATION).lower().lstrip("/")
    rest = parts[1].strip() if len(parts) > 1 else ""
    if word not in SLACK_COMMANDS:
        return None
    if word in STANDALONE_COMMANDS and any(not ch.isspace() and ch not in _PUNCTUATION for ch in rest):
        return None
    return word, rest


def normalize_event(
    body: Mapping[str, Any], bot_user_id: str, bot_id: str = "", *, media: bool = True
) -> Job | None:
    """An Events API ``app_mention``/``message`` callback as a Job, or None when it is not for the bot.

    Bot messages (any ``bot_id``), the bot's own messages, edits, deletions and other subtypes, and
    top-level channel messages without a mention give None. Shared files are listed to be downloaded;
    with ``media`` off a message with files is ``UNSUPPORTED``.
    """
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") not in ("app_mention", "message"):
        return None
    subtype = event.get("subtype")
    if subtype is not None and subtype not in _ANSWERED_SUBTYPES:
        return None
    if event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)):
        return None
    if not user or user == bot_user_id or (bot_id and event.get("bot_id") == bot_id):
        return None
    thread_ts = event.get("thread_ts") or None
    text = str(event.get("text") or "")
    if bot_user_id:
        mention = re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>")
        leading = mention.match(text.lstrip()) is not None
        mentioned = event.get("type") == "app_mention" or mention.search(text) is not None
        text = mention.sub("", text)
    else:
        # Without our own id (auth.test not answered yet) only app_mention tells us: its first mention is us.
        mentioned = event.get("type") == "app_mention"
        leading = mentioned and _LEADING_MENTION.match(text) is not None
        if leading:
            text = _LEADING_MENTION.sub("", text, count=1)
    text = text.strip()
    command, command_args = (_mention_command(text) if leading else None) or (None, "")
    reading = None
    if command in SUMMARY_COMMANDS:
        command = None
        if not command_args or command_args.isdigit():
            # "@gembot summarize" in a thread summarises the thread; at the top level, the channel's end.
            # "@gembot summarize what I pasted" is a question like any other.
            count = message_count(command_args)
            reading = Reading(channel, thread_ts) if thread_ts else Reading(channel, None, count)
            text = ""
    files = event_files(event) if command is None else ()
    private = event.get("channel_type") == "im" or channel.startswith("D")
    if private:
        thread_key, reply_thread, addressed = thread_ts or "", thread_ts, True
    else:
        if not mentioned and thread_ts is None:
            return None
        thread_key = thread_ts or ts
        reply_thread, addressed = thread_key, mentioned
    incoming = Incoming(
        platform=Platform.SLACK,
        chat_key=channel,
        thread_key=thread_key,
        user_id=user,
        user_name=_profile_name(event),
        text="" if command is not None else text,
        event_id=message_event_id(channel, ts),
        is_private=private,
        addressed_to_bot=addressed,
        command=command,
        command_args=command_args,
        kind=MessageKind.UNSUPPORTED if files and not media else MessageKind.TEXT,
        reply_ids={"channel": channel, "ts": ts, "thread_ts": reply_thread or ""},
    )
    team = body.get("team_id") or event.get("team") or ""
    return Job(
        incoming=incoming,
        channel=channel,
        thread_ts=reply_thread,
        team_id=str(team),
        needs_membership=not addressed,
        files=files if media else (),
        reading=reading,
    )


def normalize_command(body: Mapping[str, Any]) -> Job | None:
    """A slash command (``/gembot reset``) as a Job; no subcommand means help."""
    channel, user = body.get("channel_id"), body.get("user_id")
    if not (isinstance(channel, str) and channel and isinstance(user, str) and user):
        return None
    word, _, rest = str(body.get("text") or "").strip().partition(" ")
    name = word.lower().lstrip("/") or "help"
    trigger = str(body.get("trigger_id") or uuid.uuid4().hex)
    private = channel.startswith("D") or body.get("channel_name") == "directmessage"
    summary = name in SUMMARY_COMMANDS
    incoming = Incoming(
        platform=Platform.SLACK,
        chat_key=channel,
        thread_key="",
        user_id=user,
        user_name=str(body.get("user_name") or ""),
        text="" if summary else rest.strip(),  # a summary's request is worded once the language is known
        event_id=f"command:{trigger}",
        is_private=private,
        addressed_to_bot=True,
        command=None if summary else name,
        command_args=rest.strip(),
        reply_ids={"channel": channel},  # not the response_url: reply ids are stored, and it is a credential
    )
    return Job(
        incoming=incoming,
        channel=channel,
        thread_ts=None,
        team_id=str(body.get("team_id") or ""),
        response_url=str(body.get("response_url") or ""),
        reading=Reading(channel, None, message_count(rest)) if summary else None,
        ephemeral=summary,
    )


def normalize_shortcut(body: Mapping[str, Any]) -> Job | None:
    """The "Summarise thread" message shortcut (a ``message_action``) as a Job answered in that thread."""
    channel = (body.get("channel") or {}).get("id")
    user = (body.get("user") or {}).get("id")
    message = body.get("message") or {}
    root = message.get("thread_ts") or message.get("ts") or body.get("message_ts")
    if not (isinstance(channel, str) and channel and isinstance(user, str) and user and root):
        return None
    trigger = str(body.get("trigger_id") or uuid.uuid4().hex)
    private = channel.startswith("D")
    incoming = Incoming(
        platform=Platform.SLACK,
        chat_key=channel,
        thread_key=str(root),
        user_id=user,
        user_name=str((body.get("user") or {}).get("name") or ""),
        text="",
        event_id=f"shortcut:{trigger}",
        is_private=private,
        addressed_to_bot=True,
        reply_ids={"channel": channel, "ts": str(root), "thread_ts": str(root)},
    )
    return Job(
        incoming=incoming,
        channel=channel,
        thread_ts=str(root),
        team_id=str((body.get("team") or {}).get("id") or ""),
        response_url=str(body.get("response_url") or ""),
        reading=Reading(channel, str(root)),
    )
