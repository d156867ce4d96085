"""The Slack adapter: slack-bolt's AsyncApp in socket mode or on ``POST /slack/events`` (http mode).

Events are acknowledged at once and answered in the background, one answer after the other within a
conversation (a DM's top level, a thread in a DM, or a channel thread). The same message delivered again
(Slack's retries, or as both ``app_mention`` and ``message.channels``) carries the same event id, built
from channel and ts, so the engine's inbox answers it once, also across restarts and replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_mrkdwn import MESSAGE_LIMIT, escape, render_chunks, split
from bot.domain import (
    ANSWER_MESSAGE,
    AdminAlert,
    Delta,
    FinalAnswer,
    FollowUp,
    Incoming,
    MessageKind,
    Notice,
    Platform,
    ReplyEvent,
    Typing,
)
from bot.observability.logs import get_logger

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import SlackSettings
    from bot.engine import Engine
    from bot.observability.metrics import Metrics
    from bot.server import HttpServer
    from bot.store import Store

log = get_logger(__name__)

EVENTS_PATH: Final = "/slack/events"
STATUS_TEXT: Final = "is thinking…"
PLACEHOLDER: Final = "…"
# chat.startStream/appendStream take at most 12,000 characters; a longer answer continues in a new message.
STREAM_LIMIT: Final = 11_000
# Errors meaning the workspace or token cannot use a method at all: stop trying it in this process.
UNAVAILABLE_ERRORS: Final = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "method_deprecated",
        "feature_not_enabled",
        "team_not_allowed",
    }
)
SLACK_COMMANDS: Final = frozenset({"help", "reset", "stats", "forget"})  # CONTRACT.md, Slack subcommands
# Destructive commands after a mention only count when the word stands alone, so a sentence such as
# "@gembot forget what I said, then ..." is a question for Gemini, not an erasure.
STANDALONE_COMMANDS: Final = frozenset({"reset", "forget"})
_PUNCTUATION: Final = ".,:;!?"
_ANSWERED_SUBTYPES: Final = frozenset({"file_share", "thread_broadcast"})
_LEADING_MENTION = re.compile(r"\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_THREAD_CACHE: Final = 10_000
_USER_CACHE: Final = 5_000
_USER_TTL: Final = 3600.0


# ------------------------------------------------------------------------------------- normalization


@dataclass(frozen=True, slots=True)
class Job:
    """One normalized Slack message or slash command, and where to answer it."""

    incoming: Incoming
    channel: str
    thread_ts: str | None  # the thread the answer goes to; None = the top level of a DM
    team_id: str = ""
    response_url: str = ""
    needs_membership: bool = False  # a thread reply without a mention: answered only in the bot's threads

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

    CONTRACT.md: the commands are "the same words as the first word after a mention of the bot", so
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


def normalize_event(body: Mapping[str, Any], bot_user_id: str, bot_id: str = "") -> Job | None:
    """An Events API ``app_mention``/``message`` callback as a Job, or None when it is not for the bot.

    Bot messages (any ``bot_id``), the bot's own messages, edits, deletions and other subtypes, and
    top-level channel messages without a mention give None.
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
        kind=MessageKind.UNSUPPORTED if event.get("files") else MessageKind.TEXT,
        reply_ids={"channel": channel, "ts": ts, "thread_ts": reply_thread or ""},
    )
    team = body.get("team_id") or event.get("team") or ""
    return Job(
        incoming=incoming,
        channel=channel,
        thread_ts=reply_thread,
        team_id=str(team),
        needs_membership=not addressed,
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
    incoming = Incoming(
        platform=Platform.SLACK,
        chat_key=channel,
        thread_key="",
        user_id=user,
        user_name=str(body.get("user_name") or ""),
        text=rest.strip(),
        event_id=f"command:{trigger}",
        is_private=private,
        addressed_to_bot=True,
        command=name,
        command_args=rest.strip(),
        reply_ids={"channel": channel},  # not the response_url: reply ids are stored, and it is a credential
    )
    return Job(
        incoming=incoming,
        channel=channel,
        thread_ts=None,
        team_id=str(body.get("team_id") or ""),
        response_url=str(body.get("response_url") or ""),
    )


def _drop_token_warning(record: logging.LogRecord) -> bool:
    # Bolt reads SLACK_BOT_TOKEN from the environment and then warns that our client's token wins.
    return "`token` will be unused" not in record.getMessage()


def _error_code(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "")
    except Exception:
        return ""


def _reason(exc: Exception) -> str:
    """Slack's error code, or the class of a connection error."""
    code = _error_code(exc) if isinstance(exc, SlackApiError) else ""
    return code or exc.__class__.__name__


_CALL_ERRORS: Final = (SlackApiError, aiohttp.ClientError, TimeoutError)


# ------------------------------------------------------------------------------------------ adapter


class SlackAdapter:
    """Slack through Bolt: events in, rendered answers out."""

    name = "slack"

    def __init__(
        self, settings: SlackSettings, engine: Engine, store: Store, metrics: Metrics | None = None
    ) -> None:
        self._settings = settings
        self._reconnects = metrics.adapter_reconnects.labels(self.name) if metrics is not None else None
        self._engine = engine
        self._store = store
        self._http_mode = settings.mode == "http"
        token = settings.bot_token.get_secret_value() if settings.bot_token is not None else ""
        # Older slack_sdk releases (the pin allows 3.33) join method names onto the base URL as given:
        # without the slash, ".../api" + "auth.test" would become ".../auth.test".
        base_url = settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.client = AsyncWebClient(
            token=token,
            base_url=base_url,
            session=self._session,
            timeout=30,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=settings.max_retries),
            ],
        )
        # For calls that may be skipped (progress edits, status): a 429 there must not hold up the answer.
        self.optional_client = AsyncWebClient(
            token=token, base_url=base_url, session=self._session, timeout=30, retry_handlers=[]
        )
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret is not None else ""
        bolt_logger = logging.getLogger("slack_bolt.gembot")
        bolt_logger.addFilter(_drop_token_warning)
        self.bolt = AsyncApp(
            client=self.client,
            signing_secret=secret if self._http_mode else "unused-in-socket-mode",
            request_verification_enabled=self._http_mode,
            process_before_response=False,
            logger=bolt_logger,
        )
        self.bolt.event("app_mention")(self._on_event)
        self.bolt.event("message")(self._on_event)
        self.bolt.command(settings.slash_command)(self._on_command)
        self._socket: AsyncSocketModeHandler | None = None
        self._connector: asyncio.Task[None] | None = None
        self._bot_user_id = ""
        self._bot_id = ""
        self._problem: str | None = "not started"
        self._stopping = False
        self._tails: dict[tuple[str, str], asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._users: OrderedDict[str, tuple[float, str, str | None]] = OrderedDict()
        self.native_streaming = settings.stream
        self.status_available = True

    @property
    def engine(self) -> Engine:
        """The engine this adapter answers through."""
        return self._engine

    # -- lifecycle

    async def start(self) -> None:
        """Learn who we are (auth.test) and, in socket mode, connect; retried in the background."""
        self._stopping = False
        self._connector = asyncio.create_task(self._connect(), name="slack-connect")

    async def _connect(self) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                auth = await self.client.auth_test()
                self._bot_user_id = str(auth.get("user_id") or "")
                self._bot_id = str(auth.get("bot_id") or "")
                break
            except SlackApiError as exc:
                self._problem = f"auth.test failed: {_error_code(exc) or 'error'}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self._problem = f"auth.test failed: {exc.__class__.__name__}"
            log.warning("slack.auth_failed", reason=self._problem, retry_in_s=delay)
            self._count_reconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        if self._http_mode:
            self._problem = None
            log.info("slack.ready", mode="http", bot_user_id=self._bot_user_id)
            return
        app_token = self._settings.app_token.get_secret_value() if self._settings.app_token else ""
        self._problem = "socket mode: connecting"
        self._socket = AsyncSocketModeHandler(
            self.bolt, app_token, logger=logging.getLogger("slack_sdk.gembot")
        )
        # slack_sdk reconnects by itself when Slack closes the WebSocket; count each time it does.
        self._socket.client.on_close_listeners.append(self._on_socket_close)
        await self._socket.connect_async()  # type: ignore[no-untyped-call]
        self._problem = None
        log.info("slack.ready", mode="socket", bot_user_id=self._bot_user_id)

    async def _on_socket_close(self, _message: object) -> None:
        if not self._stopping:
            log.info("slack.socket_reconnected")
            self._count_reconnect()

    def _count_reconnect(self) -> None:
        if self._reconnects is not None:
            self._reconnects.inc()

    async def follow_up(self, item: FollowUp) -> None:
        """Answer a message a dead process never answered: in its thread, or in a thread under it.

        The half-written answer the dead process left (a "…" placeholder, a cut stream) becomes the
        notice; when it cannot be edited any more, the notice is posted as a new message.
        """
        answer_ts = item.reply_ids.get(ANSWER_MESSAGE)
        try:
            if answer_ts and await self._end_answer(item.chat_key, answer_ts, item.notice.text):
                return
            thread_ts = item.reply_ids.get("thread_ts") or item.reply_ids.get("ts") or None
            await self.client.chat_postMessage(
                channel=item.chat_key, thread_ts=thread_ts, text=item.notice.text
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.follow_up_failed", error=exc.__class__.__name__)

    async def _end_answer(self, channel: str, ts: str, notice: str) -> bool:
        """Turn a half-written answer into ``notice``: replace a placeholder or edited message; end a
        native stream (still open: nobody stopped it) with the notice after what it already showed."""
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=notice)
            return True
        except SlackApiError as exc:
            log.info("slack.follow_up_edit_failed", error=_error_code(exc))
        try:
            await self.client.chat_stopStream(channel=channel, ts=ts, markdown_text=f"\n\n_{notice}_")
            return True
        except SlackApiError as exc:
            log.info("slack.follow_up_stop_failed", error=_error_code(exc))
        return False

    async def deliver_alert(self, alert: AdminAlert) -> None:
        """Send an operator alert to every configured admin as a direct message from the bot."""
        for admin_id in self._settings.admin_ids:
            try:
                await self.client.chat_postMessage(channel=admin_id, text=alert.text)
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack.alert_failed", admin_id=admin_id, error=exc.__class__.__name__)

    async def ready(self) -> str | None:
        """None when Slack knows us (and, in socket mode, the WebSocket is up), else why not."""
        if self._problem is not None:
            return self._problem
        if self._socket is not None and not await self._socket.client.is_connected():
            return "socket mode: disconnected"
        return None

    async def stop(self, grace: float = 10.0) -> None:
        """Take no new events, let answers in flight finish (up to ``grace`` seconds), disconnect."""
        self._stopping = True
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._session.close()

    # -- inbound

    async def handle_http(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: Bolt checks the signature and timestamp (401) and acknowledges."""
        if self._stopping:
            # Not acknowledged, so Slack delivers it again (to another replica or after the restart).
            return web.Response(status=503, text="shutting down")
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _on_event(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        job = normalize_event(body, context.bot_user_id or self._bot_user_id, context.bot_id or self._bot_id)
        if job is not None:
            self.accept(job)

    async def _on_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        job = normalize_command(body)
        if job is not None:
            self.accept(job)
        await ack()

    def accept(self, job: Job) -> None:
        """Queue ``job`` behind the answers of its conversation (synchronously, so arrival order holds)."""
        if self._stopping:
            log.warning("slack.dropped_on_shutdown", event_id=job.incoming.event_id)
            return
        previous = self._tails.get(job.key)
        done = asyncio.Event()
        self._tails[job.key] = done
        task = asyncio.create_task(self._process(job, previous, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, job: Job, previous: asyncio.Event | None, done: asyncio.Event) -> None:
        try:
            # Recorded before it waits behind its conversation, so a crash while it waits cannot lose it.
            # (A thread reply without a mention is recorded once it is known to be for the bot.)
            accepted = not job.needs_membership and await self._engine.accept(job.incoming)
            if previous is not None:
                await previous.wait()
            if job.incoming.addressed_to_bot and not job.incoming.is_private:
                # The thread becomes the bot's at this message's turn, not at its arrival: a reply without
                # a mention sent just before it in the same thread is judged without it.
                self._remember_thread(job.key)
                if accepted:
                    await self._claim_thread(job)
            if not job.needs_membership and not accepted:
                return  # a duplicate delivery: answered already (its turn passed on in order all the same)
            incoming = await self._complete(job)
            if incoming is not None:
                await _Reply(self, job, incoming).run(self._engine.handle(incoming, accepted=accepted))
        except Exception:
            log.exception("slack.answer_failed", event_id=job.incoming.event_id)
        finally:
            done.set()
            if self._tails.get(job.key) is done:
                del self._tails[job.key]

    async def _complete(self, job: Job) -> Incoming | None:
        incoming = job.incoming
        if job.needs_membership:
            if not await self._in_bot_thread(job.key):
                return None
            incoming = replace(incoming, addressed_to_bot=True)
        name, language = await self._user_info(incoming.user_id)
        return replace(incoming, user_name=incoming.user_name or name, language=incoming.language or language)

    async def _claim_thread(self, job: Job) -> None:
        """Record a channel thread the bot was addressed in, for :meth:`_in_bot_thread` after a restart
        or on another replica (the conversation row would otherwise exist only once Gemini answered)."""
        channel, thread_key = job.key
        try:
            await self._store.conversation_id(Platform.SLACK.value, channel, thread_key, datetime.now(UTC))
        except Exception:
            # Only follow-ups without a mention elsewhere depend on it: this answer goes on.
            log.warning("slack.thread_record_failed", event_id=job.incoming.event_id, exc_info=True)

    def _remember_thread(self, key: tuple[str, str]) -> None:
        self._threads[key] = None
        self._threads.move_to_end(key)
        while len(self._threads) > _THREAD_CACHE:
            self._threads.popitem(last=False)

    async def _in_bot_thread(self, key: tuple[str, str]) -> bool:
        if key in self._threads:
            self._threads.move_to_end(key)
            return True
        # After a restart, or when another replica took the mention, the database knows the thread.
        if await self._store.conversation_exists(Platform.SLACK.value, key[0], key[1]):
            self._remember_thread(key)
            return True
        return False

    async def _user_info(self, user: str) -> tuple[str, str | None]:
        now = time.monotonic()
        cached = self._users.get(user)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        name, locale = "", None
        try:
            info = await self.client.users_info(user=user, include_locale=True)
            data = info.get("user") or {}
            profile = data.get("profile") or {}
            name = str(profile.get("display_name") or profile.get("real_name") or data.get("real_name") or "")
            locale = data.get("locale") or None
        except SlackApiError as exc:
            log.info("slack.users_info_failed", error=_error_code(exc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("slack.users_info_failed", error=exc.__class__.__name__)
        self._users[user] = (now + _USER_TTL, name, locale)
        self._users.move_to_end(user)
        while len(self._users) > _USER_CACHE:
            self._users.popitem(last=False)
        return name, locale

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session shared by the Web API client and response_url posts."""
        return self._session

    @property
    def update_interval(self) -> float:
        """Seconds between two updates of a streamed reply."""
        return self._settings.update_interval.total_seconds()


def build(app: App, server: HttpServer) -> SlackAdapter:
    """The adapter for ``gembot run``; in http mode it mounts ``POST /slack/events`` on ``server``."""
    adapter = SlackAdapter(app.settings.slack, app.engine, app.store, app.metrics)
    if app.settings.slack.mode == "http":
        server.add_route("POST", EVENTS_PATH, adapter.handle_http)
    app.alerts.subscribe(adapter.deliver_alert)
    return adapter


# ------------------------------------------------------------------------------------------ outbound


class _Reply:
    """Renders one answer: native stream or placeholder-and-edits, split mrkdwn, ephemeral commands."""

    def __init__(self, adapter: SlackAdapter, job: Job, incoming: Incoming) -> None:
        self._adapter = adapter
        self._client = adapter.client
        self._optional = adapter.optional_client
        self._job = job
        self._incoming = incoming
        self._channel = job.channel
        self._thread = job.thread_ts
        self._text = ""  # the reply so far, Markdown as Gemini wrote it
        self._offset = 0  # text before this index went out through a stream that broke
        self._messages: list[str] = []  # ts of the messages showing the reply (edits path)
        self._shown: list[str] = []
        self._native = adapter.native_streaming and job.thread_ts is not None
        self._stream_ts: str | None = None
        self._stream_size = 0
        self._streams: list[str] = []
        self._streamed = ""
        self._last_update = 0.0
        self._noted = False

    async def run(self, events: AsyncIterator[ReplyEvent]) -> None:
        """Consume every event of the answer (a failing Slack call never stops the engine's stream)."""
        async for event in events:
            try:
                await self._on(event)
            except Exception:
                log.exception("slack.render_failed", event_id=self._incoming.event_id)

    async def _on(self, event: ReplyEvent) -> None:
        if isinstance(event, Typing):
            await self._typing()
        elif isinstance(event, Delta):
            self._text += event.text
            await self._progress()
        elif isinstance(event, FinalAnswer):
            await self._finish(event.text, event.notice)
        elif isinstance(event, Notice):
            if self._incoming.command is not None:
                await self._ephemeral(event.text)
            else:
                await self._finish(self._text, event)

    async def _typing(self) -> None:
        if self._thread is not None and self._adapter.status_available:
            try:
                await self._optional.assistant_threads_setStatus(
                    channel_id=self._channel, thread_ts=self._thread, status=STATUS_TEXT
                )
                return
            except _CALL_ERRORS as exc:
                if _reason(exc) in UNAVAILABLE_ERRORS:
                    self._adapter.status_available = False
                log.info("slack.status_failed", error=_reason(exc))
        if not self._native and not self._messages:
            await self._sync([PLACEHOLDER])

    async def _progress(self) -> None:
        now = time.monotonic()
        started = self._stream_ts is not None or bool(self._messages)
        if started and now - self._last_update < self._adapter.update_interval:
            return
        self._last_update = now
        if self._native and await self._stream(self._text[len(self._streamed) :]):
            return
        await self._sync(render_chunks(self._text[self._offset :]) or [PLACEHOLDER], optional=True)

    async def _finish(self, text: str, notice: Notice | None) -> None:
        note = notice.text if notice is not None else ""
        if self._native and self._stream_ts is not None:
            if text.startswith(self._streamed):
                # On failure _stream leaves _offset after what the stream shows: the rest goes below.
                if await self._stream(text[len(self._streamed) :]):
                    if await self._end_stream(note):
                        return
                    self._offset = len(text)  # the stream shows all the text; the notice goes below
            else:
                # The final text is not what was streamed (e.g. a word masked): replace the messages.
                await self._stop_stream()
                self._messages, self._shown = list(self._streams), [""] * len(self._streams)
                self._offset = 0
        chunks = render_chunks(text[self._offset :])
        if note:
            extra = f"_{escape(note)}_"
            if chunks and len(chunks[-1]) + len(extra) + 2 <= MESSAGE_LIMIT:
                chunks[-1] += "\n\n" + extra
            else:
                chunks.append(extra)
        if not chunks and self._streamed and not self._messages:
            return  # a broken stream already shows everything: no "…" after it
        await self._sync(chunks or [PLACEHOLDER])

    # -- native streaming

    async def _stream(self, text: str) -> bool:
        """Send ``text`` through chat.*Stream (rolling over to a new message when one is full).

        False when streaming failed: the caller shows the rest through messages and edits.
        """
        try:
            while text:
                if self._stream_ts is None:
                    piece, text = _cut(text, STREAM_LIMIT)
                    response = await self._client.chat_startStream(
                        channel=self._channel,
                        thread_ts=self._thread or "",
                        markdown_text=piece,
                        recipient_user_id=self._incoming.user_id,
                        recipient_team_id=self._job.team_id or None,
                    )
                    self._stream_ts = str(response["ts"])
                    self._streams.append(self._stream_ts)
                    self._stream_size = len(piece)
                    await self._note_answer(self._stream_ts)
                else:
                    room = STREAM_LIMIT - self._stream_size
                    if room <= 0:
                        await self._stop_stream(check=True)
                        continue
                    piece, text = _cut(text, room)
                    await self._client.chat_appendStream(
                        channel=self._channel, ts=self._stream_ts, markdown_text=piece
                    )
                    self._stream_size += len(piece)
                self._streamed += piece
            return True
        except _CALL_ERRORS as exc:
            code = _reason(exc)
            log.info("slack.stream_failed", error=code)
            if code in UNAVAILABLE_ERRORS:
                self._adapter.native_streaming = False
            self._native = False
            if self._stream_ts is not None:
                await self._stop_stream()
            self._offset = len(self._streamed)
            return False

    async def _end_stream(self, note: str) -> bool:
        """Stop the stream with ``note`` (if any) at its end; False when the note still has to be shown."""
        ts = self._stream_ts
        try:
            await self._stop_stream(f"\n\n_{note}_" if note else None, check=True)
            return True
        except _CALL_ERRORS as exc:
            log.info("slack.stream_stop_failed", error=_reason(exc))
        # Once more without the notice, so the message does not stay "loading"; the text is shown either way.
        self._stream_ts = ts
        await self._stop_stream()
        return not note

    async def _stop_stream(self, markdown_text: str | None = None, *, check: bool = False) -> None:
        ts, self._stream_ts, self._stream_size = self._stream_ts, None, 0
        if ts is None:
            return
        try:
            await self._client.chat_stopStream(channel=self._channel, ts=ts, markdown_text=markdown_text)
        except _CALL_ERRORS as exc:
            if check:
                raise
            log.info("slack.stream_stop_failed", error=_reason(exc))

    # -- messages and edits

    async def _sync(self, chunks: list[str], *, optional: bool = False) -> None:
        """Make the posted messages show ``chunks``: edit what changed, post what is new, drop the rest.

        ``optional`` (progress): an edit that fails (e.g. rate limited) is skipped, not retried or replaced.
        """
        for i, chunk in enumerate(chunks):
            if i < len(self._messages):
                if self._shown[i] == chunk:
                    continue
                if await self._update(self._messages[i], chunk, optional=optional):
                    self._shown[i] = chunk
                    continue
                if optional:
                    continue
                posted = await self._post(chunk)
                if posted:
                    self._messages[i], self._shown[i] = posted[0], chunk
                continue
            for ts in await self._post(chunk):
                self._messages.append(ts)
                self._shown.append(chunk)
        for ts in self._messages[len(chunks) :]:
            with contextlib.suppress(SlackApiError):
                await self._client.chat_delete(channel=self._channel, ts=ts)
        del self._messages[len(chunks) :]
        del self._shown[len(chunks) :]
        if self._messages:
            await self._note_answer(self._messages[0])

    async def _note_answer(self, ts: str) -> None:
        """Once per answer: keep the first message's ts in the inbox until the answer is done."""
        if not self._noted and self._incoming.command is None:
            self._noted = True
            await self._adapter.engine.note_answer_message(self._incoming, ts)

    async def _post(self, text: str) -> list[str]:
        try:
            response = await self._client.chat_postMessage(
                channel=self._channel,
                text=text,
                thread_ts=self._thread,
                unfurl_links=False,
                unfurl_media=False,
            )
            return [str(response["ts"])]
        except SlackApiError as exc:
            code = _error_code(exc)
            if code == "msg_too_long" and len(text) > 200:
                posted: list[str] = []
                for piece in split(text, len(text) // 2 + 1):
                    posted += await self._post(piece)
                return posted
            log.warning("slack.post_failed", error=code, event_id=self._incoming.event_id)
            return []

    async def _update(self, ts: str, text: str, *, optional: bool = False) -> bool:
        client, errors = (self._optional, _CALL_ERRORS) if optional else (self._client, (SlackApiError,))
        try:
            await client.chat_update(channel=self._channel, ts=ts, text=text)
            return True
        except errors as exc:
            log.info("slack.update_failed", error=_reason(exc), optional=optional)
            return False

    async def _ephemeral(self, text: str) -> None:
        body = escape(text)
        url = self._job.response_url
        if url:
            try:
                async with self._adapter.session.post(
                    url, json={"response_type": "ephemeral", "text": body}
                ) as response:
                    if response.status == 200:
                        return
                    log.warning("slack.response_url_failed", status=response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack.response_url_failed", error=exc.__class__.__name__)
        try:
            await self._client.chat_postEphemeral(
                channel=self._channel, user=self._incoming.user_id, text=body, thread_ts=self._thread
            )
        except SlackApiError as exc:
            log.warning("slack.ephemeral_failed", error=_error_code(exc))


def _cut(text: str, size: int) -> tuple[str, str]:
    """``text`` cut at most ``size`` characters in, preferably after a newline."""
    if len(text) <= size:
        return text, ""
    if size <= 0:
        return "", text
    at = text.rfind("\n", size // 2, size)
    at = at + 1 if at > 0 else size
    return text[:at], text[at:]
