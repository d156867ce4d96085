"""The Telegram adapter: python-telegram-bot's Application on gembot's event loop, polling or webhook."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from aiohttp import web
from telegram import BotCommand, Message, MessageReactionUpdated, ReplyParameters, Update
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import ApplicationBuilder, BaseUpdateProcessor, ContextTypes, TypeHandler

from adapters.telegram.albums import Albums
from adapters.telegram.answer import AnswerWriter, DraftSupport
from adapters.telegram.inline import InlineAnswers
from adapters.telegram.media import fetch_all
from adapters.telegram.normalize import BotIdentity, Normalized, normalize, ordering_key
from adapters.telegram.outbox import ChatUnreachableError, FloodControl, Outbox, retry_after_seconds
from adapters.telegram.reactions import reaction_vote
from adapters.telegram.request import BotApiRequest
from bot.domain import ANSWER_MESSAGE, AdminAlert, FollowUp, Platform
from bot.observability.logs import get_logger
from bot.sequencer import LocalSequencer
from bot.transport import pooled_transport

if TYPE_CHECKING:
    from adapters.base import AdapterDeps
    from bot.config import TelegramSettings

log = get_logger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
# Edits are not answered again, so they are not fetched either. Reactions are votes on answers.
ALLOWED_UPDATES = ["message", "message_reaction"]
INLINE_UPDATES = ["inline_query", "chosen_inline_result"]  # with telegram.inline
MAX_CONCURRENT_UPDATES = 4096
# Updates of one chat held at once (see ChatOrderedProcessor): answered at Telegram's 1 message/s per chat,
# 50 are nearly a minute of answers, and about 80 flooding chats are needed to fill MAX_CONCURRENT_UPDATES.
MAX_CHAT_BACKLOG = 50
# An album's parts arrive one update each: it is answered once none has come for this long.
ALBUM_QUIET = 1.0
CONNECTIONS = 512  # to the Bot API: one per request in flight (answers, previews, typing)
MAX_CONNECT_DELAY = 60.0
_COMMANDS = {
    "": [
        ("start", "What this bot does"),
        ("help", "How to use the bot and what is kept"),
        ("reset", "Forget this conversation's context"),
        ("forget", "Erase everything you said to the bot"),
        ("model", "List or switch this chat's model"),
        ("persona", "List or pick a persona"),
        ("settings", "This chat's settings"),
        ("usage", "Your own use and budgets"),
        ("stats", "Usage statistics (admins)"),
    ],
    "zh": [
        ("start", "机器人介绍"),
        ("help", "使用说明与数据保留"),
        ("reset", "清空本会话的上下文"),
        ("forget", "删除你的全部对话记录"),
        ("model", "查看或切换本聊天的模型"),
        ("persona", "查看或选择人设"),
        ("settings", "本聊天的设置"),
        ("usage", "你的用量与预算"),
        ("stats", "使用统计（管理员）"),
    ],
}


def _is_migration(message: Message | None) -> bool:
    """Whether this is the service message of a group becoming a supergroup (either side of it)."""
    return message is not None and bool(message.migrate_to_chat_id or message.migrate_from_chat_id)


class Ordering(Enum):
    """How :class:`ChatOrderedProcessor` runs an update."""

    NONE = "none"  # nothing for the bot to do: run at once, outside its chat's order
    ANSWER = "answer"  # waits for its chat's turn; dropped while the chat's backlog is full
    ALWAYS = "always"  # waits for its chat's turn, never dropped (a migration: history and grants follow it)


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Updates of different chats (and forum topics) run concurrently; those of one run in arrival order.

    Flood protection: every update waiting for its turn holds one of PTB's ``max_concurrent_updates``
    slots, and a chat is answered at most once a second. So a chat may have at most ``max_backlog``
    updates here at a time, the one being processed included (counted per chat, its forum topics
    together); an ``ANSWER`` update arriving while it has that many is dropped at once: never answered,
    counted by ``on_drop``. The first drop of a burst is logged; the burst ends when the chat has
    nothing left here. :meth:`admit` takes an update's place on arrival, before the adapter records and
    queues it, so a dropped update is never recorded in the inbox.
    """

    def __init__(
        self,
        max_concurrent_updates: int,
        *,
        classify: Callable[[object], Ordering] | None = None,
        on_drop: Callable[[object], None] | None = None,
        max_backlog: int = MAX_CHAT_BACKLOG,
    ) -> None:
        super().__init__(max_concurrent_updates)
        self._tails: dict[tuple[int, int], asyncio.Future[None]] = {}
        self._backlog: dict[int, int] = {}
        self._flooding: set[int] = set()
        self._admitted: dict[int, Ordering] = {}
        self._classify = classify
        self._on_drop = on_drop
        self._max_backlog = max_backlog

    def admit(self, update: object) -> Ordering | None:
        """Classify ``update`` and take its place in its chat's backlog now; None if it was dropped.

        Call :meth:`release` if it is not passed to :meth:`process_update` after all.
        """
        key = ordering_key(update)
        try:
            ordering = Ordering.ANSWER if self._classify is None else self._classify(update)
        except Exception:
            # An update we cannot read goes to its handlers all the same (which find nothing to answer).
            log.exception("telegram.classify_failed")
            ordering = Ordering.NONE
        if key is None or ordering is Ordering.NONE or not isinstance(update, Update):
            return Ordering.NONE
        chat = key[0]
        backlog = self._backlog.get(chat, 0)
        if backlog >= self._max_backlog and ordering is Ordering.ANSWER:
            self._drop(chat, update)
            return None
        self._backlog[chat] = backlog + 1
        self._admitted[update.update_id] = ordering
        return ordering

    def release(self, update: object) -> None:
        """Give back the place :meth:`admit` took for an update that will not be processed."""
        key = ordering_key(update)
        if key is not None and isinstance(update, Update) and update.update_id in self._admitted:
            del self._admitted[update.update_id]
            self._leave(key[0])

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Wait for the previous update of the same conversation, then process this one."""
        key = ordering_key(update)
        ordering = self._admitted.pop(update.update_id, None) if isinstance(update, Update) else None
        if ordering is None:
            ordering = self.admit(update)
            if ordering is None:
                if inspect.iscoroutine(coroutine):
                    coroutine.close()  # never awaited on purpose
                return
            if isinstance(update, Update):
                self._admitted.pop(update.update_id, None)
        if key is None or ordering is Ordering.NONE:
            await coroutine
            return
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        try:
            if previous is not None:
                await asyncio.shield(previous)  # a cancelled wait must not cancel the previous update's turn
            await coroutine
        finally:
            if not done.done():
                done.set_result(None)
            if self._tails.get(key) is done:
                del self._tails[key]
            self._leave(key[0])

    def _leave(self, chat: int) -> None:
        self._backlog[chat] -= 1
        if not self._backlog[chat]:
            del self._backlog[chat]
            self._flooding.discard(chat)

    def _drop(self, chat: int, update: object) -> None:
        if chat not in self._flooding:
            self._flooding.add(chat)
            log.warning("telegram.flood_dropping", chat_id=chat, backlog=self._max_backlog)
        if self._on_drop is not None:
            self._on_drop(update)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


class InboxUnavailableError(NetworkError):
    """An update could not be recorded in the inbox: it must not be confirmed to Telegram.

    A ``NetworkError`` so that PTB's polling loop fetches the same updates again after a pause.
    """


class RecordingQueue(asyncio.Queue[object]):
    """PTB's update queue, where an update is recorded before it is queued.

    The webhook handler and PTB's polling put updates here, and Telegram learns that an update was taken
    only afterwards (the webhook's 200; in polling, the offset of the next getUpdates, sent right after
    the batch is queued): an acknowledged update is in the inbox and survives a crash. Updates of one
    chat are recorded and queued one at a time, so their order here is the order of their inbox rows.
    """

    def __init__(self, record: Callable[[object], Awaitable[bool]]) -> None:
        super().__init__()
        self._record = record
        self._arriving = LocalSequencer()

    async def put(self, item: object) -> None:
        """Record ``item`` (which may raise :class:`InboxUnavailableError`), then queue it if wanted."""
        key = ordering_key(item)
        if key is None:
            await super().put(item)
            return
        async with self._arriving.hold(key):
            if await self._record(item):
                await super().put(item)


class TelegramAdapter:
    """Receives Telegram updates, hands them to the engine in order, and renders the answers."""

    name = "telegram"

    def __init__(self, deps: AdapterDeps[TelegramSettings]) -> None:
        settings = deps.settings
        if settings.token is None:
            raise ValueError("telegram.token is required")
        self._settings = settings
        self._media = deps.media
        self._albums = Albums(ALBUM_QUIET)
        self._reconnects = deps.metrics.adapter_reconnects.labels(self.name)
        self._engine = deps.engine
        self._metrics = deps.metrics
        self._clock = deps.clock
        self._alerts = deps.alerts
        self._unsubscribe_alerts: Callable[[], None] | None = None
        base = settings.base_url.rstrip("/")
        self._processor = ChatOrderedProcessor(
            MAX_CONCURRENT_UPDATES, classify=self._ordering, on_drop=self._flood_dropped
        )
        builder = (
            ApplicationBuilder()
            .token(settings.token.get_secret_value())
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .update_queue(RecordingQueue(self._record))
            .concurrent_updates(self._processor)
            .request(
                BotApiRequest(
                    connection_pool_size=CONNECTIONS,
                    pool_timeout=30.0,
                    # aiohttp's pool under httpx's API (bot.transport): no scan of the pool per request.
                    httpx_kwargs={"transport": pooled_transport(max_connections=CONNECTIONS)},
                )
            )
            .get_updates_request(BotApiRequest(connection_pool_size=1, read_timeout=30.0))
        )
        if settings.mode == "webhook":
            builder = builder.updater(None)
        self._application = builder.build()
        self._application.add_handler(TypeHandler(Update, self._on_update))
        self._application.add_error_handler(self._on_error)
        self._outbox = Outbox(FloodControl(settings.rate_limit, deps.clock))
        self._inline = InlineAnswers(
            self._application.bot, deps.engine, deps.metrics, enabled=settings.inline
        )
        self._allowed_updates = ALLOWED_UPDATES + (INLINE_UPDATES if settings.inline else [])
        self._arrivals: dict[int, tuple[Normalized, bool]] = {}
        self._classified: dict[int, Normalized] = {}
        self._drafts = DraftSupport(settings.draft_streaming)
        self._me: BotIdentity | None = None
        self._problem: str | None = "starting"
        self._last_poll_error: tuple[float, str] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._commands_set: set[str] = set()
        self._accepting = False
        if settings.mode == "webhook":
            deps.routes.add_route("POST", WEBHOOK_PATH, self._webhook)

    # --------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Connect in the background (the Bot API may be briefly unreachable); /readyz tells when done."""
        self._connecting = asyncio.create_task(self._connect(), name="telegram-connect")

    async def _connect(self) -> None:
        """Set up until it works: a failed step is retried with backoff (a 429's own wait honoured)."""
        delay = 1.0
        while True:
            try:
                await self._set_up()
                break
            except InvalidToken:
                self._problem = "the bot token was rejected by Telegram"
                log.error("telegram.token_rejected")
                wait = MAX_CONNECT_DELAY
            except RetryAfter as exc:
                wait = retry_after_seconds(exc) + 0.5
                self._problem = f"flood control by the Bot API (retrying in {wait:.0f} s)"
                log.warning("telegram.connect_flood_wait", retry_in=wait)
            except TelegramError as exc:
                wait = delay
                delay = min(delay * 2, MAX_CONNECT_DELAY)
                if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
                    self._problem = f"cannot reach the Bot API ({exc.__class__.__name__})"
                else:
                    self._problem = f"the Bot API refused the set-up ({exc.message[:200]})"
                log.warning(
                    "telegram.connect_failed",
                    error=exc.__class__.__name__,
                    detail=exc.message[:200],
                    retry_in=wait,
                )
            except Exception as exc:
                # Not the Bot API's answer but our side: still no reason to stop trying.
                wait = delay
                delay = min(delay * 2, MAX_CONNECT_DELAY)
                self._problem = f"set-up failed ({exc.__class__.__name__})"
                log.exception("telegram.connect_crashed", retry_in=wait)
            self._reconnects.inc()
            await asyncio.sleep(wait)
        self._problem = None
        self._unsubscribe_alerts = self._alerts.subscribe(self._deliver_alert)
        log.info("telegram.started", mode=self._settings.mode, bot=self._application.bot.username)

    async def _set_up(self) -> None:
        """getMe, commands, the webhook (or none), then updates; every step may run again after a failure."""
        application = self._application
        await application.initialize()  # a no-op once it succeeded
        bot = application.bot
        self._me = BotIdentity(bot.id, bot.username)
        await self._register_commands()
        settings = self._settings
        if settings.mode == "webhook":
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            await bot.set_webhook(
                url=settings.webhook_url or "",
                secret_token=secret,
                allowed_updates=self._allowed_updates,
                drop_pending_updates=settings.drop_pending_updates,
            )
        else:
            # PTB's own bootstrap would retry this forever without telling readiness why.
            await bot.delete_webhook(drop_pending_updates=settings.drop_pending_updates)
        if not application.running:
            await application.start()
        self._accepting = True
        if settings.mode == "polling":
            updater = application.updater
            assert updater is not None
            await updater.start_polling(
                allowed_updates=self._allowed_updates,
                bootstrap_retries=-1,
                error_callback=self._polling_error,
            )

    async def _deliver_alert(self, alert: AdminAlert) -> None:
        """Tell every configured admin in a private chat (they must have started the bot once)."""
        bot = self._application.bot
        # A group's id stands for its anonymous admins (see normalize): alerts are not for the group.
        for admin_id in (i for i in self._settings.admin_ids if i > 0):

            async def send(chat_id: int = admin_id) -> object:
                return await bot.send_message(chat_id=chat_id, text=alert.text)

            try:
                await self._outbox.call(admin_id, send)
            except (TelegramError, ChatUnreachableError) as exc:
                log.warning("telegram.alert_failed", admin_id=admin_id, error=exc.__class__.__name__)

    async def _register_commands(self) -> None:
        """Register the command menus: a refused one is skipped, a 429 or network error raised (retried)."""
        for language, commands in _COMMANDS.items():
            if language in self._commands_set:
                continue
            try:
                await self._application.bot.set_my_commands(
                    [BotCommand(name, description) for name, description in commands],
                    language_code=language or None,
                )
            except BadRequest as exc:
                log.warning("telegram.set_commands_failed", language=language, error=exc.message)
            self._commands_set.add(language)

    def _polling_error(self, exc: TelegramError) -> None:
        # PTB polls again after this (after 1 s, growing to 30 s): each call is one reconnection.
        self._reconnects.inc()
        self._last_poll_error = (self._clock.monotonic(), exc.__class__.__name__)
        log.warning("telegram.polling_error", error=exc.__class__.__name__, detail=str(exc)[:200])

    async def stop(self, grace: float) -> None:
        """Stop taking updates, let the answers in progress finish, disconnect.

        PTB waits for every update it started; the caller cancels this at the end of ``grace``.
        """
        self._accepting = False
        await self._inline.close()
        if self._unsubscribe_alerts is not None:
            self._unsubscribe_alerts()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        application = self._application
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        with contextlib.suppress(TelegramError):
            await application.shutdown()

    async def ready(self) -> str | None:
        """None when connected and receiving; else why not."""
        if self._problem is not None:
            return self._problem
        if self._last_poll_error is not None and self._clock.monotonic() - self._last_poll_error[0] < 30:
            return f"polling failed recently ({self._last_poll_error[1]})"
        return None

    # ------------------------------------------------------------------------------ inbound

    async def _webhook(self, request: web.Request) -> web.Response:
        expected = self._settings.webhook_secret.get_secret_value() if self._settings.webhook_secret else ""
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")  # any bytes may come
        body = await request.read()
        if not expected or not hmac.compare_digest(given, expected.encode()):
            log.info("telegram.request_refused", reason="bad_secret", bytes=len(body))
            return web.Response(status=403, text="forbidden\n")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # bad JSON or UTF-8, or nested too deep
            data = None
        if not isinstance(data, dict) or "update_id" not in data:
            log.info("telegram.request_refused", reason="not_an_update", bytes=len(body))
            return web.Response(status=400, text="not an update\n")
        if not self._accepting:
            return web.Response(status=503, text="starting or stopping\n")  # Telegram delivers it again
        try:
            update = Update.de_json(data, self._application.bot)
        except Exception:  # a malformed field raises whatever it provokes (AttributeError, OverflowError)
            log.info("telegram.webhook_bad_update")
            return web.Response(status=400, text="not an update\n")
        try:
            # Acknowledged only once recorded: Telegram does not deliver an acknowledged update again.
            await self._application.update_queue.put(update)
        except InboxUnavailableError:
            return web.Response(status=503, text="not recorded\n")  # Telegram delivers it again
        return web.Response(text="ok\n")

    def _ordering(self, update: object) -> Ordering:
        """Migrations and addressed messages wait for their chat's turn; anything else needs none."""
        if not isinstance(update, Update) or self._me is None:
            return Ordering.NONE
        if _is_migration(update.message):
            return Ordering.ALWAYS
        normalized = normalize(update, self._me, self._settings, self._media)
        if normalized is None:
            return Ordering.NONE
        incoming = normalized.incoming
        if not incoming.addressed_to_bot and incoming.command is None:
            return Ordering.NONE
        self._classified[update.update_id] = normalized  # for _record, right after: normalized once
        return Ordering.ANSWER

    def _flood_dropped(self, update: object) -> None:
        if isinstance(update, Update):
            self._classified.pop(update.update_id, None)
        self._metrics.count_message(self.name, "flood_dropped")
        self._metrics.refusals.labels("flood").inc()

    async def _record(self, update: object) -> bool:
        """Record an addressed message in the inbox as it arrives; whether to queue the update.

        Not queued: an update dropped by flood protection, one already queued (PTB fetches a batch
        again after a failure to record part of it), or a part of an album that another part already
        stands for (see adapters/telegram/albums.py).
        """
        if not isinstance(update, Update):
            return True
        if update.update_id in self._arrivals or self._joined_album(update):
            return False
        ordering = self._processor.admit(update)
        if ordering is None:
            return False
        normalized = self._classified.pop(update.update_id, None)
        if ordering is not Ordering.ANSWER or normalized is None:
            return True
        try:
            accepted = await self._engine.accept(normalized.incoming)
        except Exception as exc:
            self._processor.release(update)
            log.warning("telegram.inbox_unavailable", error=exc.__class__.__name__, detail=str(exc)[:200])
            raise InboxUnavailableError("the update could not be recorded") from exc
        self._arrivals[update.update_id] = (normalized, accepted)
        if normalized.album is not None:
            self._albums.start((normalized.target.chat_id, normalized.album), update.update_id, normalized)
        return True

    def _joined_album(self, update: Update) -> bool:
        """Whether ``update`` is a later part of an album being gathered (it is added to it)."""
        message = update.message
        if message is None or message.media_group_id is None or self._me is None:
            return False
        key = (message.chat.id, message.media_group_id)
        if key not in self._albums:
            return False
        part = normalize(update, self._me, self._settings, self._media)
        if part is None:
            return False
        self._albums.join(key, update.update_id, part)
        return True

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is not None and _is_migration(message):
            await self._migrate(message.chat.id, message.migrate_to_chat_id, message.migrate_from_chat_id)
            return
        if update.message_reaction is not None:
            await self._on_reaction(update.message_reaction)
            return
        if update.inline_query is not None:
            self._inline.received(update.inline_query)
            return
        if update.chosen_inline_result is not None:
            self._inline.chosen(update.chosen_inline_result)
            return
        arrival = self._arrivals.pop(update.update_id, None)
        if arrival is None:
            return  # not for the bot (or it arrived before the bot knew who it is)
        normalized, accepted = arrival
        if normalized.album is not None:
            key = (normalized.target.chat_id, normalized.album)
            normalized = await self._albums.gather(key, normalized)
        if not accepted:
            return  # a duplicate delivery: answered already
        self._outbox.reachable_again(normalized.target.chat_id)
        incoming = normalized.incoming
        if normalized.files and await self._engine.admits(incoming):
            files = await fetch_all(self._application.bot, normalized.files, self._media.max_bytes)
            incoming = replace(incoming, attachments=files)
        writer = AnswerWriter(
            self._application.bot,
            self._outbox,
            normalized.target,
            interval=self._settings.stream_interval.total_seconds(),
            drafts=self._drafts,
            on_preview_message=lambda message_id: self._engine.note_answer_message(incoming, str(message_id)),
            on_answer_message=lambda message_id: self._engine.answer_shown(incoming, [str(message_id)]),
        )
        async with self._engine.answering(incoming, accepted=True) as answer:
            if not await writer.write(answer):
                self._engine.note_undelivered(incoming)

    async def _on_reaction(self, reaction: MessageReactionUpdated) -> None:
        """A user's reactions on a message changed: a vote when the message shows an answer."""
        counts, value = reaction_vote(reaction)
        if not counts or reaction.user is None:
            return
        await self._engine.record_vote(
            Platform.TELEGRAM, str(reaction.chat.id), str(reaction.message_id), str(reaction.user.id), value
        )

    async def follow_up(self, item: FollowUp) -> None:
        """Reply to a message a dead process never answered, quoting it where Telegram still can.

        A group preview the dead process left half-written is edited into the notice instead.
        """
        chat_id = int(item.chat_key)
        bot = self._application.bot
        answer_id = item.reply_ids.get(ANSWER_MESSAGE)
        if answer_id:

            async def edit() -> object:
                return await bot.edit_message_text(
                    item.notice.text, chat_id=chat_id, message_id=int(answer_id)
                )

            try:
                await self._outbox.call(chat_id, edit)
                return
            except (TelegramError, ChatUnreachableError) as exc:
                log.info("telegram.follow_up_edit_failed", error=exc.__class__.__name__)
        message_id = item.reply_ids.get("message_id")
        reply = ReplyParameters(int(message_id), allow_sending_without_reply=True) if message_id else None
        thread = int(item.thread_key) if item.thread_key else None

        async def send() -> object:
            return await bot.send_message(
                chat_id=chat_id, text=item.notice.text, message_thread_id=thread, reply_parameters=reply
            )

        try:
            await self._outbox.call(chat_id, send)
        except (TelegramError, ChatUnreachableError) as exc:
            log.warning("telegram.follow_up_failed", error=exc.__class__.__name__)

    async def _migrate(self, chat_id: int, to_id: int | None, from_id: int | None) -> None:
        old, new = (chat_id, to_id) if to_id else (from_id, chat_id)
        if old is None or new is None:
            return
        moved = await self._engine.chat_moved(Platform.TELEGRAM, str(old), str(new))
        if moved.granted:
            # Only this process knows until a restart: the config should name the new id.
            log.warning("telegram.access_migrated", old_chat_id=old, new_chat_id=new)
        if moved.conversations:
            log.info("telegram.chat_migrated", conversations=moved.conversations)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        log.error(
            "telegram.update_failed",
            error=error.__class__.__name__ if error else "unknown",
            detail=str(error)[:300],
            exc_info=error,
        )


def build(deps: AdapterDeps[TelegramSettings]) -> TelegramAdapter:
    """The adapter for ``gembot run``: mounts the webhook route (webhook mode) before the server starts."""
    return TelegramAdapter(deps)
