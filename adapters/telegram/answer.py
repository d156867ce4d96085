"""One answer shown in one Telegram chat: typing, a throttled streamed preview, then the final messages."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from telegram import Bot, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, ChatMigrated, InvalidToken, TelegramError, TimedOut

from adapters.telegram.markup import (
    TELEGRAM_TEXT_LIMIT,
    render_telegram,
    split_plain,
    split_telegram_html,
    telegram_html,
    telegram_plain,
)
from adapters.telegram.normalize import Target
from adapters.telegram.outbox import ChatUnreachableError, Outbox, Scope
from adapters.telegram.sources import sources_html, thoughts_html
from bot.domain import Delta, FinalAnswer, Notice, ReplyEvent, Typing
from bot.observability.logs import get_logger

log = get_logger(__name__)

TYPING_REFRESH = 4.0
"""Seconds between typing actions (Telegram shows one for at most 5 s)."""
TYPING_DELAY = 0.3  # seconds before the first typing action: below what a user notices as a wait
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def _is_parse_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower()


def _not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


def _gone(exc: BadRequest) -> bool:
    text = exc.message.lower()
    return "message to edit not found" in text or "message can't be edited" in text


def _drafts_unavailable(exc: TelegramError) -> bool:
    """Whether this Bot API server has no sendMessageDraft for this bot (not a problem of one chat)."""
    text = exc.message.lower()
    if isinstance(exc, InvalidToken):
        # PTB's reading of 404 "Not Found": the token works (getMe did), so the method is unknown.
        return "not found" in text
    return isinstance(exc, BadRequest) and any(
        marker in text for marker in ("method not found", "not supported", "not available", "unavailable")
    )


class DraftSupport:
    """Whether sendMessageDraft works on this Bot API server (switched off after it is refused)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled


class AnswerWriter:
    """Consumes the engine's events for one message and shows them.

    Private chats stream with sendMessageDraft and finish with sendMessage; groups get one message that
    is edited as the reply grows. Previews are optional and throttled; the final text always arrives
    complete (split under 4096 characters, HTML with a plain-text fallback for the messages not yet
    shown) and never twice (a message whose send timed out may have arrived, so it is not sent again).
    """

    def __init__(
        self,
        bot: Bot,
        outbox: Outbox,
        target: Target,
        *,
        interval: float,
        drafts: DraftSupport,
        on_preview_message: Callable[[int], Awaitable[None]] | None = None,
        on_answer_message: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """``on_preview_message`` is told the id of a group preview message once it is posted,
        ``on_answer_message`` the id of each message that shows the final answer (not a notice)."""
        self._bot = bot
        self._on_preview_message = on_preview_message
        self._on_answer_message = on_answer_message
        self._outbox = outbox
        self._target = target
        self._chat_id = target.chat_id
        self._interval = interval
        self._drafts = drafts
        self._text = ""
        self._shown = ""
        self._preview_id: int | None = None  # the group message being edited
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._preview_task: asyncio.Task[None] | None = None
        self._typing_task: asyncio.Task[None] | None = None
        self._use_drafts = True  # False after a chat-specific refusal: edits for the rest of this answer
        self._parts: list[str] = []  # the final answer's messages
        self._parts_html = False
        self._delivered = 0  # how many of them were shown (or may have been: timed out)
        self._final_is_answer = False

    async def write(self, events: AsyncIterator[ReplyEvent]) -> bool:
        """Show the events of one answer; False, at once, when the chat refuses it for good.

        The final text gets one more try as plain text; when that is refused too (a deleted forum topic,
        a group where the bot may not write), or the chat is unreachable (blocked), the answer is
        undelivered and the rest of the stream is not read.
        """
        try:
            async for event in events:
                try:
                    await self._show(event)
                except ChatUnreachableError:
                    return False
                except TelegramError as exc:
                    if not isinstance(event, FinalAnswer | Notice):
                        raise
                    if not await self._last_resort(exc):
                        return False
            return True
        finally:
            await self._stop_streaming()

    async def _last_resort(self, exc: TelegramError) -> bool:
        """The messages of the answer not yet shown, as plain text; False when they are refused too."""
        log.warning(
            "telegram.answer_failed",
            chat_id=self._chat_id,
            error=str(exc)[:200],
            shown=self._delivered,
            parts=len(self._parts),
        )
        self._preview_id = None
        rest = self._parts[self._delivered :]
        if self._parts_html:
            rest = [plain for plain in (telegram_plain(part).strip() for part in rest) if plain]
        try:
            await self._finish(rest, None, first=self._delivered)
        except (TelegramError, ChatUnreachableError) as again:
            log.warning("telegram.answer_undelivered", chat_id=self._chat_id, error=str(again)[:200])
            return False
        return True

    async def _show(self, event: ReplyEvent) -> None:
        if isinstance(event, Typing):
            if self._typing_task is None:
                self._typing_task = asyncio.create_task(self._keep_typing(), name="tg-typing")
        elif isinstance(event, Delta):
            self._text += event.text
            if self._drafting:
                # The first draft goes out at once and ends the typing indicator; one not yet sent is
                # not needed any more.
                self._stop_typing()
            if event.last:
                # The reply is complete and its final message follows: a preview would only repeat it
                # (for a reply that came in one piece, the final message is the only call).
                self._closing.set()
                self._dirty.set()
                return
            if self._preview_task is None:
                self._preview_task = asyncio.create_task(self._preview_loop(), name="tg-preview")
            self._dirty.set()
        elif isinstance(event, FinalAnswer):
            await self._stop_streaming()
            notice = event.notice.text if event.notice is not None else None
            parts = render_telegram(
                event.text,
                notice=notice,
                head=thoughts_html(event.sourcing),
                tail=sources_html(event.sourcing),
            )
            self._final_is_answer = True
            await self._finish(parts or ["…"], ParseMode.HTML)
        elif isinstance(event, Notice):
            await self._stop_streaming()
            await self._finish(split_plain(event.text, TELEGRAM_TEXT_LIMIT), None)

    # ------------------------------------------------------------------------ typing, previews

    async def _keep_typing(self) -> None:
        # An answer that shows within TYPING_DELAY needs no indicator (its message ends one at once): for
        # quick answers that saves a Bot API call per message.
        await asyncio.sleep(TYPING_DELAY)
        scope = Scope.ACTION  # the first one always; refreshes within the bot-wide budget
        while True:
            try:
                await self._outbox.call(
                    self._chat_id,
                    lambda: self._bot.send_chat_action(
                        self._chat_id, ChatAction.TYPING, message_thread_id=self._target.thread_id
                    ),
                    scope=scope,
                    optional=True,
                )
            except (TelegramError, ChatUnreachableError) as exc:
                log.debug("telegram.typing_failed", error=str(exc))
                return
            scope = Scope.REFRESH
            await asyncio.sleep(TYPING_REFRESH)

    async def _preview_loop(self) -> None:
        # Drafts are cheap and vanish, so the first one shows the first text at once; only later ones wait
        # for the interval. In groups the first preview is a real message, so it waits a whole interval:
        # short answers arrive whole.
        first_delay = 0.0 if self._drafting else self._interval
        last = time.monotonic() - self._interval + first_delay
        while not self._closing.is_set():
            await self._dirty.wait()
            self._dirty.clear()
            delay = last + self._interval - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
            if self._closing.is_set():
                return
            text = self._text
            if text == self._shown:
                continue
            try:
                shown = await self._preview(text)
            except ChatUnreachableError:
                return
            except TelegramError as exc:
                log.info("telegram.preview_failed", chat_id=self._chat_id, error=str(exc))
                shown = False
            if shown:
                self._shown = text
                self._stop_typing()
            last = time.monotonic()

    async def _preview(self, markdown: str) -> bool:
        parts = split_telegram_html(telegram_html(markdown))
        if not parts:
            return False
        html = parts[0] + (" …" if len(parts) > 1 else "")
        if self._drafting:
            return await self._draft(html)
        if self._preview_id is None:
            message = await self._send(html, ParseMode.HTML, optional=True, quote=True)
            if message is None:
                return False
            self._preview_id = message.message_id
            if self._on_preview_message is not None:
                await self._on_preview_message(message.message_id)
            return True
        return await self._edit(self._preview_id, html, ParseMode.HTML, optional=True)

    @property
    def _drafting(self) -> bool:
        return self._target.is_private and self._drafts.enabled and self._use_drafts

    async def _draft(self, html: str) -> bool:
        async def send(text: str, mode: str | None) -> bool | None:
            return await self._outbox.call(
                self._chat_id,
                lambda: self._bot.send_message_draft(
                    self._chat_id,
                    self._target.draft_id,
                    text=text,
                    parse_mode=mode,
                    message_thread_id=self._target.thread_id,
                ),
                scope=Scope.DRAFT,
                optional=True,
            )

        try:
            return bool(await send(html, ParseMode.HTML))
        except (BadRequest, InvalidToken) as exc:
            if isinstance(exc, BadRequest) and _is_parse_error(exc):
                return bool(await send(telegram_plain(html), None))
            if _drafts_unavailable(exc):
                # An older Bot API server: use edits from now on, in every chat.
                log.info("telegram.drafts_off", error=exc.message)
                self._drafts.enabled = False
            else:
                # Something about this chat or this answer ("chat not found"...): edits for this answer.
                log.info("telegram.draft_refused", chat_id=self._chat_id, error=exc.message)
                self._use_drafts = False
            return False

    async def _stop_streaming(self) -> None:
        self._stop_typing()
        task, self._preview_task = self._preview_task, None
        if task is not None:
            # Let an in-flight preview request finish: cancelling it could leave a message we do not know.
            self._closing.set()
            self._dirty.set()
            with contextlib.suppress(Exception):
                await task

    def _stop_typing(self) -> None:
        task, self._typing_task = self._typing_task, None
        if task is not None:
            task.cancel()

    # ---------------------------------------------------------------------------- final text

    async def _finish(self, parts: list[str], mode: str | None, *, first: int = 0) -> None:
        """Show ``parts``, the answer's messages from number ``first`` on, counting them as they go."""
        if first == 0:
            self._parts, self._parts_html = parts, mode == ParseMode.HTML
        for index, part in enumerate(parts, start=first):
            try:
                if (
                    index == 0
                    and self._preview_id is not None
                    and await self._edit_final(self._preview_id, part, mode)
                ):
                    await self._shown_in(self._preview_id)
                else:
                    await self._shown_in(await self._send_final(part, mode, quote=index == 0))
            except TimedOut as exc:
                # It may have arrived all the same: sending it again could show it twice.
                log.warning(
                    "telegram.answer_part_timed_out",
                    chat_id=self._chat_id,
                    part=index + 1,
                    error=str(exc)[:200],
                )
            self._delivered = index + 1

    async def _shown_in(self, message: Message | int | None) -> None:
        if message is not None and self._final_is_answer and self._on_answer_message is not None:
            await self._on_answer_message(message if isinstance(message, int) else message.message_id)

    async def _send_final(self, text: str, mode: str | None, *, quote: bool) -> Message | None:
        try:
            return await self._send(text, mode, optional=False, quote=quote)
        except BadRequest as exc:
            if mode is None or not _is_parse_error(exc):
                raise
            log.info("telegram.plain_fallback", chat_id=self._chat_id, error=exc.message)
            return await self._send(telegram_plain(text), None, optional=False, quote=quote)

    async def _edit_final(self, message_id: int, text: str, mode: str | None) -> bool:
        """Edit the preview into the final part; False when it is gone and a new message is needed."""
        try:
            return await self._edit(message_id, text, mode, optional=False)
        except BadRequest as exc:
            if mode is not None and _is_parse_error(exc):
                log.info("telegram.plain_fallback", chat_id=self._chat_id, error=exc.message)
                try:
                    return await self._edit(message_id, telegram_plain(text), None, optional=False)
                except BadRequest as again:
                    if _gone(again):
                        return False
                    raise
            if _gone(exc):
                return False
            raise

    # ------------------------------------------------------------------------- Bot API calls

    async def _send(self, text: str, mode: str | None, *, optional: bool, quote: bool) -> Message | None:
        reply = None
        if quote and self._target.reply_to is not None:
            reply = ReplyParameters(self._target.reply_to, allow_sending_without_reply=True)

        def send() -> Awaitable[Message]:
            return self._bot.send_message(
                self._chat_id,
                text,
                parse_mode=mode,
                message_thread_id=self._target.thread_id,
                reply_parameters=reply,
                link_preview_options=_NO_PREVIEW,
            )

        message: Message | None = await self._migrating(
            lambda: self._outbox.call(self._chat_id, send, optional=optional)
        )
        return message

    async def _edit(self, message_id: int, text: str, mode: str | None, *, optional: bool) -> bool:
        def edit() -> Awaitable[Message | bool]:
            return self._bot.edit_message_text(
                text, self._chat_id, message_id, parse_mode=mode, link_preview_options=_NO_PREVIEW
            )

        try:
            result = await self._migrating(lambda: self._outbox.call(self._chat_id, edit, optional=optional))
        except BadRequest as exc:
            if _not_modified(exc):
                return True
            raise
        return result is not None

    async def _migrating(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except ChatMigrated as exc:
            # The group became a supergroup while we answered: answer there.
            self._chat_id = exc.new_chat_id
            self._preview_id = None
            return await call()
