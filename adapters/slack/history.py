"""Reading a Slack thread or the end of a channel for a summary: conversations.replies/history, page by
page, and the messages as "name: text" lines with the senders' names resolved.

What is read is held only in memory, for the one request it is read for.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import CALL_ERRORS, error_code, reason
from adapters.slack.users import UserDirectory
from bot.context import speaker_name
from bot.observability.logs import get_logger

log = get_logger(__name__)

DEFAULT_MESSAGES: Final = 50
MAX_MESSAGES: Final = 200
_PAGE: Final = 200  # Slack's largest page for conversations.history/replies
_MAX_PAGES: Final = 50  # a thread longer than this many pages is summarised from its last pages
# Messages people wrote (or bots posted); joins, topic changes and the like are not part of a summary.
_READ_SUBTYPES: Final = frozenset({None, "bot_message", "thread_broadcast", "file_share", "me_message"})
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
# Refusals meaning the bot cannot read there (it was never invited, or the channel is gone or private).
UNREADABLE_ERRORS: Final = frozenset(
    {"not_in_channel", "channel_not_found", "missing_scope", "access_denied"}
)


@dataclass(frozen=True, slots=True)
class Reading:
    """What to read for a summary: a thread (``thread_ts``), or the last ``limit`` messages of a channel."""

    channel: str
    thread_ts: str | None
    limit: int = DEFAULT_MESSAGES


class Unreadable(Exception):
    """Slack refused to let the bot read the conversation; ``code`` is Slack's error."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def message_count(argument: str) -> int:
    """The N of ``summarize [N]``: the default when missing or not a number, at most :data:`MAX_MESSAGES`."""
    word = argument.strip().split(maxsplit=1)[0] if argument.strip() else ""
    if not word.isdigit():
        return DEFAULT_MESSAGES
    return max(1, min(MAX_MESSAGES, int(word)))


class HistoryReader:
    """Reads the messages of a thread or channel and writes them out with their senders' names."""

    def __init__(self, client: AsyncWebClient, users: UserDirectory) -> None:
        self._client = client
        self._users = users

    async def read(self, reading: Reading) -> list[Mapping[str, Any]]:
        """The messages, oldest first; raises :class:`Unreadable` when the bot may not read there, and
        propagates other failures (connection errors, rate limits after the retries)."""
        try:
            if reading.thread_ts is not None:
                return await self._thread(reading.channel, reading.thread_ts)
            return await self._channel(reading.channel, reading.limit)
        except SlackApiError as exc:
            code = error_code(exc)
            if code in UNREADABLE_ERRORS:
                raise Unreadable(code) from exc
            raise

    async def _thread(self, channel: str, thread_ts: str) -> list[Mapping[str, Any]]:
        kept: deque[Mapping[str, Any]] = deque(maxlen=MAX_MESSAGES)
        cursor = ""
        for _ in range(_MAX_PAGES):
            page = await self._client.conversations_replies(
                channel=channel, ts=thread_ts, limit=_PAGE, cursor=cursor or None
            )
            kept.extend(m for m in page.get("messages") or [] if _readable(m))
            cursor = _next_cursor(page)
            if not cursor:
                break
        return list(kept)

    async def _channel(self, channel: str, limit: int) -> list[Mapping[str, Any]]:
        newest_first: list[Mapping[str, Any]] = []
        cursor = ""
        while len(newest_first) < limit:
            page = await self._client.conversations_history(
                channel=channel, limit=min(_PAGE, limit - len(newest_first)), cursor=cursor or None
            )
            newest_first.extend(m for m in page.get("messages") or [] if _readable(m))
            cursor = _next_cursor(page)
            if not cursor:
                break
        return list(reversed(newest_first[:limit]))

    async def transcript(self, messages: list[Mapping[str, Any]]) -> list[str]:
        """Each message as "name: text" (continuation lines indented), mentions shown by names."""
        lines = []
        for message in messages:
            name = await self._sender(message)
            body = await self._named_mentions(str(message.get("text") or ""))
            lines.append(f"{name}: " + body.replace("\n", "\n  "))
        return lines

    async def _sender(self, message: Mapping[str, Any]) -> str:
        user = message.get("user")
        if isinstance(user, str) and user:
            name, _locale = await self._users.lookup(user)
            return speaker_name(name) or user
        profile = message.get("bot_profile")
        if isinstance(profile, Mapping) and profile.get("name"):
            return speaker_name(str(profile["name"]))
        return speaker_name(str(message.get("username") or "bot")) or "bot"

    async def _named_mentions(self, text: str) -> str:
        named: dict[str, str] = {}
        for user in set(_MENTION.findall(text)):
            name, _locale = await self._users.lookup(user)
            named[user] = speaker_name(name) or user
        return _MENTION.sub(lambda m: "@" + named[m.group(1)], text)


def _readable(message: Mapping[str, Any]) -> bool:
    return message.get("subtype") in _READ_SUBTYPES and bool(message.get("text"))


def _next_cursor(page: Any) -> str:
    metadata = page.get("response_metadata") or {}
    return str(metadata.get("next_cursor") or "") if page.get("has_more", True) else ""


def failure_reason(exc: Exception) -> str:
    """What to log for a read that failed other than by a refusal."""
    return reason(exc) if isinstance(exc, CALL_ERRORS) else exc.__class__.__name__
