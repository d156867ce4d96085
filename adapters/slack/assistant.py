"""Slack's assistant panel through Bolt's assistant middleware: the greeting and suggested prompts of a new
thread, the thread's title from its first question, and the channel the user is looking at beside it.

The channel (the thread's context) is kept in Slack itself, in the metadata of the bot's first message of
the thread (the greeting), as Bolt's own store does: it lasts across restarts and replicas, needs no table
of ours, and goes with the thread. Only a channel the bot serves (``allowed_channel_ids``) is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import AsyncAssistantThreadContextStore
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import CALL_ERRORS, reason
from adapters.slack.history import Reading
from adapters.slack.users import UserDirectory
from bot.config import SlackSettings
from bot.i18n import Language, pick_language, text
from bot.observability.logs import get_logger

log = get_logger(__name__)

CONTEXT_EVENT: Final = "assistant_thread_context"
TITLE_CHARS: Final = 60
_DEFAULT_PROMPTS: Final = ("summarize", "explain", "draft", "ideas")
_SUMMARY_ASKS: Final = frozenset(
    {
        "summarise this channel",
        "summarize this channel",
        "summarise the channel",
        "summarize the channel",
        "总结这个频道",
        "总结此频道",
        "总结频道",
    }
)

Listener = Callable[..., Awaitable[Any]]


class ThreadContextStore(AsyncAssistantThreadContextStore):
    """The context of an assistant thread, in the metadata of the bot's first message in it."""

    def __init__(self, client: AsyncWebClient, bot_user_id: Callable[[], str]) -> None:
        self._client = client
        self._bot_user_id = bot_user_id

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        """Put ``context`` on the thread's first bot message (nothing happens when there is none)."""
        first = await self._first_bot_message(channel_id, thread_ts)
        if first is None:
            log.info("slack.assistant_context_unsaved", reason="no_bot_message")
            return
        await self._client.chat_update(
            channel=channel_id,
            ts=str(first["ts"]),
            text=str(first.get("text") or ""),
            metadata={"event_type": CONTEXT_EVENT, "event_payload": context},
        )

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        """The context last saved for the thread, None when there is none."""
        first = await self._first_bot_message(channel_id, thread_ts)
        metadata = (first or {}).get("metadata") or {}
        payload = metadata.get("event_payload") if metadata.get("event_type") == CONTEXT_EVENT else None
        return AssistantThreadContext(payload) if payload else None

    async def _first_bot_message(self, channel_id: str, thread_ts: str) -> Mapping[str, Any] | None:
        page = await self._client.conversations_replies(
            channel=channel_id, ts=thread_ts, oldest=thread_ts, include_all_metadata=True, limit=4
        )
        for message in page.get("messages") or []:
            if message.get("subtype") is None and message.get("user") == self._bot_user_id():
                return dict(message)
        return None


def asks_for_channel_summary(question: str) -> bool:
    """Whether a panel message asks to summarise the channel beside it ("Summarise this channel")."""
    return " ".join(question.lower().strip(" .!?。！？").split()) in _SUMMARY_ASKS


class AssistantPanel:
    """The assistant panel's own behaviour; its messages are answered like any DM thread's."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        optional_client: AsyncWebClient,
        users: UserDirectory,
        settings: SlackSettings,
        language: Language,
        bot_user_id: Callable[[], str],
    ) -> None:
        self._client = client
        self._optional = optional_client
        self._users = users
        self._settings = settings
        self._language = language
        self.store = ThreadContextStore(client, bot_user_id)

    def middleware(self, on_message: Listener) -> AsyncAssistant:
        """Bolt's assistant middleware with the panel's listeners; ``on_message`` answers user messages."""
        assistant = AsyncAssistant(thread_context_store=self.store)
        assistant.thread_started(self.started)
        assistant.thread_context_changed(self.context_changed)
        assistant.user_message(on_message)
        return assistant

    def serves(self, channel: str) -> bool:
        """Whether the bot serves ``channel`` (every channel when ``allowed_channel_ids`` is empty)."""
        allowed = self._settings.allowed_channel_ids
        return not allowed or channel in allowed

    async def _language_of(self, user: str) -> Language:
        _name, locale = await self._users.lookup(user)
        return pick_language(locale, self._language)

    async def started(self, payload: dict[str, Any]) -> None:
        """A new thread: the greeting (carrying the channel beside it) and the suggested prompts."""
        thread = payload.get("assistant_thread") or {}
        channel, thread_ts = str(thread.get("channel_id") or ""), str(thread.get("thread_ts") or "")
        if not channel or not thread_ts:
            return
        lang = await self._language_of(str(thread.get("user_id") or payload.get("user") or ""))
        context = self._kept(thread.get("context") or {})
        try:
            await self._client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text(lang, "assistant_greeting"),
                metadata={"event_type": CONTEXT_EVENT, "event_payload": context},
            )
            await self._client.assistant_threads_setSuggestedPrompts(
                channel_id=channel,
                thread_ts=thread_ts,
                title=text(lang, "assistant_prompts_title"),
                prompts=self.prompts(lang),
            )
        except CALL_ERRORS as exc:
            log.warning("slack.assistant_start_failed", error=reason(exc))

    def prompts(self, lang: Language) -> list[dict[str, str]]:
        """The configured suggested prompts, or the built-in ones in ``lang``."""
        configured = self._settings.assistant.suggested_prompts
        if configured:
            return [{"title": p.title, "message": p.message} for p in configured]
        return [
            {"title": text(lang, f"prompt_{name}_title"), "message": text(lang, f"prompt_{name}_message")}
            for name in _DEFAULT_PROMPTS
        ]

    def _kept(self, context: Mapping[str, Any]) -> dict[str, str]:
        """The part of a thread context to remember: the channel, only when the bot serves it."""
        channel = str(context.get("channel_id") or "")
        if not channel or not self.serves(channel):
            return {}
        return {k: str(v) for k, v in context.items() if isinstance(v, str)}

    async def context_changed(self, payload: dict[str, Any]) -> None:
        """The user looks at another channel beside the thread: remember it (when the bot serves it)."""
        thread = payload.get("assistant_thread") or {}
        channel, thread_ts = str(thread.get("channel_id") or ""), str(thread.get("thread_ts") or "")
        if not channel or not thread_ts:
            return
        try:
            await self.store.save(
                channel_id=channel, thread_ts=thread_ts, context=self._kept(thread.get("context") or {})
            )
        except CALL_ERRORS as exc:
            log.warning("slack.assistant_context_failed", error=reason(exc))

    async def set_title(self, channel: str, thread_ts: str, question: str) -> None:
        """Name the thread after its first question (a failure is logged: the answer goes on)."""
        title = " ".join(question.split())
        if len(title) > TITLE_CHARS:
            title = title[: TITLE_CHARS - 1].rstrip() + "…"
        if not title:
            return
        try:
            await self._optional.assistant_threads_setTitle(
                channel_id=channel, thread_ts=thread_ts, title=title
            )
        except CALL_ERRORS as exc:
            log.info("slack.assistant_title_failed", error=reason(exc))

    async def channel_reading(self, channel: str, thread_ts: str, lang: Language) -> Reading | str:
        """What to read for "summarise this channel" in the thread: the remembered channel's last
        messages, or the notice saying why there is nothing to read."""
        try:
            context = await self.store.find(channel_id=channel, thread_ts=thread_ts)
        except CALL_ERRORS as exc:
            log.warning("slack.assistant_context_failed", error=reason(exc))
            return text(lang, "summary_failed")
        seen = context.channel_id if context is not None else ""
        if not seen:
            return text(lang, "summary_no_channel")
        if not self.serves(seen):
            return text(lang, "summary_not_allowed")
        return Reading(seen, None)
