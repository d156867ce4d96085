"""Telegram inline mode: ``@bot question`` in any chat, answered with one article once the user stops
typing.

Telegram sends an inline query for every keystroke. Each user's latest query waits :data:`DEBOUNCE`
seconds; a newer query from the same user cancels the older one, whether it is still waiting (it never
reaches Gemini) or already being answered (the Gemini call stops). The answer goes through the engine
like any message (allow-lists, rate limits, quota, budgets, the word filter, the audit) without the
conversation's history and without being stored as one. Results are personal and cached briefly.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from telegram import (
    Bot,
    ChosenInlineResult,
    InlineQuery,
    InlineQueryResultArticle,
    InputTextMessageContent,
)
from telegram.constants import ParseMode
from telegram.error import TelegramError

from adapters.telegram.markup import render_telegram, telegram_plain
from adapters.telegram.sources import sources_html
from bot.domain import FinalAnswer, Incoming, Notice, Platform
from bot.engine import Engine
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics

log = get_logger(__name__)

DEBOUNCE: Final = 0.9
"""Seconds a user's query waits for the next keystroke before it is answered."""
CACHE_TIME: Final = 10
"""Seconds Telegram may show a user the same answer to the same query again."""
THREAD_KEY: Final = "inline"
"""Inline queries of one user are answered one at a time, apart from their private chat's messages."""
_TITLE_CHARS: Final = 64
_DESCRIPTION_CHARS: Final = 200


def inline_incoming(query: InlineQuery) -> Incoming:
    """The engine's message for an inline query: from the user's private chat (its allow-list and
    settings apply), keeping no history."""
    user = query.from_user
    return Incoming(
        platform=Platform.TELEGRAM,
        chat_key=str(user.id),
        thread_key=THREAD_KEY,
        user_id=str(user.id),
        user_name=user.first_name or user.username or str(user.id),
        text=query.query.strip(),
        event_id=f"inline:{query.id}",
        is_private=True,
        language=user.language_code,
        keep_history=False,
    )


def _shortened(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def inline_result(query: InlineQuery, event: FinalAnswer | Notice) -> InlineQueryResultArticle:
    """One article: the answer (Telegram HTML, its first message's worth) or the bot's notice."""
    if isinstance(event, Notice):
        content = InputTextMessageContent(event.text)
        title, description = _shortened(event.text, _TITLE_CHARS), ""
    else:
        notice = event.notice.text if event.notice is not None else None
        parts = render_telegram(event.text, notice=notice, tail=sources_html(event.sourcing))
        first = parts[0] if parts else "…"
        content = InputTextMessageContent(first, parse_mode=ParseMode.HTML)
        title = _shortened(query.query, _TITLE_CHARS)
        description = _shortened(telegram_plain(first), _DESCRIPTION_CHARS)
    return InlineQueryResultArticle(
        id=query.id[:64], title=title, input_message_content=content, description=description or None
    )


class InlineAnswers:
    """Debounces each user's inline queries and answers the last one."""

    def __init__(self, bot: Bot, engine: Engine, metrics: Metrics, *, enabled: bool) -> None:
        self._bot = bot
        self._engine = engine
        self._metrics = metrics
        self._enabled = enabled
        self._latest: dict[int, asyncio.Task[None]] = {}

    def received(self, query: InlineQuery) -> None:
        """A keystroke's query: it replaces the user's earlier one, and is answered after a pause."""
        if not self._enabled:
            self._metrics.inline_queries.labels("ignored").inc()
            return
        user_id = query.from_user.id
        earlier = self._latest.pop(user_id, None)
        if earlier is not None and not earlier.done():
            earlier.cancel()
            self._metrics.inline_queries.labels("superseded").inc()
        if not query.query.strip():
            return  # "@bot " alone: nothing to ask yet
        task = asyncio.create_task(self._answer_after_pause(query), name="tg-inline")
        self._latest[user_id] = task
        task.add_done_callback(lambda done: self._forget(user_id, done))

    def chosen(self, result: ChosenInlineResult) -> None:
        """The user sent one of the results into a chat (Telegram reports it when inline feedback is on)."""
        self._metrics.inline_chosen.inc()
        log.info("telegram.inline_chosen")

    async def close(self) -> None:
        """Cancel every query still waiting or being answered."""
        tasks = list(self._latest.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _answer(self, query: InlineQuery) -> FinalAnswer | Notice | None:
        terminal: FinalAnswer | Notice | None = None
        async with self._engine.answering(inline_incoming(query)) as events:
            async for event in events:
                if isinstance(event, FinalAnswer | Notice):
                    terminal = event
        return terminal

    def _forget(self, user_id: int, task: asyncio.Task[None]) -> None:
        if self._latest.get(user_id) is task:
            del self._latest[user_id]

    async def _answer_after_pause(self, query: InlineQuery) -> None:
        await asyncio.sleep(DEBOUNCE)
        try:
            terminal = await self._answer(query)
        except Exception:
            log.exception("telegram.inline_failed")
            return
        if terminal is None:
            return
        self._metrics.inline_queries.labels(
            "answered" if isinstance(terminal, FinalAnswer) else "refused"
        ).inc()
        try:
            await self._bot.answer_inline_query(
                query.id, [inline_result(query, terminal)], cache_time=CACHE_TIME, is_personal=True
            )
        except TelegramError as exc:
            # Most often the query expired while Gemini answered: the user sees no result.
            log.warning("telegram.inline_answer_failed", error=exc.__class__.__name__, detail=str(exc)[:200])
